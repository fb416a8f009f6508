"""MatMul (x @ W, or a @ b of two inputs) and Affine (x @ W + b), over the last axes."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnkit.config import MAX_INT
from nnkit.layer import InputGrads, Layer, LayerConfig, Shape
from nnkit.layers.init import InitName, normal_init


class MatMulConfig(LayerConfig):
    type: Literal["MatMul"] = "MatMul"
    units: int | None = Field(default=None, ge=1, le=MAX_INT)  # output width H (one input only)
    init: InitName = "xavier"  # see nnkit.layers.init
    init_scale: float = Field(default=0.01, gt=0)  # std when init = "normal"
    # Two inputs: multiply by the second's transpose, a @ bᵀ (attention's scores of a
    # query sequence against a key sequence, (M, K) and (P, K) → (M, P)).
    transpose_b: bool = False


class MatMul(Layer):
    """One input: y = x @ W, x (N, ..., D) → (N, ..., H), W (D, H), as in the book.
    Two inputs: y = a @ b per sample, a (N, ..., M, K), b (N, ..., K, P) → (N, ..., M, P);
    with `transpose_b`, y = a @ bᵀ, b (N, ..., P, K)."""

    Config = MatMulConfig
    config: MatMulConfig
    num_inputs = (1, 2)
    examples = [({"units": 4}, [(3,)]), ({"units": 2}, [(2, 3)]), ({}, [(2, 3), (3, 4)]),
                ({"transpose_b": True}, [(2, 3), (4, 3)])]

    def build(self, *in_shapes: Shape) -> Shape:
        if len(in_shapes) == 2:
            a, b = in_shapes
            if self.config.units is not None:
                raise ValueError("units applies to one input; two inputs multiply each other")
            b = (*b[:-2], b[-1], b[-2]) if self.config.transpose_b and len(b) >= 2 else b
            if len(a) < 2 or len(a) != len(b) or a[-1] != b[-2] or a[:-2] != b[:-2]:
                raise ValueError(f"cannot multiply per-sample shapes {in_shapes[0]} and {in_shapes[1]}"
                                 + (" transposed" if self.config.transpose_b else ""))
            return (*a[:-1], b[-1])
        if self.config.transpose_b:
            raise ValueError("transpose_b applies to two inputs")
        (in_shape,) = in_shapes
        if len(in_shape) < 1:
            raise ValueError(f"expects inputs with a feature axis, got per-sample shape {in_shape}")
        if self.config.units is None:
            raise ValueError("a MatMul of one input needs units")
        d, h = in_shape[-1], self.config.units
        self.add_param("W", (d, h), normal_init(self.config.init, d, self.config.init_scale))
        return (*in_shape[:-1], h)

    def forward(self, *xs: np.ndarray, train: bool = False) -> np.ndarray:
        self.xs = xs
        if len(xs) == 2 and self.config.transpose_b:
            return xs[0] @ np.swapaxes(xs[1], -1, -2)
        return xs[0] @ (xs[1] if len(xs) == 2 else self.params[0])

    def backward(self, dy: np.ndarray) -> InputGrads:
        if len(self.xs) == 2:
            a, b = self.xs
            if self.config.transpose_b:  # y = a bᵀ: da = dy b, db = dyᵀ a
                return dy @ b, np.swapaxes(dy, -1, -2) @ a
            return dy @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ dy
        (W,) = self.params
        x2, dy2 = self.xs[0].reshape(-1, W.shape[0]), dy.reshape(-1, W.shape[1])
        np.matmul(x2.T, dy2, out=self.grads[0])
        return dy @ W.T if self.needs_input_grad else None


class AffineConfig(LayerConfig):
    type: Literal["Affine"] = "Affine"
    units: int = Field(ge=1, le=MAX_INT)  # output width H
    init: InitName = "xavier"  # see nnkit.layers.init
    init_scale: float = Field(default=0.01, gt=0)  # std when init = "normal"


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
        y = x @ W
        y += b  # in place: no second (N, H) array
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        W = self.params[0]
        x, dW, db = self.x, self.grads[0], self.grads[1]
        if x.ndim == 2:
            np.matmul(x.T, dy, out=dW)
            np.add.reduce(dy, axis=0, out=db)  # ufunc directly: no Python wrapper per step
        else:
            dy2 = dy.reshape(-1, W.shape[1])
            np.matmul(x.reshape(-1, W.shape[0]).T, dy2, out=dW)
            dy2.sum(axis=0, out=db)
        return dy @ W.T if self.needs_input_grad else None
