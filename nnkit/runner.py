"""The runner: builds a network from a spec, trains it as the book's trainer does, predicts,
evaluates, and saves or resumes checkpoints. The CLI is a thin layer over this class.

Each epoch draws a permutation from the shuffle stream and runs `len(x) // batch_size`
steps (the remainder of the permutation is dropped, as in the book); each step is
forward, backward, optimizer update.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from nnkit.callbacks import Callback, CallbackList, NanGuard
from nnkit.checkpoint import Checkpoint, TrainingState, save
from nnkit.datasets import Data
from nnkit.errors import DataError, ModelFileError
from nnkit.graph import Inputs, Network, count_rows, take_rows
from nnkit.inference import confusion_matrix
from nnkit.metrics import Metric
from nnkit.modelfile import read_model_file
from nnkit.optimizers import Optimizer
from nnkit.plugins import get_registry
from nnkit.progress import LogLines
from nnkit.registry import Registry
from nnkit.rng import streams
from nnkit.spec import InputSpec, SpecBase, TrainSpec

Log = Callable[[str], None]


class Runner:
    """Trains and runs one network. Build with `from_file`, `from_checkpoint` or a spec."""

    def __init__(self, spec: SpecBase, *, source: str = "<spec>", registry: Registry | None = None,
                 callbacks: list[Callback] | None = None, checkpoint_dir: str | Path | None = None,
                 _network: Network | None = None, _state: TrainingState | None = None) -> None:
        """`checkpoint_dir` is where the model file's checkpoint callback writes (the model
        file never chooses a path); `callbacks` are added to those the model file turns on."""
        self.registry = registry or get_registry()
        self.source = source
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.callbacks: list[Callback] = [
            self.registry.get("callback", c.type).cls(c) for c in spec.callbacks] + list(callbacks or [])
        self.stop_training = False
        self.notes: list[str] = []  # what callbacks want users told, e.g. that training stopped early
        self._active: list[Callback] = []
        self._data: Data | None = None
        self._split: tuple[Data, Data | None] | None = None
        self.steps_per_epoch = 0
        self.target_epochs = spec.train.epochs
        self.spec = spec
        if spec.inputs is None:
            self.spec = spec = _with_inputs_from(spec, self.data)
        if _network is None:
            rngs = streams(spec.train.seed)
            self.network = Network(spec, rng=rngs["network"], registry=self.registry, source=source)
            _state = TrainingState(None, {k: rngs[k] for k in ("network", "shuffle")}, {})
        else:
            self.network = _network
        self.state = _state or TrainingState(None, {"shuffle": streams(spec.train.seed)["shuffle"]}, {})
        self.optimizer = self.state.optimizer or _optimizer_for(spec, self.registry)
        self.metrics: list[Metric] = [self.registry.get("metric", m.type).cls(m) for m in spec.metrics]
        self.state.optimizer = self.optimizer
        progress = self.state.progress
        for key, empty in (("epoch", 0), ("step", 0), ("position", 0), ("history", []),
                           ("running", {}), ("callbacks", {})):
            progress.setdefault(key, empty)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, *, epochs: int | None = None, seed: int | None = None,
                  registry: Registry | None = None, checkpoint_dir: str | Path | None = None) -> Runner:
        """A runner for the model file at `path`, with optional overrides of its recipe."""
        spec = read_model_file(path, registry)
        return cls(with_overrides(spec, epochs=epochs, seed=seed), source=str(path), registry=registry,
                   checkpoint_dir=checkpoint_dir)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, epochs: int | None = None, spec: SpecBase | None = None,
                        registry: Registry | None = None, checkpoint_dir: str | Path | None = None,
                        grads: bool = True) -> Runner:
        """A runner that continues exactly where the checkpoint at `path` stopped.

        `spec` (e.g. the model file again, with more epochs) replaces the stored training
        recipe; its network part must equal the stored one. grads=False skips reading the
        stored grads (they start at zero), for a runner that only evaluates or predicts.
        """
        with Checkpoint(path, registry) as checkpoint:
            network = checkpoint.network(grads=grads)
            if spec is not None:
                _check_same_network(network.spec, spec, checkpoint.path)
                network.spec = spec.model_copy(update={"inputs": network.spec.inputs})
            network.spec = with_overrides(network.spec, epochs=epochs)
            optimizer = _optimizer_for(network.spec, checkpoint.registry)
            state = checkpoint.training_state(network, optimizer)
        return cls(network.spec, source=str(path), registry=checkpoint.registry, _network=network, _state=state,
                   checkpoint_dir=checkpoint_dir)

    # -- data ---------------------------------------------------------------------------

    @property
    def data(self) -> Data:
        """The training data the model file names, made from the run's data stream."""
        if self._data is None:
            config = self.spec.data
            if config is None:
                raise DataError(f"{self.source}: the model file names no [data]; pass x and t")
            # A fresh data stream: the same seed always gives the same data, resumed or not.
            self._data = self._load(config, "data")
        return self._data

    def _load(self, config: Any, stream: str) -> Data:
        dataset = self.registry.get("dataset", config.type).cls(config)
        dataset.base_dir = Path(self.source).parent if self.source and not self.source.startswith("<") else None
        try:
            return dataset.load(streams(self.spec.train.seed)[stream])
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.source}: dataset {config.type!r}: {exc}") from None

    def _splits(self) -> tuple[Data, Data | None]:
        """(training data, validation data or None) from the model file."""
        if self._split is None:
            v = self.spec.validation
            if v is None:
                self._split = (self.data, None)
            elif v.data is not None:
                self._split = (self.data, self._load(v.data, "validation"))
            else:
                self._split = split_data(self.data, v.split, streams(self.spec.train.seed)["split"])
        return self._split

    @property
    def train_data(self) -> Data:
        """What `fit` trains on by default: the model file's data less any validation split."""
        return self._splits()[0]

    @property
    def validation_data(self) -> Data | None:
        """The model file's held-out data (a split of `data`, or a dataset of its own)."""
        return self._splits()[1]

    def _resolve(self, x: Inputs | None, t: np.ndarray | None) -> tuple[Inputs, np.ndarray]:
        if x is None and t is None:
            return self.train_data.x, self.train_data.t
        if x is None or t is None:
            raise DataError("pass both x and t, or neither to use the model file's data")
        return x, np.asarray(t)

    # -- training -----------------------------------------------------------------------

    @property
    def history(self) -> list[dict[str, float]]:
        """One record per finished epoch: epoch, loss and each metric (mean over its batches)."""
        return self.state.progress["history"]

    @property
    def epoch(self) -> int:
        """Finished epochs."""
        return int(self.state.progress["epoch"])

    def fit(self, x: Inputs | None = None, t: np.ndarray | None = None, *, epochs: int | None = None,
            log: Log | None = None, callbacks: list[Callback] | None = None,
            validation: tuple[Inputs, np.ndarray] | None = None) -> list[dict[str, float]]:
        """Train until `epochs` (default: the spec's) epochs are done; returns the history.

        Each epoch shuffles with the run's shuffle stream and runs len(x) // batch_size
        steps; the last partial batch is dropped (the book's rule), so every step sees
        exactly batch_size samples. After each epoch the validation data (`validation`,
        else the model file's) is scored as val_loss and val_<metric>. A run stopped
        mid-epoch and saved resumes mid-epoch. `log` gets one plain line every few epochs.
        """
        if x is None and t is None and validation is None and self.validation_data is not None:
            validation = (self.validation_data.x, self.validation_data.t)
        x, t = self._resolve(x, t)
        target = epochs if epochs is not None else self.spec.train.epochs
        n, batch = count_rows(x), self.spec.train.batch_size
        if len(t) != n:
            raise DataError(f"x has {n} samples but t has {len(t)}")
        steps = n // batch
        if steps == 0:
            raise DataError(f"batch_size {batch} is larger than the {n} training samples")
        net, optimizer, progress = self.network, self.optimizer, self.state.progress
        if net.loss_layer is None:
            raise ModelFileError(f"{self.source}: the network has no loss; add a [loss] section")
        optimizer.total_steps = target * steps
        self.steps_per_epoch, self.target_epochs = steps, target
        guard = [NanGuard()] if self.spec.train.nan_guard else []
        self._active = [*guard, *self.callbacks, *(callbacks or [])]
        if log is not None:
            self._active.append(LogLines(log))
        for cb in self._active:
            if cb.key is not None and cb.key in progress["callbacks"]:
                cb.load_state(progress["callbacks"][cb.key])
            if cb.key is not None and cb.key in self.state.callback_arrays:
                cb.load_arrays(self.state.callback_arrays[cb.key])
        hooks = CallbackList(self._active)
        self.stop_training = False
        hooks.on_train_begin(self)
        # With the guard on, overflow is its business: it stops with where it began, so
        # NumPy's own overflow warnings would only be noise ahead of that error.
        quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore") if guard else contextlib.nullcontext()
        with quiet:
            self._loop(x, t, validation, target, steps, batch, hooks)
        hooks.on_train_end(self)
        return self.history

    def _loop(self, x: Inputs, t: np.ndarray, validation: tuple[Inputs, np.ndarray] | None,
              target: int, steps: int, batch: int, hooks: CallbackList) -> None:
        net, optimizer, progress = self.network, self.optimizer, self.state.progress
        params, grads = list(net.params.values()), list(net.grads.values())
        shuffle, max_grad = self.state.rngs["shuffle"], self.spec.train.max_grad
        n = len(t)
        while progress["epoch"] < target and not self.stop_training:
            if progress["position"] == 0 or self.state.order is None:
                self.state.order = shuffle.permutation(n)
                progress["position"] = 0
                progress["running"] = {"loss": 0.0, **{m.name: 0.0 for m in self.metrics}}
                hooks.on_epoch_begin(self, progress["epoch"] + 1)
            order, running = self.state.order, progress["running"]
            while progress["position"] < steps and not self.stop_training:
                idx = order[progress["position"] * batch:(progress["position"] + 1) * batch]
                tb = t[idx]
                loss = net.loss(take_rows(x, idx), tb, train=True)
                net.backward()
                if max_grad is not None:
                    clip_grads(grads, max_grad)
                optimizer.update(params, grads)
                running["loss"] += loss
                if self.metrics:
                    probabilities = net.probabilities()
                    for metric in self.metrics:
                        running[metric.name] += metric(probabilities, tb)
                progress["position"] += 1
                progress["step"] += 1
                hooks.on_step_end(self, progress["step"], loss)
            if progress["position"] < steps:
                break  # stopped mid-epoch: position and order stay for a resume
            progress["epoch"] += 1
            progress["position"] = 0
            record = {"epoch": progress["epoch"], **{k: v / steps for k, v in running.items()}}
            if validation is not None:
                scores = self.evaluate(*validation)
                record.update({f"val_{k}": v for k, v in scores.items() if k != "samples"})
            progress["running"] = {}
            self.state.order = None
            progress["history"].append(record)
            hooks.on_epoch_end(self, progress["epoch"], record)

    # -- inference ----------------------------------------------------------------------

    def predict(self, x: Inputs, *, batch_size: int = 4096) -> np.ndarray:
        """Outputs for users: (N, C) class probabilities for a classifier."""
        return self.network.predict(x, batch_size=batch_size)

    def evaluate(self, x: Inputs | None = None, t: np.ndarray | None = None,
                 *, batch_size: int = 4096, confusion: bool = False) -> dict[str, Any]:
        """Mean loss and each metric over all of (x, t) (default: the training data), and
        with `confusion` the confusion matrix (counts[true][predicted]) of a classifier."""
        x, t = self._resolve(x, t)
        net = self.network
        if net.loss_layer is None:
            raise ModelFileError(f"{self.source}: the network has no loss to evaluate")
        n = len(t)
        if n == 0:
            raise DataError("nothing to evaluate: no samples")
        loss_sum, probabilities = 0.0, []
        for start in range(0, n, batch_size):
            xb, tb = take_rows(x, slice(start, start + batch_size)), t[start:start + batch_size]
            loss_sum += net.loss(xb, tb, train=False) * len(tb)
            probabilities.append(net.probabilities())
        probabilities = np.concatenate(probabilities)
        result: dict[str, Any] = {"loss": loss_sum / n, **{m.name: m(probabilities, t) for m in self.metrics},
                                  "samples": n}
        if confusion:
            result["confusion"] = confusion_matrix(probabilities, t)
        return result

    def save(self, path: str | Path) -> None:
        """Write the network, grads, optimizer and RNG state and progress to `path`."""
        for cb in [*self.callbacks, *self._active]:
            if cb.key is not None:
                self.state.progress["callbacks"][cb.key] = cb.state()
                self.state.callback_arrays[cb.key] = cb.arrays()
        save(path, self.network, self.state, registry=self.registry)


def describe_network(spec: SpecBase, *, source: str = "<spec>", registry: Registry | None = None) -> str:
    """A one-line summary: nodes, params and output shape, from stand-in arrays (nothing
    allocated); checks every shape on the way. Input shapes missing from the spec are
    taken from its data."""
    registry = registry or get_registry()
    if spec.inputs is None:
        spec = Runner(spec, source=source, registry=registry).spec
    net = Network(spec, rng=np.random.default_rng(0), registry=registry, source=source, skip_init="views")
    loss = f", loss {spec.loss.type}" if spec.loss is not None else ""
    return (f"{len(spec.nodes)} nodes, {net.param_count():,} params, "
            f"output {'×'.join(map(str, net.output_shape)) or 'scalar'} per sample{loss}")


def _check_same_network(stored: SpecBase, new: SpecBase, path: Path) -> None:
    keys = ("dtype", "nodes", "outputs", "loss")
    a, b = stored.to_dict(), new.to_dict()
    different = [k for k in keys if a.get(k) != b.get(k)]
    if new.inputs is not None and a.get("inputs") != b.get("inputs"):
        different.append("inputs")
    if different:
        raise ModelFileError(f"{path}: the model file's network differs from the checkpoint's ({', '.join(different)})")


def clip_grads(grads: list[np.ndarray], max_grad: float) -> float:
    """Scale all grads in place by max_grad / (norm + 1e-6) when their global L2 norm exceeds
    max_grad (the book's rule); returns the norm before clipping."""
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
    rate = max_grad / (norm + 1e-6)
    if rate < 1:
        for g in grads:
            g *= g.dtype.type(rate)
    return norm


def _optimizer_for(spec: SpecBase, registry: Registry) -> Optimizer:
    """A fresh optimizer of the spec's type."""
    return registry.get("optimizer", spec.optimizer.type).cls(spec.optimizer)


def with_overrides(spec: SpecBase, *, epochs: int | None = None, seed: int | None = None) -> SpecBase:
    """`spec` with the training recipe's epochs or seed replaced (validated like the file)."""
    changes = {k: v for k, v in {"epochs": epochs, "seed": seed}.items() if v is not None}
    if not changes:
        return spec
    try:
        train = TrainSpec.model_validate({**spec.train.model_dump(), **changes})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ModelFileError(f"--{err['loc'][0]} {err['input']}: {err['msg']}") from None
    return spec.model_copy(update={"train": train})


def split_data(data: Data, fraction: float, rng: np.random.Generator) -> tuple[Data, Data]:
    """(training part, held-out part): a seeded shuffle, then the last `fraction` held out."""
    n = len(data)
    held = max(1, int(round(n * fraction)))
    if held >= n:
        raise DataError(f"a validation split of {fraction} leaves no training data from {n} samples")
    order = rng.permutation(n)
    train, valid = np.sort(order[:n - held]), np.sort(order[n - held:])
    return Data(take_rows(data.x, train), data.t[train]), Data(take_rows(data.x, valid), data.t[valid])


def _with_inputs_from(spec: SpecBase, data: Data) -> SpecBase:
    """`spec` with its inputs shaped like the data's samples (`x`, or the data's names)."""
    arrays = data.x if isinstance(data.x, Mapping) else {"x": data.x}
    inputs: dict[str, Any] = {
        name: InputSpec(shape=list(a.shape[1:]), dtype="int" if np.issubdtype(a.dtype, np.integer) else "float")
        for name, a in arrays.items()
    }
    return spec.model_copy(update={"inputs": inputs})
