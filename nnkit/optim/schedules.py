"""Learning-rate schedules: a factor on the optimizer's `lr` as a function of the step.

Steps count optimizer updates from 0. Every schedule may be combined with the
optimizer's linear warm-up (`warmup_steps`), which multiplies the factor by
min(1, (step + 1) / warmup_steps).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Field

from nnkit.config import MAX_INT, Config


class ConstantSchedule(Config):
    """factor = 1."""

    type: Literal["constant"] = "constant"

    def factor(self, step: int, total_steps: int) -> float:
        return 1.0


class StepSchedule(Config):
    """factor = gamma ** (step // every): multiply by gamma every `every` steps."""

    type: Literal["step"] = "step"
    every: int = Field(ge=1, le=MAX_INT)  # steps between drops
    gamma: float = Field(default=0.1, gt=0, le=1)  # the factor at each drop

    def factor(self, step: int, total_steps: int) -> float:
        return self.gamma ** (step // self.every)


class ExponentialSchedule(Config):
    """factor = gamma ** step."""

    type: Literal["exponential"] = "exponential"
    gamma: float = Field(gt=0, le=1)  # per-step decay, e.g. 0.999

    def factor(self, step: int, total_steps: int) -> float:
        return self.gamma**step


class CosineSchedule(Config):
    """Cosine from 1 down to `min_factor` over the run (or `total_steps`), then flat."""

    type: Literal["cosine"] = "cosine"
    min_factor: float = Field(default=0.0, ge=0, le=1)  # the factor at the end of the run
    total_steps: int | None = Field(default=None, ge=1, le=MAX_INT)  # None = the whole run

    def factor(self, step: int, total_steps: int) -> float:
        total = self.total_steps or total_steps
        progress = min(step / max(total, 1), 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


Schedule = Annotated[
    Union[ConstantSchedule, StepSchedule, ExponentialSchedule, CosineSchedule],  # noqa: UP007
    Field(discriminator="type"),
]
