"""A sequence dataset the example generates itself: arithmetic progressions modulo V."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

import nnkit


class ArithmeticSequencesConfig(nnkit.Config):
    type: Literal["arithmetic_sequences"] = "arithmetic_sequences"
    count: int = Field(default=2000, ge=1, le=10_000_000)  # sequences
    length: int = Field(default=8, ge=2, le=10_000)  # time steps T
    vocab_size: int = Field(default=20, ge=2, le=1_000_000)  # tokens V
    # The possible strides of a progression.
    steps: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(default=[1, 2, 3], min_length=1, max_length=64)

    @model_validator(mode="after")
    def _bounded(self) -> ArithmeticSequencesConfig:
        if self.count * self.length > 100_000_000:  # the values a model file may make us generate
            raise ValueError("count × length may be at most 100,000,000")
        return self


class ArithmeticSequences(nnkit.Dataset):
    """x: (count, T) tokens x_k = (a + s k) mod V, a and s random per sequence;
    t: (count, T) the next token x_{k+1}, with t[:, 0] = -1 (ignored): after one token the
    stride is unknown, after two it is determined, so a good model predicts every scored
    position and its perplexity falls towards 1."""

    Config = ArithmeticSequencesConfig
    config: ArithmeticSequencesConfig

    def load(self, rng: np.random.Generator) -> nnkit.Data:
        c = self.config
        start = rng.integers(0, c.vocab_size, size=(c.count, 1))
        stride = rng.choice(np.array(c.steps), size=(c.count, 1))
        tokens = (start + stride * np.arange(c.length + 1)) % c.vocab_size
        t = tokens[:, 1:].copy()
        t[:, 0] = -1
        return nnkit.Data(tokens[:, :-1].astype(np.int64), t.astype(np.int64))
