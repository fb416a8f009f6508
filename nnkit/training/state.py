"""A run's state besides the network: how far it got (`Progress`, the one record type the
runner updates and a checkpoint stores and validates), the optimizer, the random streams,
the unfinished epoch's order and the callbacks' arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import ConfigDict, Field

from nnkit.config import Strict
from nnkit.optim.optimizers import Optimizer

Name = Annotated[str, Field(max_length=512)]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
MetricValue = float | int | None


class Progress(Strict):
    """How far training got: enough to continue exactly where it stopped. The runner
    updates it in place; a checkpoint stores it in its header."""

    model_config = ConfigDict(frozen=False, allow_inf_nan=True)  # NaN metrics happen

    epoch: Count = 0  # finished epochs
    step: Count = 0  # optimizer steps so far
    position: Count = 0  # steps done in the unfinished epoch (its order is the array progress/order)
    history: list[dict[Name, MetricValue]] = Field(default_factory=list, max_length=10_000_000)
    running: dict[Name, float] = Field(default_factory=dict)  # the unfinished epoch's sums
    callbacks: dict[Name, dict[Name, Any]] = Field(default_factory=dict)  # each callback's state, by key


@dataclass
class TrainingState:
    """Everything besides the network that an exact resume needs."""

    optimizer: Optimizer
    rngs: dict[str, np.random.Generator]  # "network" (init, dropout) and "shuffle"
    progress: Progress = field(default_factory=Progress)
    order: np.ndarray | None = None  # the unfinished epoch's shuffled order
    created: str | None = None  # when the run's first checkpoint was written
    callback_arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # key → name → array
