"""Element-wise activations and Softmax: no params, output shape = input shape."""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnkit.layer import Layer, LayerConfig, Shape


class _Elementwise(Layer):
    def build(self, in_shape: Shape) -> Shape:
        return in_shape


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in its tanh form, which never overflows (exp(-x) does for very
    negative x)."""
    y = np.tanh(np.multiply(x, 0.5))  # in place from here: one array, not four
    y += 1.0
    y *= 0.5
    return y


class SigmoidConfig(LayerConfig):
    type: Literal["Sigmoid"] = "Sigmoid"


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)); dx = dy * y * (1 - y). Any shape."""

    Config = SigmoidConfig
    examples = [({}, [(4,)]), ({}, [(2, 3)])]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.y = sigmoid(x)
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = dy * self.y
        dx *= 1.0 - self.y  # (dy * y) * (1 - y), in the book's order
        return dx


class ReLUConfig(LayerConfig):
    type: Literal["ReLU"] = "ReLU"


class ReLU(_Elementwise):
    """y = max(x, 0); dx = dy where x > 0. Any shape."""

    Config = ReLUConfig
    examples = [({}, [(4,)])]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.mask

    @classmethod
    def example_inputs(cls, config: LayerConfig, input_shapes: list[Shape], batch: int,
                       rng: np.random.Generator, dtype: np.dtype) -> list[np.ndarray]:
        # Keep inputs away from the kink at 0, where finite differences are meaningless.
        xs = super().example_inputs(config, input_shapes, batch, rng, dtype)
        return [x + np.where(x >= 0, 0.1, -0.1).astype(dtype) for x in xs]


class TanhConfig(LayerConfig):
    type: Literal["Tanh"] = "Tanh"


class Tanh(_Elementwise):
    """y = tanh(x); dx = dy * (1 - y²). Any shape."""

    Config = TanhConfig
    examples = [({}, [(4,)])]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * (1.0 - self.y * self.y)


class SoftmaxConfig(LayerConfig):
    type: Literal["Softmax"] = "Softmax"


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the max so that exp never overflows."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Softmax(_Elementwise):
    """y_k = exp(x_k) / Σ_i exp(x_i) over the last axis; dx = y * (dy - Σ dy*y)."""

    Config = SoftmaxConfig
    examples = [({}, [(4,)]), ({}, [(2, 3)])]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.y = softmax(x)
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self.y
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
