"""Nodes that combine several inputs: Concat, Add, Mean. No params."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnkit.layer import Layer, LayerConfig, Shape


class ConcatConfig(LayerConfig):
    type: Literal["Concat"] = "Concat"
    axis: int = Field(default=-1, ge=-32, le=31)  # per-sample axis; -1 = the last


class Concat(Layer):
    """Joins inputs along a per-sample axis: (N, ..., Di, ...) → (N, ..., ΣDi, ...)."""

    Config = ConcatConfig
    config: ConcatConfig
    num_inputs = (1, None)
    examples = [({}, [(2,), (3,)]), ({"axis": 0}, [(1, 3), (2, 3), (1, 3)])]

    def build(self, *in_shapes: Shape) -> Shape:
        rank = len(in_shapes[0])
        if rank == 0 or any(len(s) != rank for s in in_shapes):
            raise ValueError(f"inputs must have the same rank ≥ 1, got {list(in_shapes)}")
        if not -rank <= self.config.axis < rank:
            raise ValueError(f"axis {self.config.axis} is out of range for per-sample shapes of rank {rank}")
        axis = self.config.axis % rank
        others = {s[:axis] + s[axis + 1:] for s in in_shapes}
        if len(others) != 1:
            raise ValueError(f"inputs differ outside axis {self.config.axis}: {list(in_shapes)}")
        self.sizes = [s[axis] for s in in_shapes]
        self.axis = axis + 1  # in the batched array
        out = list(in_shapes[0])
        out[axis] = sum(self.sizes)
        return tuple(out)

    def forward(self, *xs: np.ndarray, train: bool = False) -> np.ndarray:
        return np.concatenate(xs, axis=self.axis)

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(np.split(dy, np.cumsum(self.sizes)[:-1], axis=self.axis))


class AddConfig(LayerConfig):
    type: Literal["Add"] = "Add"


class Add(Layer):
    """Element-wise sum of inputs of one shape; every input receives dy."""

    Config = AddConfig
    num_inputs = (1, None)
    examples = [({}, [(3,), (3,)]), ({}, [(2, 2), (2, 2), (2, 2)])]

    def build(self, *in_shapes: Shape) -> Shape:
        if len(set(in_shapes)) != 1:
            raise ValueError(f"inputs must share one shape, got {list(in_shapes)}")
        self.count = len(in_shapes)
        return in_shapes[0]

    def forward(self, *xs: np.ndarray, train: bool = False) -> np.ndarray:
        return xs[0] if len(xs) == 1 else np.sum(xs, axis=0)

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, ...] | np.ndarray:
        return dy if self.count == 1 else (dy,) * self.count


class MeanConfig(LayerConfig):
    type: Literal["Mean"] = "Mean"


class Mean(Add):
    """Element-wise average of inputs of one shape (the book's CBOW averages its contexts)."""

    Config = MeanConfig  # type: ignore[assignment]

    def forward(self, *xs: np.ndarray, train: bool = False) -> np.ndarray:
        return super().forward(*xs) / self.count

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, ...] | np.ndarray:
        return super().backward(dy / self.count)
