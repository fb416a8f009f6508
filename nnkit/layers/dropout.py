"""Inverted dropout: scale at training time so that inference is the identity."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnkit.layer import Layer, LayerConfig, Shape


class DropoutConfig(LayerConfig):
    type: Literal["Dropout"] = "Dropout"
    rate: float = Field(default=0.5, ge=0.0, lt=1.0)  # probability of dropping a unit


class Dropout(Layer):
    """Training: y = x * mask / (1 - rate), mask ~ Bernoulli(1 - rate) from the layer's RNG.

    Inference: y = x. nnkit uses this (the book's TimeDropout) rule everywhere, so a
    trained network needs no rescaling at test time. Any shape.
    """

    Config = DropoutConfig
    examples = [({"rate": 0.5}, [(6,)]), ({"rate": 0.0}, [(2, 3)])]
    config: DropoutConfig

    def build(self, in_shape: Shape) -> Shape:
        return in_shape

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        if not train or self.config.rate == 0.0:
            self.scale = None
            return x
        keep = 1.0 - self.config.rate
        self.scale = (self.rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * self.scale

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy if self.scale is None else dy * self.scale
