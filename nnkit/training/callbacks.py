"""Callbacks: hooks into the training loop. nnkit's own progress display, periodic and best
checkpoints, early stopping and NaN guard are callbacks; plugins register more through the
`register_callbacks` hook, and a model file turns them on in `[[callbacks]]`.

A callback may keep state that must survive a resume: plain data from `state()` and
arrays from `arrays()`; the runner stores both in the checkpoint under the callback's `key`.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field

from nnkit.config import Config, Strict
from nnkit.errors import CheckpointError, ModelFileError, TrainingError
from nnkit.hookspecs import Register, hookimpl
from nnkit.names import ParamRef

if TYPE_CHECKING:
    from nnkit.training.runner import Runner


class Callback:
    """Base class: every method is optional. `runner.stop_training = True` ends the run.

    Registered callbacks (those a model file can name) set `Config`, whose `type` names them.
    """

    Config: ClassVar[type[Config]]

    #: Where this callback's state lives in the checkpoint; None = it keeps none.
    key: str | None = None

    def on_train_begin(self, runner: Runner) -> None:
        """Before the first step of `fit` (also when resuming)."""

    def on_epoch_begin(self, runner: Runner, epoch: int) -> None:
        """Before the first step of epoch `epoch` (counted from 1)."""

    def on_step_end(self, runner: Runner, step: int, loss: float) -> None:
        """After optimizer update number `step` (counted from 1 over the whole run)."""

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        """After epoch `epoch`; `record` is its history entry (loss, metrics, val_…)."""

    def on_train_end(self, runner: Runner) -> None:
        """After the last step, also when stopped early (not when training fails)."""

    def state(self) -> dict[str, Any]:
        """Plain data (numbers, strings, lists, maps) to keep in checkpoints."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what `state()` returned."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays to keep in checkpoints, by name."""
        return {}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what `arrays()` returned. Here and in `load_state`, raise ValueError (a
        pydantic ValidationError is one) for state that does not fit: the runner reports it
        as a CheckpointError naming the callback."""


class CallbackList(Callback):
    """Calls each callback in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = callbacks
        # Called every step: skip the many callbacks that leave on_step_end alone.
        self.per_step = [cb for cb in callbacks if type(cb).on_step_end is not Callback.on_step_end]

    def on_train_begin(self, runner: Runner) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(runner)

    def on_epoch_begin(self, runner: Runner, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(runner, epoch)

    def on_step_end(self, runner: Runner, step: int, loss: float) -> None:
        for cb in self.per_step:
            cb.on_step_end(runner, step, loss)

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(runner, epoch, record)

    def on_train_end(self, runner: Runner) -> None:
        for cb in self.callbacks:
            cb.on_train_end(runner)


def lower_is_better(metric: str, mode: str, runner: Runner) -> bool:
    """"auto": the loss goes down; a registered metric goes the way its class says
    (`greater_is_better`); any other record key goes down if named *loss or *error."""
    if mode != "auto":
        return mode == "min"
    name = metric.removeprefix("val_")
    for registered in runner.metrics:
        if registered.name == name:
            return not registered.greater_is_better
    return name.endswith(("loss", "error", "error_rate"))


def improves(value: float, best: float | None, lower: bool, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` (None: anything does) by more than `min_delta`, in the
    direction the metric goes (`lower`: smaller is better)."""
    if best is None:
        return True
    return value < best - min_delta if lower else value > best + min_delta


def metric_of(record: dict[str, float], metric: str, who: str) -> float:
    if metric not in record:
        raise ModelFileError(f"{who}: metric {metric!r} is not in the history (it has {', '.join(record)}); "
                             "val_… metrics need a [validation] section")
    return record[metric]


def non_finite_report(runner: Runner) -> str:
    """Where the first non-finite number is: a node's output, else a param."""
    net = runner.network
    values = runner.last_step.values if runner.last_step is not None else {}
    for node in net.spec.order:
        value = values.get(node.name)
        if value is not None and np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            layer = net.layers[node.name]
            bad = [str(ParamRef(node.name, p)) for p, a in zip(layer.param_names, layer.params)
                   if not np.all(np.isfinite(a))]
            cause = f", whose param {', '.join(repr(b) for b in bad)} holds non-finite values" if bad else ""
            return f"the first non-finite values are in the output of node {node.name!r} ({node.type}){cause}"
    for name, param in net.params.items():
        if not np.all(np.isfinite(param)):
            return f"the first non-finite values are in param {name!r}"
    return "every node output and param is finite: the loss itself overflowed"


class NanGuard(Callback):
    """Stops training with a TrainingError at the first non-finite loss or param, naming the
    step and the first node (or param) holding a non-finite value. On by default
    (`train.nan_guard`)."""

    def on_step_end(self, runner: Runner, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise TrainingError(f"training diverged at step {step} (epoch {runner.epoch + 1}): the loss is "
                                f"{loss}; {non_finite_report(runner)}. Nothing was saved; try a smaller lr "
                                "or train.max_grad")

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        for name, param in runner.network.params.items():
            # A sum is non-finite whenever an element is (NaN and inf propagate) and needs no
            # temporary; only then is the exact, allocating check worth its cost.
            if not np.isfinite(param.sum()) and not np.all(np.isfinite(param)):
                raise TrainingError(f"training diverged in epoch {epoch}: param {name!r} holds non-finite "
                                    "values. Nothing was saved; try a smaller lr or train.max_grad")


class CheckpointingState(Strict):
    """What the checkpoint callback keeps across a resume."""

    saved: list[Annotated[str, Field(pattern=r"^epoch-\d{6,}\.nnk$")]] = Field(default_factory=list, max_length=100_000)
    best_value: float | None = None
    best_epoch: Annotated[int, Field(ge=1)] | None = None


class EarlyStoppingState(Strict):
    """What early stopping keeps across a resume."""

    model_config = ConfigDict(allow_inf_nan=True)
    best_value: float | None = None
    best_epoch: Annotated[int, Field(ge=1)] | None = None
    wait: Annotated[int, Field(ge=0)] = 0
    stopped_epoch: Annotated[int, Field(ge=1)] | None = None


class CheckpointConfig(Config):
    type: Literal["checkpoint"] = "checkpoint"
    every: int = Field(default=1, ge=1, le=10_000_000)  # epochs between periodic checkpoints
    keep: int = Field(default=3, ge=0, le=100_000)  # periodic checkpoints kept (the newest); 0 = none
    best: str | None = Field(default=None, max_length=64)  # also keep best.nnk by this metric
    mode: Literal["auto", "min", "max"] = "auto"  # auto: the loss minimised, metrics as they declare


class Checkpointing(Callback):
    """Saves `epoch-000010.nnk` every `every` epochs (keeping the newest `keep`) and
    `best.nnk` whenever `best` improves, into the runner's checkpoint folder (chosen by the
    caller, never by the model file). Refuses to save non-finite params."""

    Config = CheckpointConfig
    config: CheckpointConfig
    key = "checkpoint"

    def __init__(self, config: CheckpointConfig) -> None:
        self.config = config
        self.saved: list[str] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.warned = False

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        folder = runner.checkpoint_dir
        if folder is None:
            if not self.warned:
                warnings.warn("checkpoint callback: no checkpoint folder was given (nnkit train --out or "
                              "--checkpoint-dir); periodic checkpoints are off", UserWarning, stacklevel=2)
                self.warned = True
            return
        NanGuard().on_epoch_end(runner, epoch, record)  # a bad state must never replace a good file
        folder.mkdir(parents=True, exist_ok=True)
        c = self.config
        if c.best is not None:
            value = metric_of(record, c.best, "checkpoint callback")
            lower = lower_is_better(c.best, c.mode, runner)
            if improves(value, self.best_value, lower):
                self.best_value, self.best_epoch = value, epoch
                runner.save(folder / "best.nnk")
        if c.keep and epoch % c.every == 0:
            name = f"epoch-{epoch:06d}.nnk"
            # The list first, so that the file saved now knows itself: a run resumed from
            # it then keeps `keep` files, not one more.
            self.saved = [n for n in self.saved if n != name] + [name]
            stale, self.saved = self.saved[:-c.keep], self.saved[-c.keep:]
            runner.save(folder / name)
            for old in stale:
                (folder / old).unlink(missing_ok=True)

    def state(self) -> dict[str, Any]:
        return {"saved": self.saved, "best_value": self.best_value, "best_epoch": self.best_epoch}

    def load_state(self, state: dict[str, Any]) -> None:
        checked = CheckpointingState.model_validate(state)
        self.saved, self.best_value, self.best_epoch = list(checked.saved), checked.best_value, checked.best_epoch


class EarlyStoppingConfig(Config):
    type: Literal["early_stopping"] = "early_stopping"
    metric: str = Field(default="val_loss", max_length=64)  # a key of the epoch records
    patience: int = Field(default=10, ge=1, le=10_000_000)  # epochs without improvement before stopping
    min_delta: float = Field(default=0.0, ge=0, le=1e12)  # smaller changes are not improvements
    mode: Literal["auto", "min", "max"] = "auto"  # auto: the loss minimised, metrics as they declare
    restore_best: bool = True  # end with the params of the best epoch


class EarlyStopping(Callback):
    """Stops when `metric` has not improved for `patience` epochs; with `restore_best`, puts
    back the best epoch's params (kept in memory and in checkpoints) when training ends."""

    Config = EarlyStoppingConfig
    config: EarlyStoppingConfig
    key = "early_stopping"

    def __init__(self, config: EarlyStoppingConfig) -> None:
        self.config = config
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_params: dict[str, np.ndarray] = {}

    def on_epoch_end(self, runner: Runner, epoch: int, record: dict[str, float]) -> None:
        c = self.config
        value = metric_of(record, c.metric, "early stopping")
        lower = lower_is_better(c.metric, c.mode, runner)
        if improves(value, self.best_value, lower, c.min_delta):
            self.best_value, self.best_epoch, self.wait = value, epoch, 0
            if c.restore_best:
                self.best_params = {k: v.copy() for k, v in runner.network.params.items()}
            return
        self.wait += 1
        if self.wait >= c.patience:
            self.stopped_epoch = epoch
            runner.stop_training = True

    def on_train_end(self, runner: Runner) -> None:
        if self.stopped_epoch is None:
            return
        note = (f"early stopping: {self.config.metric} did not improve for {self.config.patience} epochs; "
                f"stopped after epoch {self.stopped_epoch}")
        if self.config.restore_best and self.best_params:
            for name, value in self.best_params.items():
                runner.network.params[name][...] = value
            note += f", restored epoch {self.best_epoch} ({self.config.metric} {self.best_value:.4f})"
        runner.notes.append(note)

    def state(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch}

    def load_state(self, state: dict[str, Any]) -> None:
        checked = EarlyStoppingState.model_validate(state)
        if checked.wait >= self.config.patience:
            raise ValueError(f"wait {checked.wait} is not below the patience of {self.config.patience}")
        self.best_value, self.best_epoch = checked.best_value, checked.best_epoch
        self.wait, self.stopped_epoch = checked.wait, checked.stopped_epoch

    def arrays(self) -> dict[str, np.ndarray]:
        return self.best_params

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.best_params = {k: np.array(v) for k, v in arrays.items()}

    def on_train_begin(self, runner: Runner) -> None:
        where = f"{runner.source}: progress.callbacks.early_stopping"
        for field in ("best_epoch", "stopped_epoch"):
            epoch = getattr(self, field)
            if epoch is not None and epoch > runner.epoch:
                raise CheckpointError(f"{where}.{field} {epoch} is past the {runner.epoch} finished epochs")
        # Restored best params must be the network's own, name for name, dtype and shape.
        params = runner.network.params
        if self.best_params and (set(self.best_params) != set(params) or any(
                a.dtype != params[k].dtype or a.shape != params[k].shape for k, a in self.best_params.items())):
            raise CheckpointError(f"{runner.source}: callbacks/early_stopping: the best epoch's params do not fit "
                                  "the network")


@hookimpl
def register_callbacks(register: Register) -> None:
    from nnkit.training.plateau import ReduceOnPlateau  # it builds on this module

    register(Checkpointing)
    register(EarlyStopping)
    register(ReduceOnPlateau)
