"""MatMul (x @ W) and Affine (x @ W + b), over the last axis of any input."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnkit.config import MAX_INT
from nnkit.layer import Layer, LayerConfig, Shape
from nnkit.layers._init import InitName, normal_init


class MatMulConfig(LayerConfig):
    type: Literal["MatMul"] = "MatMul"
    units: int = Field(ge=1, le=MAX_INT)  # output width H
    init: InitName = "xavier"  # see nnkit.layers._init
    init_scale: float = Field(default=0.01, gt=0)  # std when init = "normal"


class MatMul(Layer):
    """y = x @ W. x: (N, ..., D) → (N, ..., H); W: (D, H)."""

    Config = MatMulConfig
    examples = [({"units": 4}, [(3,)]), ({"units": 2}, [(2, 3)])]
    config: MatMulConfig

    def build(self, in_shape: Shape) -> Shape:
        if len(in_shape) < 1:
            raise ValueError(f"expects inputs with a feature axis, got per-sample shape {in_shape}")
        d, h = in_shape[-1], self.config.units
        self.add_param("W", (d, h), normal_init(self.config.init, d, self.config.init_scale))
        return (*in_shape[:-1], h)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.x = x
        return x @ self.params[0]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        (W,) = self.params
        x2, dy2 = self.x.reshape(-1, W.shape[0]), dy.reshape(-1, W.shape[1])
        np.matmul(x2.T, dy2, out=self.grads[0])
        return dy @ W.T


class AffineConfig(MatMulConfig):
    type: Literal["Affine"] = "Affine"  # type: ignore[assignment]


class Affine(Layer):
    """y = x @ W + b. x: (N, ..., D) → (N, ..., H); W: (D, H); b: (H,)."""

    Config = AffineConfig
    examples = [({"units": 4}, [(3,)]), ({"units": 2, "init": "he"}, [(2, 3)])]
    config: AffineConfig

    def build(self, in_shape: Shape) -> Shape:
        if len(in_shape) < 1:
            raise ValueError(f"expects inputs with a feature axis, got per-sample shape {in_shape}")
        d, h = in_shape[-1], self.config.units
        self.add_param("W", (d, h), normal_init(self.config.init, d, self.config.init_scale))
        self.add_param("b", (h,))
        return (*in_shape[:-1], h)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        W, b = self.params
        self.x = x
        return x @ W + b

    def backward(self, dy: np.ndarray) -> np.ndarray:
        W, _ = self.params
        x2, dy2 = self.x.reshape(-1, W.shape[0]), dy.reshape(-1, W.shape[1])
        np.matmul(x2.T, dy2, out=self.grads[0])
        np.sum(dy2, axis=0, out=self.grads[1])
        return dy @ W.T
