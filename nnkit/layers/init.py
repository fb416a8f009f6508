"""Weight initialisers shared by the built-in layers."""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnkit.layer import Init, Shape

InitName = Literal["normal", "xavier", "he"]


def normal_init(kind: InitName, fan_in: int, scale: float) -> Init:
    """An initialiser drawing from a normal distribution.

    "normal" uses std = `scale` (the book's chapter 1 uses 0.01); "xavier" uses
    1/sqrt(fan_in) (the book's later chapters); "he" uses sqrt(2/fan_in) for ReLU nets.
    """
    if kind == "normal":  # only the one asked for: thousands of layers may be built at once
        std = scale
    elif kind == "xavier":
        std = 1.0 / np.sqrt(fan_in)
    else:
        std = np.sqrt(2.0 / fan_in)

    def init(rng: np.random.Generator, shape: Shape) -> np.ndarray:
        return std * rng.standard_normal(shape)

    return init
