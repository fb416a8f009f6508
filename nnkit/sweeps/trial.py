"""One trial, as a Dask worker runs it: the base model file's data with the trial's
settings, trained with the recipe's own seeds; every epoch's metric reported to the
Optuna study (when pruning, the study may stop the trial there); the checkpoint and the
history written under the sweep's folder. Whatever happens, the worker returns plain data
— an nnkit error is a failed trial with its one-line reason, never a crashed sweep."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnkit.atomic import write_output
from nnkit.errors import NnkitError
from nnkit.training.callbacks import Callback


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run a trial: plain data only."""

    number: int
    trial_id: int
    settings: dict[str, Any]  # dotted path → value
    model_data: dict[str, Any]  # the base model file's data
    model_source: str  # its path: data paths resolve from its folder, as for `nnkit train`
    metric: str
    out_dir: str
    study_name: str
    storage: str | None  # the study's storage, when the trial reports for pruning
    pruner: tuple[int, int] = (4, 1)  # the median pruner's (warmup trials, warmup epochs)


def median_pruner(optuna: Any, warmup: tuple[int, int]) -> Any:
    """The pruner of a sweep with pruning on. The study's storage does not keep it, so the
    driver and every worker make the same one from these numbers."""
    trials, epochs = warmup
    return optuna.pruners.MedianPruner(n_startup_trials=trials, n_warmup_steps=epochs)


class _Report(Callback):
    """After each epoch: the metric to the study, and a stop when the pruner says so."""

    def __init__(self, task: TrialTask) -> None:
        import optuna

        assert task.storage is not None  # reporting needs the study
        study = optuna.load_study(study_name=task.study_name, storage=task.storage,
                                  pruner=median_pruner(optuna, task.pruner))
        self.trial = optuna.Trial(study, task.trial_id)
        self.metric, self.pruned = task.metric, False

    def on_epoch_end(self, runner: Any, epoch: int, record: dict[str, float]) -> None:
        value = record.get(self.metric)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned = True
            runner.stop_training = True


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Train one trial; returns its state ("complete", "pruned" or "fail"), the metric's
    last value, the history, the checkpoint's path and the seconds it took."""
    from nnkit.model import Model
    from nnkit.modelfile import validate_spec
    from nnkit.plugins import get_registry
    from nnkit.sweeps.spec import with_settings

    started = time.perf_counter()
    result: dict[str, Any] = {"number": task.number, "settings": task.settings}
    try:
        registry = get_registry()
        spec = validate_spec(with_settings(task.model_data, task.settings), task.model_source, registry)
        model = Model.from_spec(spec, registry=registry, source=task.model_source)
        report = _Report(task) if task.storage is not None else None
        history = model.fit(verbose=False, callbacks=[report] if report else None).records
        result["history"] = _plain(history)
        last = history[-1] if history else {}
        if task.metric not in last:
            raise NnkitError(f"metric {task.metric!r} is not in the epoch records (they hold "
                             f"{', '.join(last) or 'nothing'}); set `metric` in the sweep file")
        value = float(last[task.metric])
        if not math.isfinite(value):
            raise NnkitError(f"{task.metric} is {value}")
        folder = Path(task.out_dir) / "trials"
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = folder / f"trial-{task.number:04d}.nnk"
        model.save(checkpoint)
        write_output(folder / f"trial-{task.number:04d}.json", json.dumps(result["history"]).encode(), NnkitError)
        result.update(state="pruned" if report is not None and report.pruned else "complete", value=value,
                      checkpoint=str(checkpoint))
    except NnkitError as exc:
        result.update(state="fail", reason=" ".join(str(exc).split()))
    result["seconds"] = time.perf_counter() - started
    return result


def _plain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (float(v) if isinstance(v, float) or hasattr(v, "item") else v) for k, v in r.items()}
            for r in records]


def dask_setup(worker: Any) -> None:
    """Run by Dask when a worker starts with `--preload nnkit.sweeps.trial` (nnkit's local
    clusters do): the training stack and the plugins are loaded before the first trial
    arrives, while the driver is still opening its study."""
    from nnkit.model import Model  # noqa: F401
    from nnkit.plugins import get_registry

    get_registry()
