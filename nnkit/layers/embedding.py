"""Embedding: look up rows of W by integer id."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from nnkit.config import MAX_INT
from nnkit.layer import Layer, LayerConfig, Shape
from nnkit.layers.init import InitName, normal_init


def check_ids(ids: np.ndarray, vocab_size: int) -> None:
    """ValueError naming the ids outside [0, vocab_size): NumPy would wrap negative ones
    round to the end of the table and look up the wrong rows without a word."""
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = np.unique(ids[(ids < 0) | (ids >= vocab_size)])
        shown = ", ".join(str(int(i)) for i in bad[:5]) + (", …" if len(bad) > 5 else "")
        raise ValueError(f"ids must be in [0, {vocab_size}); got {shown}")


class EmbeddingConfig(LayerConfig):
    type: Literal["Embedding"] = "Embedding"
    vocab_size: int = Field(ge=1, le=MAX_INT)  # number of ids, V
    units: int = Field(ge=1, le=MAX_INT)  # embedding width, D
    init: InitName = "normal"  # see nnkit.layers.init
    init_scale: float = Field(default=0.01, gt=0)  # the book's 0.01 * randn


class Embedding(Layer):
    """y = W[ids]. ids: (N, ...) integers in [0, V) → (N, ..., D); W: (V, D).

    Backward accumulates with np.add.at, so an id used twice gets both gradients.
    """

    Config = EmbeddingConfig
    examples = [({"vocab_size": 5, "units": 3}, [()]), ({"vocab_size": 7, "units": 2}, [(4,)])]
    config: EmbeddingConfig

    def build(self, in_shape: Shape) -> Shape:
        v, d = self.config.vocab_size, self.config.units
        self.add_param("W", (v, d), normal_init(self.config.init, v, self.config.init_scale))
        return (*in_shape, d)

    def forward(self, ids: np.ndarray, train: bool = False) -> np.ndarray:
        if not np.issubdtype(ids.dtype, np.integer):
            if not np.all(np.mod(ids, 1) == 0):
                raise ValueError("Embedding expects integer ids")
            ids = ids.astype(np.intp)
        check_ids(ids, self.config.vocab_size)
        self.ids = ids
        return self.params[0][ids]

    def backward(self, dy: np.ndarray) -> None:
        dW = self.grads[0]
        dW[...] = 0.0
        np.add.at(dW, self.ids, dy)
        return None  # integer ids have no gradient

    @classmethod
    def example_inputs(cls, config: Any, input_shapes: list[Shape], batch: int,
                       rng: np.random.Generator, dtype: np.dtype) -> list[np.ndarray]:
        return [rng.integers(0, config.vocab_size, size=(batch, *s)) for s in input_shapes]
