"""Callbacks: hooks into the training loop. nnkit's own logging, checkpointing, early
stopping and NaN guard are callbacks; plugins and users add their own the same way.

A callback may keep state that must survive a resume: return it from `state()` (plain
data: numbers, strings, lists, dicts) and take it back in `load_state`; the runner keeps
it in the checkpoint under the callback's `key`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnkit.runner import Runner


class Callback:
    """Base class: every method is optional. `runner.stop_training = True` ends the run."""

    #: Where this callback's `state()` lives in the checkpoint; None = it keeps none.
    key: str | None = None

    def on_train_begin(self, runner: Runner) -> None:
        """Before the first step of `fit` (also when resuming)."""

    def on_epoch_begin(self, runner: Runner, epoch: int) -> None:
        """Before the first step of epoch `epoch` (counted from 1)."""

    def on_step_end(self, runner: Runner, step: int, loss: float) -> None:
        """After optimizer update number `step` (counted from 1 over the whole run)."""

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        """After epoch `epoch`; `record` is its history entry (loss, accuracy, val_…)."""

    def on_train_end(self, runner: Runner) -> None:
        """After the last step, also when stopped early."""

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `state()` returned."""


class CallbackList(Callback):
    """Calls each callback in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = callbacks

    def on_train_begin(self, runner: Runner) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(runner)

    def on_epoch_begin(self, runner: Runner, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(runner, epoch)

    def on_step_end(self, runner: Runner, step: int, loss: float) -> None:
        for cb in self.callbacks:
            cb.on_step_end(runner, step, loss)

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(runner, epoch, record)

    def on_train_end(self, runner: Runner) -> None:
        for cb in self.callbacks:
            cb.on_train_end(runner)
