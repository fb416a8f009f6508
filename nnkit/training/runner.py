"""The runner: the book's trainer loop and its state.

Each epoch draws a permutation from the shuffle stream and runs `len(x) // batch_size`
steps (the remainder of the permutation is dropped, as in the book); each step is
forward, backward, optional clipping, optimizer update. Everything an exact resume needs
is in `TrainingState`; the network, optimizer and data are built by the construction
helpers (`from_file`, `from_spec`, `from_checkpoint`) and handed in.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.checkpoint import Checkpoint, save
from nnkit.data import Data, Inputs, count_rows, take_rows
from nnkit.data.recipe import RecipeData, inputs_like, with_vocabulary
from nnkit.errors import CheckpointError, DataError, ModelFileError, TrainingError
from nnkit.inference import confusion_matrix
from nnkit.metrics import Metric
from nnkit.modelfile import read_model_file
from nnkit.network import LossResult, Network
from nnkit.optim.clipping import clip_grads
from nnkit.optim.optimizers import Optimizer
from nnkit.registry import Registry
from nnkit.spec import Spec
from nnkit.training.bptt import Windows, add_step, as_stream, scores_of_stream
from nnkit.training.callbacks import Callback, CallbackList, NanGuard
from nnkit.training.progress import Log, LogLines
from nnkit.training.resume import resume_recipe
from nnkit.training.rng import streams
from nnkit.training.state import TrainingState


def make_optimizer(spec: Spec, registry: Registry) -> Optimizer:
    """A fresh optimizer of the spec's type."""
    optimizer: Optimizer = registry.get("optimizer", spec.optimizer.type).cls(spec.optimizer)
    return optimizer


class Runner:
    """Trains and runs one network. Build with `from_file`, `from_spec` or `from_checkpoint`."""

    def __init__(self, network: Network, state: TrainingState, registry: Registry, *, spec: Spec | None = None,
                 data: RecipeData | None = None, source: str = "<spec>", callbacks: list[Callback] | None = None,
                 checkpoint_dir: str | Path | None = None) -> None:
        """`spec` is the recipe to train by (default: the network's own); `data` what it
        names; `checkpoint_dir` where the model file's checkpoint callback writes (a model
        file never chooses a path); `callbacks` are added to those the recipe turns on."""
        self.network, self.state, self.registry, self.source = network, state, registry, source
        self.spec = spec or network.spec
        self.optimizer = state.optimizer
        self.recipe_data = data
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.metrics: list[Metric] = [registry.get("metric", m.type).cls(m) for m in self.spec.metrics]
        #: The metrics each training step reports (not those that decode answers).
        self.step_metrics = [m for m in self.metrics if not m.needs_decoding]
        self.callbacks: list[Callback] = [
            registry.get("callback", c.type).cls(c) for c in self.spec.callbacks] + list(callbacks or [])
        self.stop_training = False
        self.notes: list[str] = []  # what callbacks want users told, e.g. that training stopped early
        self.steps_per_epoch = 0
        self.target_epochs = self.spec.train.epochs
        #: The last training step's loss, node outputs and predictions (the NaN guard reads them).
        self.last_step: LossResult | None = None
        #: False for a runner loaded for inference (no optimizer state): it refuses to train.
        self.resumable = True
        #: Components of the recipe whose plugins are missing → what each needs; they are
        #: needed to train, save the recipe, or read its data, not to predict.
        self.missing: dict[str, str] = {}
        self._restored: set[int] = set()  # callbacks that have had their stored state
        self._active: list[Callback] = []

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: Spec, registry: Registry | None = None, *, source: str = "<spec>",
                  callbacks: list[Callback] | None = None, checkpoint_dir: str | Path | None = None) -> Runner:
        """A runner for a fresh network: one seed gives the data, init and shuffle streams."""
        registry = registry or _default_registry()
        rngs = streams(spec.train.seed)
        data = RecipeData(spec, registry, source, rngs)
        if spec.inputs is None:
            time_size = spec.train.bptt.time_size if spec.train.bptt is not None else None
            spec = spec.replace(inputs=inputs_like(data.all, time_size))
        network = Network.from_spec(spec, registry, rng=rngs["network"], source=source)
        state = TrainingState(make_optimizer(spec, registry), {k: rngs[k] for k in ("network", "shuffle")})
        return cls(network, state, registry, data=data, source=source, callbacks=callbacks,
                   checkpoint_dir=checkpoint_dir)

    @classmethod
    def from_file(cls, path: str | Path, *, epochs: int | None = None, seed: int | None = None,
                  registry: Registry | None = None, checkpoint_dir: str | Path | None = None) -> Runner:
        """A runner for the model file at `path`, with optional overrides of its recipe."""
        registry = registry or _default_registry()
        spec = read_model_file(path, registry).with_train(epochs=epochs, seed=seed)
        return cls.from_spec(spec, registry, source=str(path), checkpoint_dir=checkpoint_dir)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, epochs: int | None = None, spec: Spec | None = None,
                        registry: Registry | None = None, checkpoint_dir: str | Path | None = None,
                        grads: bool = True, mmap: bool = False, verify: bool = True,
                        spec_source: str | None = None) -> Runner:
        """A runner that continues exactly where the checkpoint at `path` stopped.

        `spec` (e.g. the model file again, from `spec_source`) may change the stored recipe
        in `nnkit.training.resume.RESUMABLE` fields only (each change becomes a line in `notes`);
        `epochs` sets the recipe's epochs. grads=False reads neither the
        stored grads (they start at zero) nor the optimizer's state, for a runner that only
        evaluates or predicts (`resumable` is then False). mmap and verify: see `nnkit.load`.
        """
        registry = registry or _default_registry()
        with Checkpoint(path, registry, writable=mmap) as checkpoint:
            network = checkpoint.network(grads=grads, mmap=mmap, verify=verify)
            missing = checkpoint.missing  # plugins of the recipe's components that are not installed
            recipe, notes = resume_recipe(network.spec, (spec or network.spec).with_train(epochs=epochs),
                                          str(checkpoint.path), checkpoint.header.progress.epoch)
            with_optimizer = grads and not any(k.startswith("optimizer ") for k in missing)
            state = checkpoint.training_state(network, make_optimizer(recipe, registry), with_optimizer=with_optimizer)
        # Relative data paths start at the model file given again, else at the checkpoint.
        data = RecipeData(recipe, registry, spec_source or str(path), streams(recipe.train.seed),
                          confine=spec_source is None)
        runner = cls(network, state, registry, spec=recipe, data=data, source=str(path),
                     checkpoint_dir=checkpoint_dir)
        runner.resumable = grads
        runner.missing = missing
        runner.notes.extend(notes)
        return runner

    # -- data ---------------------------------------------------------------------------

    def _needs_all_plugins(self, what: str) -> None:
        if self.missing:
            raise TrainingError(f"{self.source}: to {what} it, {'; '.join(self.missing.values())}")

    def _recipe(self) -> RecipeData:
        if any(k.startswith("dataset ") for k in self.missing):
            raise DataError(f"{self.source}: its data: "
                            + "; ".join(v for k, v in self.missing.items() if k.startswith("dataset ")))
        if self.recipe_data is None:
            raise DataError(f"{self.source}: it names no data: pass some (--data FILE on the command line, x and "
                            "y from Python)")
        return self.recipe_data

    @property
    def data(self) -> Data:
        """The training data the model file names, whole."""
        return self._recipe().all

    @property
    def train_data(self) -> Data:
        """What `fit` trains on by default: the model file's data less any validation split."""
        return self._recipe().train

    @property
    def validation_data(self) -> Data | None:
        """The model file's held-out data (a split of `data`, or a dataset of its own)."""
        return self.recipe_data.validation if self.recipe_data is not None else None

    def _resolve(self, x: Inputs | None, t: np.ndarray | None) -> tuple[Inputs, np.ndarray]:
        if x is None and t is None:
            self._keep_vocabulary()
            return self.train_data.x, self.train_data.t
        if x is None or t is None:
            raise DataError("pass both x and t, or neither to use the model file's data")
        return x, np.asarray(t)

    def _keep_vocabulary(self) -> None:
        """A word corpus's vocabulary goes with the spec's integer inputs (and so into
        every checkpoint), once."""
        vocabulary = self._recipe().all.vocabulary
        if vocabulary is not None and self.spec.inputs is not None:
            inputs = with_vocabulary(self.spec.inputs, vocabulary)
            if inputs is not None:
                self.spec = self.spec.replace(inputs=inputs)

    # -- training -----------------------------------------------------------------------

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per finished epoch: epoch, loss and each metric (mean over its batches)."""
        return self.state.progress.history

    @property
    def epoch(self) -> int:
        """Finished epochs."""
        return self.state.progress.epoch

    def fit(self, x: Inputs | None = None, t: np.ndarray | None = None, *, epochs: int | None = None,
            log: Log | None = None, callbacks: list[Callback] | None = None,
            validation: tuple[Inputs, np.ndarray] | None = None) -> list[dict[str, Any]]:
        """Train until `epochs` (default: the spec's) epochs are done; returns the history.

        Each epoch shuffles with the run's shuffle stream and runs len(x) // batch_size
        steps; the last partial batch is dropped (the book's rule), so every step sees
        exactly batch_size samples. After each epoch the validation data (`validation`,
        else the model file's) is scored as val_loss and val_<metric>. A run stopped
        mid-epoch and saved resumes mid-epoch. `log` gets one plain line every few epochs.
        """
        self._needs_all_plugins("train")
        if not self.resumable:
            raise TrainingError(f"{self.source}: loaded for inference (grads=False), without the optimizer's state; "
                                "load it with grads=True to train on")
        if x is None and t is None and validation is None and self.validation_data is not None:
            validation = (self.validation_data.x, self.validation_data.t)
        x, t = self._resolve(x, t)
        target = epochs if epochs is not None else self.spec.train.epochs
        batch, bptt, windows = self.spec.train.batch_size, self.spec.train.bptt, None
        if bptt is not None:  # one ordered stream, read in the book's windows
            windows = Windows(*as_stream(x, t, self.source), batch, bptt.time_size, self.source)
            x, t = windows.xs, windows.ts
            n, steps = len(t), windows.steps
        else:
            n = count_rows(x)
            if len(t) != n:
                raise DataError(f"x has {n} samples but t has {len(t)}")
            steps = n // batch
            if steps == 0:
                raise DataError(f"batch_size {batch} is larger than the {n} training samples")
        if self.network.loss_layer is None:
            raise ModelFileError(f"{self.source}: the network has no loss; add a [loss] section")
        self.network.plan.check_batch(batch, "a training step")
        self.network.loss_layer.prepare(t)
        # A schedule spans the recipe's epochs, however many `fit` calls reach them.
        self.optimizer.total_steps = self.spec.train.epochs * steps
        self.steps_per_epoch, self.target_epochs = steps, target
        guard = [NanGuard()] if self.spec.train.nan_guard else []
        self._active = [*guard, *self.callbacks, *(callbacks or [])]
        if log is not None:
            self._active.append(LogLines(log))
        self._restore_callbacks()
        self.check_resume(n, steps)
        hooks = CallbackList(self._active)
        self.stop_training = False
        hooks.on_train_begin(self)
        # With the guard on, overflow is its business: it stops with where it began, so
        # NumPy's own overflow warnings would only be noise ahead of that error.
        quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore") if guard else contextlib.nullcontext()
        with quiet:
            self._loop(x, t, validation, target, steps, batch, hooks, windows)
        hooks.on_train_end(self)
        return self.history

    def _restore_callbacks(self) -> None:
        """Give each callback its stored state, once (a later `fit` keeps what it has)."""
        progress = self.state.progress
        for cb in self._active:
            if cb.key is None or id(cb) in self._restored:
                continue
            self._restored.add(id(cb))
            try:
                if cb.key in progress.callbacks:
                    cb.load_state(progress.callbacks[cb.key])
                if cb.key in self.state.callback_arrays:
                    cb.load_arrays(self.state.callback_arrays[cb.key])
            except (ValueError, TypeError, KeyError) as exc:
                reason = " ".join(str(exc).split())[:300]
                raise CheckpointError(f"{self.source}: progress.callbacks.{cb.key}: {reason}") from None

    def check_resume(self, n: int, steps: int) -> None:
        """A stored unfinished epoch must fit the data it resumes on: an order of all `n`
        samples, a position inside the epoch, running sums of this run's metrics."""
        progress, order = self.state.progress, self.state.order
        if not progress.position:
            return
        if self.spec.train.bptt is None and (order is None or len(order) != n):
            raise CheckpointError(f"{self.source}: progress/order holds {0 if order is None else len(order)} "
                                  f"samples; the data has {n}")
        if progress.position >= steps:
            raise CheckpointError(f"{self.source}: progress.position {progress.position} is past the epoch's "
                                  f"{steps} steps")
        expected = {"loss", *(m.name for m in self.step_metrics)}
        if set(progress.running) != expected:
            raise CheckpointError(f"{self.source}: progress.running holds {sorted(progress.running)}, not "
                                  f"{sorted(expected)}")

    def _loop(self, x: Inputs, t: np.ndarray, validation: tuple[Inputs, np.ndarray] | None,
              target: int, steps: int, batch: int, hooks: CallbackList, windows: Windows | None) -> None:
        net, optimizer, progress = self.network, self.optimizer, self.state.progress
        params, grads = list(net.params.values()), list(net.grads.values())
        shuffle, max_grad = self.state.rngs["shuffle"], self.spec.train.max_grad
        continuous = self.spec.train.bptt is not None and self.spec.train.bptt.continuous
        metrics = self.step_metrics
        while progress.epoch < target and not self.stop_training:
            if progress.position == 0 or (windows is None and self.state.order is None):
                if windows is None:
                    self.state.order = shuffle.permutation(len(t))
                if not continuous:
                    net.reset_states()  # stateful layers start each epoch from zero
                progress.position = 0
                progress.running = {"loss": 0.0, **{m.name: 0.0 for m in self.step_metrics}}
                hooks.on_epoch_begin(self, progress.epoch + 1)
            order, running = self.state.order, progress.running
            while progress.position < steps and not self.stop_training:
                xb: Inputs
                if windows is not None:  # the book's time_idx, on from the last epoch's when continuous
                    xb, tb = windows.window(progress.epoch * steps * continuous + progress.position)
                else:
                    assert order is not None
                    start = progress.position * batch
                    idx = order[start:start + batch]
                    xb, tb = take_rows(x, idx), t[idx]
                self.last_step = step = net.loss(xb, tb, train=True)
                net.backward()
                if max_grad is not None:
                    clip_grads(grads, max_grad)
                optimizer.update(params, grads)
                add_step(running, metrics, step, tb)
                progress.position += 1
                progress.step += 1
                hooks.on_step_end(self, progress.step, step.loss)
            if progress.position < steps:
                break  # stopped mid-epoch: position and order stay for a resume
            progress.epoch += 1
            progress.position = 0
            record: dict[str, Any] = {"epoch": progress.epoch, "loss": running["loss"] / steps,
                                      **{m.name: m.finish(running[m.name] / steps) for m in self.step_metrics}}
            if validation is not None:
                scores = self.evaluate(*validation)
                record.update({f"val_{k}": v for k, v in scores.items() if k != "samples"})
            progress.running = {}
            self.state.order = None
            progress.history.append(record)
            hooks.on_epoch_end(self, progress.epoch, record)

    # -- inference ----------------------------------------------------------------------

    def predict(self, x: Inputs, *, batch_size: int = 4096) -> np.ndarray:
        """Outputs for users: (N, C) class probabilities for a classifier."""
        return self.network.predict(x, batch_size=batch_size)

    def evaluate(self, x: Inputs | None = None, t: np.ndarray | None = None,
                 *, batch_size: int = 4096, confusion: bool = False) -> dict[str, Any]:
        """Mean loss and each metric over all of (x, t) (default: the training data), and
        with `confusion` the confusion matrix (counts[true][predicted]) of a classifier."""
        x, t = self._resolve(x, t)
        if self.network.loss_layer is None:
            raise ModelFileError(f"{self.source}: the network has no loss to evaluate")
        bptt = self.spec.train.bptt
        if bptt is not None:  # a language model: the held-out text as one stream, state carried
            if confusion:
                raise DataError(f"{self.source}: no confusion matrix for a language model (train.bptt)")
            return scores_of_stream(self.network, self.step_metrics, x, t, bptt.eval_batch_size, bptt.time_size)
        n = len(t)
        if n == 0:
            raise DataError("nothing to evaluate: no samples")
        loss_sum, chunks = 0.0, []
        with self.network.streaming(carry=False):  # batch by batch, each from zero states
            for start in range(0, n, batch_size):
                xb, tb = take_rows(x, slice(start, start + batch_size)), t[start:start + batch_size]
                result = self.network.loss(xb, tb, train=False)
                loss_sum += result.loss * len(tb)
                chunks.append(result.predictions)
        predictions = np.concatenate(chunks)
        scores: dict[str, Any] = {"loss": loss_sum / n,
                                  **{m.name: m.finish(m(predictions, t)) for m in self.step_metrics},
                                  **{m.name: m.decoded(self.network, x, t) for m in self.metrics if m.needs_decoding},
                                  "samples": n}
        if confusion:
            scores["confusion"] = confusion_matrix(predictions, t)
        return scores

    def save(self, path: str | Path, *, allow_non_finite: bool = False) -> None:
        """Write the network, grads, recipe, optimizer and RNG state, progress and every
        callback's state to `path` (non-finite params only with `allow_non_finite`)."""
        self._needs_all_plugins("save")  # its recipe would lose the components it cannot build
        for cb in self._active:  # a callback that has not run since loading keeps what was stored
            if cb.key is not None:
                self.state.progress.callbacks[cb.key] = cb.state()
                self.state.callback_arrays[cb.key] = cb.arrays()
        save(path, self.network, self.registry, self.state, spec=self.spec, allow_non_finite=allow_non_finite)


def _default_registry() -> Registry:
    """The installed plugins' registry: resolved here, at the construction helpers, only."""
    from nnkit.plugins import get_registry

    return get_registry()
