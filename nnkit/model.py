"""`Model`: one object for Python users — a network, its recipe and its training state —
with `fit`, `evaluate`, `predict`, `save` and `summary` as Keras users expect.

    model = nnkit.Model.from_file("examples/spiral.toml")
    model.fit()                      # the recipe's epochs; fit(epochs=5) trains 5 more
    model.evaluate()                 # {'loss': ..., 'accuracy': ..., 'samples': 300}
    model.save("spiral.nnk")
    model = nnkit.load("spiral.nnk")
    model.predict(x)                 # (N, 3) class probabilities

Each `fit` call trains `epochs` *more* epochs, continuing the same random streams and
optimizer state, so `fit(epochs=3); fit(epochs=2)` is bit for bit `fit(epochs=5)`, and
so is saving, loading and fitting on. Learning-rate schedules span the recipe's
`train.epochs`, whatever the calls.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from nnkit.data import Data, Inputs, split_data
from nnkit.data.frames import as_inputs, as_targets, column_names, is_frame
from nnkit.data.recipe import inputs_like
from nnkit.errors import DataError, TrainingError
from nnkit.network import Network
from nnkit.registry import Registry
from nnkit.spec import InputSpec, Spec
from nnkit.training.callbacks import Callback
from nnkit.training.progress import reporter
from nnkit.training.rng import streams
from nnkit.training.runner import Runner

Verbose = bool | Literal["auto"]


class History:
    """Per-epoch records of a run: `records` as they were logged, `history` as Keras has it
    (metric name → one value per epoch) and `epoch` (the epochs' numbers, from 1)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    @property
    def history(self) -> dict[str, list[Any]]:
        keys = [k for r in self.records for k in r if k != "epoch"]
        return {k: [r.get(k) for r in self.records] for k in dict.fromkeys(keys)}

    @property
    def epoch(self) -> list[int]:
        return [int(r["epoch"]) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.records[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.records == other.records

    def __repr__(self) -> str:
        last = ", ".join(f"{k} {v:.4f}" for k, v in self.records[-1].items()
                         if k != "epoch" and isinstance(v, float)) if self.records else ""
        return f"History({len(self)} epochs{': ' + last if last else ''})"


class Model:
    """A network with its recipe and training state. Build with `from_file`, `from_spec`
    or `nnkit.load`; the network itself is `model.network`."""

    def __init__(self, spec: Spec, registry: Registry, *, source: str = "<spec>", runner: Runner | None = None,
                 checkpoint_dir: str | Path | None = None) -> None:
        """Prefer the constructors. A spec without `inputs` and without data is built at
        the first `fit`, shaped like the arrays it is given."""
        self.registry, self.source, self.checkpoint_dir = registry, source, checkpoint_dir
        self._spec, self._runner = spec, runner
        if runner is None and (spec.inputs is not None or spec.data is not None):
            self._runner = Runner.from_spec(spec, registry, source=source, checkpoint_dir=checkpoint_dir)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, *, epochs: int | None = None, seed: int | None = None,
                  registry: Registry | None = None, checkpoint_dir: str | Path | None = None,
                  weights: str | Path | None = None) -> Model:
        """The model a model file declares, with optional overrides of its recipe.
        `weights`: a checkpoint or `.safetensors` file whose params (by name, all of them,
        nothing else) replace the fresh ones."""
        from nnkit.modelfile import read_model_file

        registry = registry or _default_registry()
        spec = read_model_file(path, registry).with_train(epochs=epochs, seed=seed)
        model = cls(spec, registry, source=str(path), checkpoint_dir=checkpoint_dir)
        if weights is not None:
            from nnkit.interop.weights import load_weights

            load_weights(model.network, weights, registry, grads=False)
        return model

    @classmethod
    def from_spec(cls, spec: Spec | Mapping[str, Any], *, registry: Registry | None = None,
                  source: str = "<spec>", checkpoint_dir: str | Path | None = None) -> Model:
        """The model a spec declares: a validated `Spec`, or plain data as a model file holds."""
        from nnkit.modelfile import validate_spec

        registry = registry or _default_registry()
        if not isinstance(spec, Spec):
            spec = validate_spec(dict(spec), source, registry)
        return cls(spec, registry, source=source, checkpoint_dir=checkpoint_dir)

    @classmethod
    def load(cls, path: str | Path, *, grads: bool = True, mmap: bool = False, verify: bool = True,
             registry: Registry | None = None, spec: Spec | None = None, epochs: int | None = None,
             checkpoint_dir: str | Path | None = None, spec_source: str | None = None) -> Model:
        """The model saved at `path`, ready to predict and to train on exactly where it
        stopped (see `nnkit.load` for grads, mmap and verify). `spec` (a model file's, read
        from `spec_source`) may change the stored recipe where a resume may
        (`nnkit.training.resume.RESUMABLE`); `epochs` sets the recipe's epochs."""
        registry = registry or _default_registry()
        runner = Runner.from_checkpoint(path, epochs=epochs, spec=spec, registry=registry, grads=grads, mmap=mmap,
                                        verify=verify, checkpoint_dir=checkpoint_dir, spec_source=spec_source)
        return cls(runner.spec, registry, source=str(path), runner=runner, checkpoint_dir=checkpoint_dir)

    # -- what it holds --------------------------------------------------------------------

    @property
    def runner(self) -> Runner:
        """The training loop and its state (callbacks receive it)."""
        if self._runner is None:
            raise DataError(f"{self.source}: the model is not built yet: its input shapes come from the data, "
                            "so fit it first (or declare [inputs])")
        return self._runner

    @property
    def built(self) -> bool:
        return self._runner is not None

    @property
    def spec(self) -> Spec:
        """The recipe: the network and how it trains (what `save` stores)."""
        return self._runner.spec if self._runner is not None else self._spec

    @property
    def network(self) -> Network:
        return self.runner.network

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The network's params by name (`"fc1.W"`); writing into them changes the model."""
        return self.network.params

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self.network.grads

    @property
    def history(self) -> History:
        """Every finished epoch of the run, across `fit` calls and saves."""
        return History(self.runner.history if self.built else [])

    @property
    def epoch(self) -> int:
        """Finished epochs."""
        return self.runner.epoch if self.built else 0

    @property
    def data(self) -> Data:
        """The data the recipe names, whole."""
        return self.runner.data

    @property
    def validation_data(self) -> Data | None:
        """The recipe's held-out data, if any."""
        return self.runner.validation_data

    @property
    def columns(self) -> list[str] | None:
        """The column names of the DataFrame the model was fitted on, if any."""
        inputs = self.spec.inputs
        x = inputs.get("x") if inputs is not None and len(inputs) == 1 else None
        return list(x.columns) if x is not None and x.columns is not None else None

    # -- training and use -------------------------------------------------------------------

    def fit(self, x: Any = None, y: Any = None, *, epochs: int | None = None, batch_size: int | None = None,
            validation_data: tuple[Any, Any] | None = None, validation_split: float | None = None,
            callbacks: list[Callback] | None = None, verbose: Verbose = "auto", until: int | None = None) -> History:
        """Train `epochs` more epochs (default: the recipe's) on (x, y), or on the recipe's
        data when both are None; returns the History of this call. `until` instead trains
        until that many epochs are done in all (to finish a loaded run's recipe:
        `until=model.spec.train.epochs`); an epoch stopped half-way counts as one to do.

        `validation_data` (x, y) or `validation_split` (a seeded fraction of x held out)
        are scored after each epoch as val_loss and val_<metric>. `batch_size` changes the
        recipe's. `verbose`: the progress lines or bar the CLI prints; "auto" is on in a
        terminal or a notebook. Arrays, DataFrames (column names kept) and Series are taken.
        """
        if (x is None) != (y is None):
            raise DataError("pass both x and y, or neither to train on the recipe's data")
        if epochs is not None and epochs < 1:
            raise DataError(f"epochs must be at least 1, not {epochs}")
        if epochs is not None and until is not None:
            raise DataError("pass epochs (how many more) or until (how many in all), not both")
        inputs, targets = self._fitting(x, y)
        runner = self.runner
        if batch_size is not None and batch_size != runner.spec.train.batch_size:
            if runner.state.progress.position:
                raise TrainingError(f"an epoch is half done at batch size {runner.spec.train.batch_size}; "
                                    "finish it before changing the batch size")
            runner.spec = runner.spec.with_train(batch_size=batch_size)
        inputs, targets, validation = self._validation(inputs, targets, validation_data, validation_split)
        before, noted = len(runner.history), len(runner.notes)
        target = until if until is not None else runner.epoch + (epochs or runner.spec.train.epochs)
        progress = reporter("auto") if _verbose(verbose) else None
        runner.fit(inputs, targets, epochs=target, validation=validation,
                   callbacks=[*(callbacks or []), *([progress] if progress else [])])
        if _verbose(verbose):
            for note in runner.notes[noted:]:
                print(note)
        return History(runner.history[before:])

    def _fitting(self, x: Any, y: Any) -> tuple[Inputs | None, np.ndarray | None]:
        """(inputs, targets) for `fit`, building the model from their shapes if needed."""
        if x is None:
            return None, None
        inputs = as_inputs(x, self.columns)
        targets = as_targets(y)
        if not self.built:
            layout = inputs_like(Data(inputs, targets))
            if is_frame(x) and set(layout) == {"x"}:
                layout["x"] = _with_columns(layout["x"], column_names(x))
            spec = self._spec.replace(inputs=layout)
            self._runner = Runner.from_spec(spec, self.registry, source=self.source, checkpoint_dir=self.checkpoint_dir)
        elif is_frame(x) and self.columns is None and self.spec.inputs is not None and set(self.spec.inputs) == {"x"}:
            named = _with_columns(self.spec.inputs["x"], column_names(x))
            self.runner.spec = self.runner.spec.replace(inputs={"x": named})
        return inputs, targets

    def _validation(self, inputs: Inputs | None, targets: np.ndarray | None, data: tuple[Any, Any] | None,
                    split: float | None) -> tuple[Inputs | None, np.ndarray | None, tuple[Inputs, np.ndarray] | None]:
        """(training inputs, targets, validation data): `data` as given, or a seeded `split`
        of the inputs held out."""
        if data is not None and split is not None:
            raise DataError("pass validation_data or validation_split, not both")
        if data is not None:
            return inputs, targets, (as_inputs(data[0], self.columns), as_targets(data[1]))
        if split is None:
            return inputs, targets, None
        if inputs is None or targets is None:
            raise DataError("validation_split needs x and y; the recipe's data is split by its [validation]")
        train, held = split_data(Data(inputs, targets), split, streams(self.runner.spec.train.seed)["split"])
        return train.x, train.t, (held.x, held.t)

    def evaluate(self, x: Any = None, y: Any = None, *, batch_size: int = 4096,
                 confusion: bool = False) -> dict[str, Any]:
        """Mean loss and every metric over (x, y) (default: the recipe's training data);
        with `confusion`, a classifier's confusion matrix (counts[true][predicted])."""
        if x is None and y is None:
            return self.runner.evaluate(batch_size=batch_size, confusion=confusion)
        if x is None or y is None:
            raise DataError("pass both x and y, or neither to use the recipe's data")
        return self.runner.evaluate(as_inputs(x, self.columns), as_targets(y), batch_size=batch_size,
                                    confusion=confusion)

    def predict(self, x: Any, *, batch_size: int = 4096) -> np.ndarray:
        """What the network gives users for x, in batches: (N, C) class probabilities for a
        classifier, the outputs themselves otherwise."""
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, not {batch_size}")
        return self.network.predict(as_inputs(x, self.columns), batch_size=batch_size)

    def generate(self, start: str | list[str] = "<eos>", *, length: int = 100, greedy: bool = False,
                 temperature: float = 1.0, seed: int = 0, skip: str | list[str] = "") -> list[str]:
        """What the model writes. A language model: `length` words after `start` (words, or
        a string of them), one step at a time with its state carried: the most probable
        each time (`greedy`) or drawn (from a generator seeded with `seed`; `temperature`
        < 1 sharpens), never one of `skip`; words in and out through its vocabulary. An
        encoder-decoder (trained on sequence_text): the greedy answer to each question in
        `start` (one question, or a list of them)."""
        from nnkit.generate import answer, generate, is_encoder_decoder, vocabulary_of

        if is_encoder_decoder(self.spec):
            return answer(self.network, self.spec, [start] if isinstance(start, str) else start)

        words = start.split() if isinstance(start, str) else list(start)
        return generate(self.network, vocabulary_of(self.spec), words, length=length, rng=np.random.default_rng(seed),
                        greedy=greedy, temperature=temperature,
                        skip=skip.split() if isinstance(skip, str) else list(skip))

    def decode(self, x: Mapping[str, Any], *, feed: str = "answer_in") -> np.ndarray:
        """Greedy answers of an encoder-decoder (the book's ch. 7-8 `generate`): the input
        `feed` gives the start symbol in its first column; each step's most probable symbol
        is fed back. (N, T) ids; `nnkit.generate.decode_greedy` says more."""
        from nnkit.generate import decode_greedy

        return decode_greedy(self.network, {k: np.asarray(v) for k, v in x.items()}, feed=feed)

    def save(self, path: str | Path, *, grads: bool = True, allow_non_finite: bool = False) -> None:
        """Write the network, its recipe, grads, optimizer and RNG state, progress and every
        callback's state to `path`, atomically; `nnkit.load` continues from it bit for bit.
        grads=False writes the params alone (for inference). Params holding NaN or ±inf
        are refused unless `allow_non_finite`."""
        if grads:
            self.runner.save(path, allow_non_finite=allow_non_finite)
        else:
            from nnkit.checkpoint import save

            save(path, self.network, self.registry, grads=False, spec=self.spec, allow_non_finite=allow_non_finite)

    def export(self, path: str | Path, *, format: str | None = None, grads: bool = False) -> Path:
        """Write the model for use outside nnkit: `format="onnx"`, the inference graph
        (what `predict` computes, for ONNX Runtime; needs nnkit[onnx]), or
        `"safetensors"`, the params (and grads) by name (needs nnkit[safetensors]); None:
        from the suffix. Atomic; returns the path."""
        from nnkit.interop.weights import export

        return export(self.network, path, self.registry, fmt=format, grads=grads)

    # -- description ------------------------------------------------------------------------

    def summary(self, print_fn: Any = print) -> None:
        """A table of the network: node, type, inputs, per-sample output shape and params
        (a shared param counted where it is owned), then the totals."""
        net = self.network
        rows = [("node", "type", "inputs", "output", "params")]
        borrowed = {(s.node, s.index): str(s.owner) for s in net.shared}
        for node in net.spec.order:
            layer = net.layers[node.name]
            own = sum(int(np.prod(d.shape)) for i, d in enumerate(layer.declared) if (node.name, i) not in borrowed)
            shared = [borrowed[(node.name, i)] for i in range(len(layer.declared)) if (node.name, i) in borrowed]
            params = f"{own:,}" + (f" (+ {', '.join(shared)})" if shared else "")
            rows.append((node.name, node.type, ", ".join(node.inputs), str(net.shapes[node.name]), params))
        if net.spec.loss is not None:
            loss = net.spec.loss
            rows.append((loss.name, loss.type, ", ".join(loss.inputs), "()", "0"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        rule = "-" * len(lines[0])
        optimizer = self.spec.optimizer.type
        print_fn("\n".join([f"Model: {self.spec.name or self.source}", rule, lines[0], rule, *lines[1:], rule,
                            f"params: {net.param_count():,} (each shared array once)   optimizer: {optimizer}   "
                            f"epochs trained: {self.epoch}"]))

    def __repr__(self) -> str:
        name = self.spec.name or Path(self.source).stem or "model"
        if not self.built:
            return f"<nnkit.Model {name!r}: not built (input shapes come from the first fit)>"
        net = self.network
        loss = f", loss {self.spec.loss.type}" if self.spec.loss is not None else ""
        return (f"<nnkit.Model {name!r}: {len(self.spec.nodes)} nodes, {net.param_count():,} params, "
                f"output {net.output_shape}{loss}, {self.spec.optimizer.type}, {self.epoch} epochs trained>")


def _with_columns(spec: InputSpec, columns: list[str]) -> InputSpec:
    try:
        return InputSpec.model_validate({**spec.model_dump(), "columns": columns})
    except ValidationError as exc:
        raise DataError(f"the frame's columns: {exc.errors(include_url=False)[0]['msg']}") from None


def _verbose(verbose: Verbose) -> bool:
    if verbose == "auto":
        return sys.stdout.isatty() or "ipykernel" in sys.modules
    return bool(verbose)


def _default_registry() -> Registry:
    """The installed plugins' registry: resolved here, at the construction helpers, only."""
    from nnkit.plugins import get_registry

    return get_registry()
