"""Cutting the learning rate when a metric stops improving: the book's chapter-6 rule
(BetterRnnlm divides lr by 4 after every epoch whose validation perplexity is not better
than the best so far) as a callback a model file turns on:

    [[callbacks]]
    type = "reduce_on_plateau"
    metric = "val_perplexity"
    factor = 0.25
    patience = 0

The cut multiplies the optimizer's `lr_scale`, a factor on every step's learning rate
(after any schedule); the scale, the best value and the wait are the callback's state,
saved in checkpoints, so a resumed run goes on with the same learning rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field

from nnkit.config import Config, Strict
from nnkit.training.callbacks import Callback, improves, lower_is_better, metric_of

if TYPE_CHECKING:
    from nnkit.training.runner import Runner


class ReduceOnPlateauConfig(Config):
    type: Literal["reduce_on_plateau"] = "reduce_on_plateau"
    metric: str = Field(default="val_loss", max_length=64)  # a key of the epoch records
    factor: float = Field(default=0.25, gt=0, lt=1)  # lr is multiplied by this at each cut (the book: 1/4)
    patience: int = Field(default=0, ge=0, le=10_000_000)  # epochs without improvement tolerated before a cut
    min_delta: float = Field(default=0.0, ge=0, le=1e12)  # smaller changes are not improvements
    min_scale: float = Field(default=0.0, ge=0, lt=1)  # the lr is never cut below lr × this
    mode: Literal["auto", "min", "max"] = "auto"  # auto: the loss minimised, metrics as they declare


class ReduceOnPlateauState(Strict):
    """What reduce_on_plateau keeps across a resume."""

    model_config = ConfigDict(allow_inf_nan=True)
    best_value: float | None = None
    wait: Annotated[int, Field(ge=0)] = 0
    scale: Annotated[float, Field(gt=0, le=1)] = 1.0
    cuts: Annotated[int, Field(ge=0)] = 0


class ReduceOnPlateau(Callback):
    """After each epoch: a value better than the best (by `min_delta`) is the new best;
    otherwise, once more than `patience` epochs in a row were not better, lr × `factor`."""

    Config = ReduceOnPlateauConfig
    config: ReduceOnPlateauConfig
    key = "reduce_on_plateau"

    def __init__(self, config: ReduceOnPlateauConfig) -> None:
        self.config = config
        self.best_value: float | None = None
        self.wait, self.scale, self.cuts = 0, 1.0, 0

    def on_train_begin(self, runner: Runner) -> None:
        runner.optimizer.lr_scale = self.scale  # a resumed run goes on at the learning rate it had

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        c = self.config
        value = metric_of(record, c.metric, "reduce_on_plateau")
        lower = lower_is_better(c.metric, c.mode, runner)
        if improves(value, self.best_value, lower, c.min_delta):
            self.best_value, self.wait = value, 0
            return
        self.wait += 1
        if self.wait > c.patience:
            self.scale = max(self.scale * c.factor, c.min_scale)
            self.wait, self.cuts = 0, self.cuts + 1
            runner.optimizer.lr_scale = self.scale

    def on_train_end(self, runner: Runner) -> None:
        if self.cuts:
            lr = runner.optimizer.config.lr * self.scale
            runner.notes.append(f"reduce_on_plateau: {self.cuts} cut(s) of the learning rate; it is now {lr:.4g}")

    def state(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "wait": self.wait, "scale": self.scale, "cuts": self.cuts}

    def load_state(self, state: dict[str, Any]) -> None:
        checked = ReduceOnPlateauState.model_validate(state)
        if checked.wait > self.config.patience:
            raise ValueError(f"wait {checked.wait} is past the patience of {self.config.patience}")
        self.best_value, self.wait, self.scale, self.cuts = checked.best_value, checked.wait, checked.scale, \
            checked.cuts
