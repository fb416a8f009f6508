"""A one-layer nnkit plugin: Swish, y = x * sigmoid(beta * x)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field

import nnkit
from nnkit.layers.activations import sigmoid


class SwishConfig(nnkit.LayerConfig):
    """What a model file may set: `{ type = "Swish", beta = 1.0 }`."""

    type: Literal["Swish"] = "Swish"
    beta: float = Field(default=1.0, gt=0, le=100)  # 1.0 is the SiLU


class Swish(nnkit.Layer):
    """y = x * σ(βx); dx = dy * (σ + βx σ (1 - σ)). Any shape; no params."""

    Config = SwishConfig
    config: SwishConfig
    # Configs and per-sample input shapes on which nnkit's contract tests check this layer.
    examples = [({}, [(4,)]), ({"beta": 2.0}, [(2, 3)])]

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape  # a layer with weights declares them here: self.add_param(name, shape, init)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.x = x
        self.s = sigmoid(self.config.beta * x)  # nnkit's σ never overflows
        return x * self.s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        s, beta = self.s, self.config.beta
        return dy * (s + beta * self.x * s * (1.0 - s))


@nnkit.hookimpl
def register_layers(register: Callable[[type], None]) -> None:
    register(Swish)


def swish_to_onnx(layer: Swish, node: Any) -> None:
    """`nnkit export --format onnx`: x * Sigmoid(beta * x) as ONNX operators. `node` is an
    `nnkit.interop.onnx.NodeBuilder`: it names the inputs and the output to write, and adds
    operators; no `onnx` import is needed here."""
    (x,) = node.inputs
    scaled = node.add("Mul", [x, node.constant(layer.config.beta)])
    node.add("Mul", [x, node.add("Sigmoid", [scaled])], node.output)


@nnkit.hookimpl
def register_onnx_converters(register: Callable[[str, Callable[..., None]], None]) -> None:
    register("Swish", swish_to_onnx)
