"""The book's Repeat and Sum nodes, applied per sample (axis 0 = the first axis after the batch).

The book's Repeat turns a (1, D) array into (R, D); here every sample of a batch does that,
so a batch goes (N, 1, D) → (N, R, D). Sum is its mirror image.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnkit.config import MAX_INT
from nnkit.layer import Layer, LayerConfig, Shape


def _check_axis(axis: int, in_shape: Shape) -> None:
    if not 0 <= axis < len(in_shape):
        raise ValueError(f"axis {axis} is out of range for per-sample shape {in_shape}")


class RepeatConfig(LayerConfig):
    type: Literal["Repeat"] = "Repeat"
    repeats: int = Field(ge=1, le=MAX_INT)  # how many copies of each slice
    axis: int = Field(default=0, ge=0, le=32)  # per-sample axis
    # Copy along a new axis inserted at `axis` (a vector (H,) → (repeats, H): the book's
    # peeky decoder gives every time step the encoder's state).
    new_axis: bool = False


class Repeat(Layer):
    """Forward np.repeat along `axis`; backward sums dy over the copies.

    Per sample: (..., K, ...) → (..., K * repeats, ...); with `new_axis`,
    (..., K, ...) → (..., repeats, K, ...).
    """

    Config = RepeatConfig
    examples = [({"repeats": 4}, [(1, 3)]), ({"repeats": 2, "axis": 1}, [(2, 3)]),
                ({"repeats": 3, "new_axis": True}, [(4,)])]
    config: RepeatConfig

    def build(self, in_shape: Shape) -> Shape:
        c = self.config
        if c.new_axis:
            if not 0 <= c.axis <= len(in_shape):
                raise ValueError(f"axis {c.axis} is out of range for a new axis of per-sample shape {in_shape}")
            return (*in_shape[:c.axis], c.repeats, *in_shape[c.axis:])
        _check_axis(c.axis, in_shape)
        out = list(in_shape)
        out[c.axis] *= c.repeats
        return tuple(out)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        if self.config.new_axis:
            return np.repeat(np.expand_dims(x, self.config.axis + 1), self.config.repeats, axis=self.config.axis + 1)
        return np.repeat(x, self.config.repeats, axis=self.config.axis + 1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        a, r = self.config.axis + 1, self.config.repeats
        if self.config.new_axis:
            return dy.sum(axis=a)
        split = (*dy.shape[:a], dy.shape[a] // r, r, *dy.shape[a + 1:])
        return dy.reshape(split).sum(axis=a + 1)


class SumConfig(LayerConfig):
    type: Literal["Sum"] = "Sum"
    axis: int = Field(default=0, ge=0, le=32)  # per-sample axis


class Sum(Layer):
    """Forward sums along `axis` keeping it (size 1); backward repeats dy along it.

    Per sample: (..., K, ...) → (..., 1, ...).
    """

    Config = SumConfig
    examples = [({}, [(4, 3)]), ({"axis": 1}, [(2, 3)])]
    config: SumConfig

    def build(self, in_shape: Shape) -> Shape:
        _check_axis(self.config.axis, in_shape)
        self.size = in_shape[self.config.axis]
        out = list(in_shape)
        out[self.config.axis] = 1
        return tuple(out)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        return np.sum(x, axis=self.config.axis + 1, keepdims=True)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        # The book's snippet repeats x here; the gradient of a sum repeats dy.
        return np.repeat(dy, self.size, axis=self.config.axis + 1)
