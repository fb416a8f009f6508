"""Loss layers for regression: forward(x, t) returns the mean loss over every element,
backward(dout=1) returns dL/dx. Their output for users is the scores themselves.

x: (N, ...) predictions; t: targets with as many values (a (N,) target for a (N, 1)
output is fine). Each reports mean absolute error by default.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from nnkit.layer import LayerConfig, LossLayer, Shape


class _Regression(LossLayer):
    default_metrics: ClassVar[tuple[str, ...]] = ("mae",)
    examples = [({}, [(1,)]), ({}, [(3,)])]

    def build(self, in_shape: Shape) -> Shape:
        return ()

    def _residual(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        if t.size != x.size:
            raise ValueError(f"targets of shape {t.shape} do not match predictions of shape {x.shape}")
        self.diff = x - t.reshape(x.shape).astype(x.dtype, copy=False)
        return self.diff

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x

    @classmethod
    def example_targets(cls, config: Any, input_shape: Shape, batch: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((batch, *input_shape))


class MeanSquaredErrorConfig(LayerConfig):
    type: Literal["MeanSquaredError"] = "MeanSquaredError"


class MeanSquaredError(_Regression):
    """L = mean((x - t)²); dx = 2 (x - t) dout / size."""

    Config = MeanSquaredErrorConfig

    def forward(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        d = self._residual(x, t)
        return float(np.vdot(d, d)) / max(d.size, 1)

    def backward(self, dout: float = 1.0) -> np.ndarray:
        return self.diff * (2.0 * dout / max(self.diff.size, 1))


class MeanAbsoluteErrorConfig(LayerConfig):
    type: Literal["MeanAbsoluteError"] = "MeanAbsoluteError"


class MeanAbsoluteError(_Regression):
    """L = mean(|x - t|); dx = sign(x - t) dout / size (0 where x = t)."""

    Config = MeanAbsoluteErrorConfig

    def forward(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        return float(np.abs(self._residual(x, t)).mean()) if x.size else 0.0

    def backward(self, dout: float = 1.0) -> np.ndarray:
        return np.sign(self.diff) * (dout / max(self.diff.size, 1))

    @classmethod
    def example_targets(cls, config: Any, input_shape: Shape, batch: int, rng: np.random.Generator) -> np.ndarray:
        # Kept away from the kink at x = t, where finite differences mean nothing.
        return rng.standard_normal((batch, *input_shape)) + 5.0


class HuberConfig(LayerConfig):
    type: Literal["Huber"] = "Huber"
    delta: float = Field(default=1.0, gt=0, le=1e6)  # quadratic within ±delta, linear beyond


class Huber(_Regression):
    """L = mean(½ d² where |d| ≤ δ, else δ (|d| - ½ δ)), d = x - t; dx = clip(d, -δ, δ) dout / size."""

    Config = HuberConfig
    config: HuberConfig

    def forward(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        d, delta = self._residual(x, t), self.config.delta
        a = np.abs(d)
        losses = np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))
        return float(losses.mean()) if x.size else 0.0

    def backward(self, dout: float = 1.0) -> np.ndarray:
        delta = self.config.delta
        return np.clip(self.diff, -delta, delta) * (dout / max(self.diff.size, 1))
