"""The runner: builds a network from a spec, trains it as the book's trainer does, predicts,
evaluates, and saves or resumes checkpoints. The CLI is a thin layer over this class.

Each epoch draws a permutation from the shuffle stream and runs `len(x) // batch_size`
steps (the remainder of the permutation is dropped, as in the book); each step is
forward, backward, optimizer update.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.checkpoint import Checkpoint, TrainingState, save
from nnkit.datasets import Data
from nnkit.errors import DataError, ModelFileError
from nnkit.graph import Inputs, Network
from nnkit.metrics import accuracy
from nnkit.modelfile import read_model_file
from nnkit.optimizers import Optimizer
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.rng import streams
from nnkit.spec import InputSpec, SpecBase, TrainSpec

Log = Callable[[str], None]


class Runner:
    """Trains and runs one network. Build with `from_file`, `from_checkpoint` or a spec."""

    def __init__(self, spec: SpecBase, *, source: str = "<spec>", registry: Registry | None = None,
                 _network: Network | None = None, _state: TrainingState | None = None) -> None:
        self.registry = registry or get_registry()
        self.source = source
        self._data: Data | None = None
        self.spec = spec
        if spec.inputs is None:
            self.spec = spec = _with_inputs_from(spec, self.data)
        if _network is None:
            rngs = streams(spec.train.seed)
            self.network = Network(spec, rng=rngs["network"], registry=self.registry, source=source)
            self.optimizer = self._make_optimizer()
            self.state = TrainingState(self.optimizer, rngs, {"epoch": 0, "step": 0, "history": []})
        else:
            self.network = _network
            self.state = _state or TrainingState(self._make_optimizer(), streams(spec.train.seed), {})
            self.optimizer = self.state.optimizer or self._make_optimizer()
            self.state.optimizer = self.optimizer
            self.state.progress.setdefault("epoch", 0)
            self.state.progress.setdefault("step", 0)
            self.state.progress.setdefault("history", [])

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, *, epochs: int | None = None, seed: int | None = None,
                  registry: Registry | None = None) -> Runner:
        """A runner for the model file at `path`, with optional overrides of its recipe."""
        spec = read_model_file(path, registry)
        return cls(with_overrides(spec, epochs=epochs, seed=seed), source=str(path), registry=registry)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, epochs: int | None = None,
                        registry: Registry | None = None) -> Runner:
        """A runner that resumes exactly where the checkpoint at `path` stopped."""
        checkpoint = Checkpoint(path, registry)
        try:
            network = checkpoint.network()
            spec = with_overrides(network.spec, epochs=epochs)
            network.spec = spec
            optimizer = _optimizer_for(spec, checkpoint.registry)
            state = checkpoint.training_state(network, optimizer)
        finally:
            checkpoint.close()
        return cls(spec, source=str(path), registry=checkpoint.registry, _network=network, _state=state)

    def _make_optimizer(self) -> Optimizer:
        return _optimizer_for(self.spec, self.registry)

    # -- data ---------------------------------------------------------------------------

    @property
    def data(self) -> Data:
        """The training data the model file names, made from the run's data stream."""
        if self._data is None:
            config = self.spec.data
            if config is None:
                raise DataError(f"{self.source}: the model file names no [data]; pass x and t")
            dataset = self.registry.get("dataset", config.type).cls(config)
            # A fresh data stream: the same seed always gives the same data, resumed or not.
            self._data = dataset.load(streams(self.spec.train.seed)["data"])
        return self._data

    def _resolve(self, x: Inputs | None, t: np.ndarray | None) -> tuple[Inputs, np.ndarray]:
        if x is None and t is None:
            return self.data.x, self.data.t
        if x is None or t is None:
            raise DataError("pass both x and t, or neither to use the model file's data")
        return x, np.asarray(t)

    # -- training -----------------------------------------------------------------------

    @property
    def history(self) -> list[dict[str, float]]:
        """One record per finished epoch: epoch, loss, accuracy."""
        return self.state.progress["history"]

    def fit(self, x: Inputs | None = None, t: np.ndarray | None = None, *,
            epochs: int | None = None, log: Log | None = None) -> list[dict[str, float]]:
        """Train until `epochs` (default: the spec's) epochs are done; returns the history."""
        x, t = self._resolve(x, t)
        if not isinstance(x, np.ndarray):
            raise DataError("fit takes one input array in this version")
        target = epochs if epochs is not None else self.spec.train.epochs
        n, batch = len(x), self.spec.train.batch_size
        if len(t) != n:
            raise DataError(f"x has {n} samples but t has {len(t)}")
        steps = n // batch
        if steps == 0:
            raise DataError(f"batch_size {batch} is larger than the {n} training samples")
        net, optimizer = self.network, self.optimizer
        params, grads = list(net.params.values()), list(net.grads.values())
        shuffle = self.state.rngs["shuffle"]
        every = self.spec.train.log_every or max(1, target // 10)
        max_grad = self.spec.train.max_grad
        optimizer.total_steps = target * steps
        progress = self.state.progress
        while progress["epoch"] < target:
            order = shuffle.permutation(n)
            total_loss = correct = 0.0
            for step in range(steps):
                idx = order[step * batch:(step + 1) * batch]
                tb = t[idx]
                total_loss += net.loss(x[idx], tb, train=True)
                net.backward()
                if max_grad is not None:
                    clip_grads(grads, max_grad)
                optimizer.update(params, grads)
                correct += accuracy(net.loss_layer.predict(net.values[net.spec.loss.inputs[0]]), tb)
            progress["epoch"] += 1
            progress["step"] += steps
            record = {"epoch": progress["epoch"], "loss": total_loss / steps, "accuracy": correct / steps}
            progress["history"].append(record)
            if log is not None and (record["epoch"] % every == 0 or record["epoch"] == target):
                log(f"epoch {record['epoch']:>{len(str(target))}}/{target}  "
                    f"loss {record['loss']:.4f}  accuracy {record['accuracy']:.4f}")
        return self.history

    # -- inference ----------------------------------------------------------------------

    def predict(self, x: Inputs, *, batch_size: int = 4096) -> np.ndarray:
        """Outputs for users: (N, C) class probabilities for a classifier."""
        return self.network.predict(x, batch_size=batch_size)

    def evaluate(self, x: Inputs | None = None, t: np.ndarray | None = None,
                 *, batch_size: int = 4096) -> dict[str, float]:
        """Mean loss and accuracy over all of (x, t) (default: the model file's data)."""
        x, t = self._resolve(x, t)
        net = self.network
        if net.loss_layer is None:
            raise ModelFileError(f"{self.source}: the network has no loss to evaluate")
        n = len(t)
        if n == 0:
            raise DataError("nothing to evaluate: no samples")
        loss_sum, probabilities = 0.0, []
        for start in range(0, n, batch_size):
            xb = x[start:start + batch_size] if isinstance(x, np.ndarray) else \
                {k: v[start:start + batch_size] for k, v in x.items()}
            tb = t[start:start + batch_size]
            loss_sum += net.loss(xb, tb, train=False) * len(tb)
            probabilities.append(net.loss_layer.predict(net.values[net.spec.loss.inputs[0]]))
        return {"loss": loss_sum / n, "accuracy": accuracy(np.concatenate(probabilities), t), "samples": n}

    def save(self, path: str | Path) -> None:
        """Write the network, grads, optimizer and RNG state and progress to `path`."""
        save(path, self.network, self.state, registry=self.registry)


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
    return registry.get("optimizer", spec.optimizer.type).cls(spec.optimizer)


def with_overrides(spec: SpecBase, *, epochs: int | None = None, seed: int | None = None) -> SpecBase:
    """`spec` with the training recipe's epochs or seed replaced (validated like the file)."""
    changes = {k: v for k, v in {"epochs": epochs, "seed": seed}.items() if v is not None}
    if not changes:
        return spec
    try:
        train = TrainSpec.model_validate({**spec.train.model_dump(), **changes})
    except ValueError as exc:
        raise ModelFileError(f"invalid override: {exc}") from None
    return spec.model_copy(update={"train": train})


def _with_inputs_from(spec: SpecBase, data: Data) -> SpecBase:
    """`spec` with its single input `x` shaped like the data's samples."""
    kind = "int" if np.issubdtype(data.x.dtype, np.integer) else "float"
    inputs: dict[str, Any] = {"x": InputSpec(shape=list(data.x.shape[1:]), dtype=kind)}
    return spec.model_copy(update={"inputs": inputs})
