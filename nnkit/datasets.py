"""Datasets: a registered class whose `load(rng)` returns inputs `x` and targets `t`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from nnkit.config import Config
from nnkit.hookspecs import Register, hookimpl


@dataclass(frozen=True)
class Data:
    """x: (N, ...) inputs, or a mapping of input name → (N, ...) for networks with several;
    t: (N, ...) targets (class indices or one-hot)."""

    x: np.ndarray | Mapping[str, np.ndarray]
    t: np.ndarray

    def __len__(self) -> int:
        return len(self.t)


class Dataset:
    """Base of every dataset. Subclasses set `Config` and implement `load`."""

    Config: ClassVar[type[Config]]

    def __init__(self, config: Config) -> None:
        self.config = config

    def load(self, rng: np.random.Generator) -> Data:
        """Make or read the data; any randomness comes from `rng`."""
        raise NotImplementedError


class SpiralConfig(Config):
    type: Literal["spiral"] = "spiral"
    points_per_class: int = Field(default=100, ge=1, le=1_000_000)  # the book's N
    classes: int = Field(default=3, ge=2, le=1000)
    noise: float = Field(default=0.2, ge=0, le=100)  # std of the angle jitter


def spiral(rng: np.random.Generator, points_per_class: int = 100, classes: int = 3,
           noise: float = 0.2) -> Data:
    """The book's spiral: x (classes * N, 2) float64, t (classes * N,) int64, ordered by class.

    For class j and i = 0..N-1: rate = i / N, radius = rate,
    theta = 4j + 4 rate + noise * normal(), point (radius sin θ, radius cos θ).
    """
    n = points_per_class
    rate = np.arange(n) / n
    x = np.empty((classes * n, 2))
    t = np.repeat(np.arange(classes, dtype=np.int64), n)
    for j in range(classes):
        theta = 4.0 * j + 4.0 * rate + noise * rng.standard_normal(n)
        x[j * n:(j + 1) * n, 0] = rate * np.sin(theta)
        x[j * n:(j + 1) * n, 1] = rate * np.cos(theta)
    return Data(x, t)


class Spiral(Dataset):
    """The book's chapter-1 spiral dataset, drawn from the run's data generator."""

    Config = SpiralConfig
    config: SpiralConfig

    def load(self, rng: np.random.Generator) -> Data:
        c = self.config
        return spiral(rng, c.points_per_class, c.classes, c.noise)


@hookimpl
def register_datasets(register: Register) -> None:
    from nnkit.corpus import Corpus  # imported here: corpus.py builds on this module

    register(Spiral)
    register(Corpus)
