"""The sweep's driver: an Optuna study that chooses each trial's settings (ask/tell, here
on the driver), and a Dask cluster that runs the trials (`nnkit.sweeps.trial.run_trial`)
— a `LocalCluster` of worker processes by default, or the cluster at a scheduler address.

The study lives in storage (SQLite under the sweep's folder by default, or any RDB URL):
rerunning a sweep continues it, and finished trials are not run again. Faults stay
inside the trial they hit: a worker that dies mid-trial has its trial rerun elsewhere by
Dask (`retries` times, then the trial failed); an nnkit error in a trial (a diverging run)
is a failed trial with its reason; a trial left running by a stopped sweep is marked
failed and its settings run again. Each trial is told to the study once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnkit.atomic import replacing
from nnkit.errors import NnkitError
from nnkit.sweeps.spec import Sweep
from nnkit.sweeps.trial import TrialTask, median_pruner, run_trial
from nnkit.training.callbacks import improves
from nnkit.version import install_hint

STUDY_NAME = "nnkit-sweep"
INTERRUPTED = "interrupted"


def _check_engines() -> None:
    """NnkitError naming the extra when Optuna or Dask is missing (found, not imported)."""
    if any(importlib.util.find_spec(name) is None for name in ("optuna", "distributed")):
        raise NnkitError(f"nnkit sweep needs Optuna and Dask distributed: {install_hint('sweep')}")


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class Status:
    """Counts for the live table."""

    target: int
    metric: str
    done: int = 0
    running: int = 0
    pruned: int = 0
    failed: int = 0
    best: tuple[int, float] | None = None  # (trial number, value)

    def line(self) -> str:
        best = f"best {self.metric} {self.best[1]:.4g} (trial {self.best[0]})" if self.best else "best: none yet"
        return (f"trials {self.done}/{self.target} done · {self.running} running · {self.pruned} pruned · "
                f"{self.failed} failed · {best}")


@dataclass
class Outcome:
    """What a sweep run left: the study's trials as records, and the best one."""

    records: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    interrupted: bool = False
    folder: Path | None = None  # set by `nnkit.sweep.run_file`, with the summary it wrote
    summary: dict[str, Any] = field(default_factory=dict)


def distributions(optuna: Any, sweep: Sweep) -> dict[str, Any]:
    """Optuna distributions for the sweep's space."""
    d = optuna.distributions
    out: dict[str, Any] = {}
    for name, dim in sweep.file.space.items():
        if dim.kind == "choice":
            out[name] = d.CategoricalDistribution(dim.choice)
        elif dim.kind == "int":
            low, high = dim.bounds
            out[name] = d.IntDistribution(int(low), int(high))
        else:
            low, high = dim.bounds
            out[name] = d.FloatDistribution(low, high, log=dim.kind == "log_uniform")
    return out


def open_study(optuna: Any, sweep: Sweep, storage: str) -> Any:
    f = sweep.file
    if f.sampler == "grid":
        space = {name: dim.grid() for name, dim in f.space.items()}
        sampler = _grid_sampler(optuna)(space, seed=f.seed)
    elif f.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=f.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=f.seed)
    pruner = median_pruner(optuna, warmup(sweep)) if f.pruning else optuna.pruners.NopPruner()
    try:
        return optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner,
                                   direction=f.direction, load_if_exists=True)
    except Exception as exc:  # a storage URL that cannot be reached, a database of another kind
        raise NnkitError(f"cannot open the study in {storage}: {exc}") from None


def warmup(sweep: Sweep) -> tuple[int, int]:
    """(trials that finish before any is pruned, epochs every trial runs first)."""
    f = sweep.file
    epochs = sweep.model_data.get("train", {}).get("epochs", 100)
    return f.warmup_trials, f.warmup_epochs if f.warmup_epochs is not None else max(1, int(epochs) // 4)


def _grid_sampler(optuna: Any) -> Any:
    class Grid(optuna.samplers.GridSampler):
        """Optuna's grid sampler without its stop at the last grid point (which only an
        `optimize` loop may take): the driver sizes the sweep to the grid itself."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return Grid


def finished(optuna: Any, study: Any) -> list[Any]:
    """The trials that count toward the target: complete, pruned, or failed for a reason
    of their own (not stopped by an interrupted sweep)."""
    state = optuna.trial.TrialState
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (state.COMPLETE, state.PRUNED)
            or (t.state == state.FAIL and t.user_attrs.get("reason", INTERRUPTED) != INTERRUPTED)]


def recover(optuna: Any, study: Any) -> int:
    """Trials a stopped sweep left running: failed, their settings queued to run again."""
    left = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in left:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(left)


@contextlib.contextmanager
def dask_client(distributed: Any, scheduler: str | None, workers: int | None, retries: int) -> Iterator[Any]:
    """A client of the cluster at `scheduler`, or of a LocalCluster of `workers` processes
    (one thread each: trials are NumPy-bound), closed on the way out."""
    import dask

    # Trials are seconds to hours of NumPy: Dask's sampling profiler, 10 Hz memory polling and
    # work stealing only take CPU from them here (a cluster of the user's keeps its own).
    quiet = {"distributed.worker.profile.enabled": False, "distributed.worker.memory.monitor-interval": "1s",
             "distributed.scheduler.work-stealing": False}
    with dask.config.set({"distributed.scheduler.allowed-failures": retries, "distributed.worker.daemon": False,
                          "distributed.logging.distributed": "error", **quiet}):
        if scheduler is not None:
            try:
                client = distributed.Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise NnkitError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            with client:
                yield client
            return
        import os

        n = workers or os.cpu_count() or 1
        try:
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", silence_logs=40,  # any free port
                                               preload=["nnkit.sweeps.trial"])
        except RuntimeError as exc:  # the worker processes could not start
            raise NnkitError(f"cannot start {n} local Dask workers ({exc}); from a script, call nnkit.sweep under "
                             "`if __name__ == '__main__':` (the workers import the script)") from None
        with cluster, distributed.Client(cluster) as client:
            yield client


def run(sweep: Sweep, out: Path, *, scheduler: str | None = None, workers: int | None = None,
        storage: str | None = None, on_status: Callable[[Status], None] | None = None) -> Outcome:
    """Run the sweep until the study holds `trials` finished trials; returns every trial."""
    _check_engines()
    import distributed

    out.mkdir(parents=True, exist_ok=True)
    fresh = storage is None and not (out / "study.db").exists()
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    outcome = Outcome()
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Importing Optuna and opening a new SQLite study take ~0.7 s (its schema is
        # created): a fresh sweep starts its cluster meanwhile. A study that exists may
        # need no cluster at all.
        opening = pool.submit(_opened, sweep, storage)
        if not fresh:
            study, status = opening.result()
            fresh = status.done < status.target
        if fresh:
            outcome.interrupted = _run_trials(distributed, opening, sweep, out, storage,
                                              scheduler=scheduler, workers=workers, on_status=on_status)
        study, status = opening.result()
    outcome.records = records(_optuna(), study)
    done = [r for r in outcome.records if r["state"] == "complete"]
    if done:
        pick = min if sweep.file.direction == "minimize" else max
        outcome.best = pick(done, key=lambda r: r["value"])
    return outcome


def _opened(sweep: Sweep, storage: str) -> tuple[Any, Status]:
    """The study, trials a stopped run left recovered, and the counts so far."""
    optuna = _optuna()
    study = open_study(optuna, sweep, storage)
    recover(optuna, study)
    f = sweep.file
    target = min(f.trials, _grid_size(sweep)) if f.sampler == "grid" else f.trials
    status = Status(target, f.metric)
    _count(optuna, study, status)
    return study, status


def _run_trials(distributed: Any, opening: Future[tuple[Any, Status]], sweep: Sweep, out: Path,
                storage: str, *, scheduler: str | None, workers: int | None,
                on_status: Callable[[Status], None] | None) -> bool:
    """Submit trials, at most `parallel` at once, until the target is reached; True when
    interrupted (Ctrl-C): the running trials are then cancelled and marked so."""
    f = sweep.file
    interrupted = False
    with dask_client(distributed, scheduler, workers, f.retries) as client:
        study, status = opening.result()
        optuna, target = _optuna(), status.target
        parallel = f.parallel or max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        running: dict[str, Any] = {}
        spaces = distributions(optuna, sweep)

        def submit() -> None:
            trial = study.ask(spaces)
            # Trial(study, trial_id) is how a worker reports to this trial; Optuna keeps the
            # id on `_trial_id` (there is no public accessor).
            task = TrialTask(trial.number, trial._trial_id, dict(trial.params), sweep.model_data,
                             str(sweep.model_path), f.metric, str(out), STUDY_NAME, storage if f.pruning else None,
                             warmup(sweep))
            future = client.submit(run_trial, task, key=f"nnkit-trial-{trial.number}-{time.time_ns()}", pure=False)
            running[future.key] = (trial, future)

        with _Stop() as stop:
            while status.done < target and not stop.requested:
                while len(running) < parallel and status.done + len(running) < target:
                    submit()
                status.running = len(running)
                if on_status:
                    on_status(status)
                for future in _finished(distributed, [fut for _, fut in running.values()]):
                    trial, _ = running.pop(future.key)
                    if status.done + len(running) + 1 < target and not stop.requested:
                        submit()  # the freed worker's next trial first, then the bookkeeping
                    _tell(optuna, study, trial, future, f.direction, out, status)
            if stop.requested:
                interrupted = True
                for trial, future in running.values():
                    if future.status == "finished":  # done on its worker, not yet collected: keep it
                        _tell(optuna, study, trial, future, f.direction, out, status)
                        continue
                    future.cancel()
                    trial.set_user_attr("reason", INTERRUPTED)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    study.enqueue_trial(trial.params, skip_if_exists=False)  # the next run tries them again
        status.running = 0
        if on_status:
            on_status(status)
    return interrupted


def _finished(distributed: Any, futures: list[Any], timeout: float = 0.25) -> list[Any]:
    """The futures done now, after waiting at most `timeout` for the first (so that a
    Ctrl-C is seen within it)."""
    try:
        done, _ = distributed.wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
    except TimeoutError:
        return []
    return list(done)


class _Stop:
    """Ctrl-C while trials run: the first asks the sweep to stop — finished trials are kept,
    running ones cancelled and recorded as interrupted, their settings queued for the next
    run —, a second quits at once. Only the main thread receives signals: elsewhere (a
    notebook's worker thread) this does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nnnkit: stopping the sweep; running trials are cancelled (Ctrl-C again to quit at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _grid_size(sweep: Sweep) -> int:
    size = 1
    for dim in sweep.file.space.values():
        size *= len(dim.grid() or [])
    return size


def _tell(optuna: Any, study: Any, trial: Any, future: Any, direction: str, out: Path, status: Status) -> None:
    """Record one finished future: its state, value, reason and checkpoint; keep the best."""
    state = optuna.trial.TrialState
    try:
        result = future.result()
    except Exception as exc:  # the worker died `retries` times running it, or the task could not run
        result = {"state": "fail", "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    for key in ("seconds", "checkpoint", "reason"):
        if key in result:
            trial.set_user_attr(key, result[key])
    if result["state"] == "complete":
        study.tell(trial, result["value"])
        status.done += 1
        if improves(result["value"], status.best[1] if status.best else None, direction == "minimize"):
            status.best = (trial.number, result["value"])
            _copy(Path(result["checkpoint"]), out / "best.nnk")
    elif result["state"] == "pruned":
        study.tell(trial, state=state.PRUNED)
        status.done += 1
        status.pruned += 1
    else:
        study.tell(trial, state=state.FAIL)
        status.done += 1
        status.failed += 1


def _count(optuna: Any, study: Any, status: Status) -> None:
    """Counts from the trials a previous run finished."""
    state = optuna.trial.TrialState
    for t in finished(optuna, study):
        status.done += 1
        status.pruned += t.state == state.PRUNED
        status.failed += t.state == state.FAIL
    if study.get_trials(deepcopy=False, states=(state.COMPLETE,)):
        best = study.best_trial
        status.best = (best.number, float(best.value))


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src, replacing(target) as (dst, _):
        shutil.copyfileobj(src, dst, 1 << 20)


def records(optuna: Any, study: Any) -> list[dict[str, Any]]:
    """Every trial of the study, as plain records (number, state, value, settings, seconds,
    reason, checkpoint)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        out.append({"number": t.number, "state": state, "value": t.value, "settings": dict(t.params),
                    "seconds": t.user_attrs.get("seconds"), "reason": t.user_attrs.get("reason"),
                    "checkpoint": t.user_attrs.get("checkpoint")})
    return out


def stderr_status() -> Callable[[Status], None]:
    """The live table: one line rewritten in place on a terminal, a line per change elsewhere."""
    tty = sys.stderr.isatty()
    last = [""]

    def show(status: Status) -> None:
        line = status.line()
        if line == last[0]:
            return
        last[0] = line
        print(("\r\x1b[2K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)

    return show
