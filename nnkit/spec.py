"""The spec: a network (inputs, nodes, outputs, loss) and its training recipe (optimizer,
data, metrics, validation, callbacks, train).

Two types, one for each side of validation:
- `spec_model(registry)` is the pydantic model of a model file *as written*, built from
  whatever the registry holds; it is what model files are validated against and what the
  JSON Schema describes. A node there may omit its `name` and `inputs`.
- `Spec` is the normalised result: every node has a `name: str` and `inputs: tuple[str,
  ...]`, `outputs` is set, and the topological `order` is computed once. `Spec.to_dict()`
  writes it back as plain data that validates to the same `Spec`, so a spec stored in a
  checkpoint rebuilds the same network with the same param names.

`nodes` is a list; a node that omits `inputs` takes the previous node (the first takes
the only network input), so a plain list of layers is a chain.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from nnkit.config import MAX_INT, Config, Strict, type_name_of
from nnkit.errors import ModelFileError
from nnkit.layer import LayerConfig
from nnkit.names import NAME_PATTERN, ParamRef
from nnkit.registry import Kind, Registry

#: The model-file format this nnkit writes and reads natively (see nnkit/modelfile/migrations.py).
FORMAT_VERSION = 1
MAX_NODES = 10_000


class InputSpec(Strict):
    """One network input: its per-sample shape (no batch axis) and kind of values."""

    shape: list[Annotated[int, Field(ge=1, le=MAX_INT)]] = Field(max_length=8)  # per sample, no batch axis
    dtype: Literal["float", "int"] = "float"  # "int" for ids fed to an Embedding
    # Names of a table's columns, one per feature: kept from the DataFrame a model was
    # fitted on, so that later frames are realigned by name (None = by position).
    columns: list[Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=1_000_000)
    # The words of the ids an "int" input takes (position = id): kept from a word corpus
    # (the corpus and text datasets), so that a checkpoint maps ids to words by itself.
    vocabulary: list[Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=10_000_000)

    @model_validator(mode="after")
    def _a_name_per_feature(self) -> InputSpec:
        if self.vocabulary is not None and self.dtype != "int":
            raise ValueError("a vocabulary names the ids of an \"int\" input")
        if self.columns is not None and (len(self.shape) != 1 or len(self.columns) != self.shape[0]):
            raise ValueError(f"columns name {len(self.columns)} features, but the shape is {self.shape}")
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise ValueError("columns must not repeat a name")
        return self


class BpttSpec(Strict):
    """Truncated backpropagation through time over one ordered stream, as the book's
    RnnlmTrainer: the data read as one sequence, `batch_size` rows starting
    len / batch_size apart, `time_size` steps per window, no shuffling."""

    time_size: int = Field(ge=1, le=100_000)  # steps per window (the book's time_size: 5 in ch. 5, 35 in ch. 6)
    eval_batch_size: int = Field(default=10, ge=1, le=MAX_INT)  # rows of held-out text scored side by side
    # true: the state and the read positions run on from one epoch into the next (one book
    # `fit` over every epoch: ch. 5, ch. 6's train_rnnlm.py); false: each epoch starts at the
    # stream's start from zero state (a `fit` per epoch: train_better_rnnlm.py).
    continuous: bool = False


class TrainSpec(Strict):
    """How to train: the book's trainer settings."""

    epochs: int = Field(default=10, ge=1, le=10_000_000)  # in all: a resumed run finishes them
    batch_size: int = Field(default=32, ge=1, le=MAX_INT)  # samples per step; the last partial batch is dropped
    seed: int = Field(default=0, ge=0, le=2**63 - 1)  # seeds data, init and shuffling
    log_every: int | None = Field(default=None, ge=1, le=10_000_000)  # epochs; None = ~10 lines
    # Global-norm clipping, the book's `max_grad`: scale all grads by max_grad / (norm + 1e-6).
    max_grad: float | None = Field(default=None, gt=0, le=1e12)
    nan_guard: bool = True  # stop at the first non-finite loss or param, naming where it began
    bptt: BpttSpec | None = None  # ordered windows of one stream, for stateful language models


class ValidationBase(Strict):
    """Held-out data, scored after every epoch (val_loss, val_<metric>): give one of the two."""

    split: float | None = Field(default=None, gt=0, lt=1)  # fraction of the training data held out
    data: Any = None

    @model_validator(mode="after")
    def _one_source(self) -> ValidationBase:
        if (self.split is None) == (self.data is None):
            raise ValueError("give exactly one of split (a fraction of the training data) or data (a dataset)")
        return self


class ModelFileBase(Strict):
    """Fields of every model file; `nodes`, `loss`, `optimizer`, `data`, `metrics`,
    `validation` and `callbacks` are typed per registry by `spec_model`."""

    model_config = ConfigDict(populate_by_name=True)

    schema_url: str | None = Field(default=None, alias="$schema", max_length=2048)
    format_version: int = Field(default=FORMAT_VERSION, ge=1, le=1000)  # see nnkit/modelfile/migrations.py
    name: str | None = Field(default=None, max_length=256)  # a title for reports and plots
    dtype: Literal["float64", "float32"] = "float64"  # of every param, grad and activation
    # Per-sample input shapes by name; omitted = one input "x" shaped like the data.
    inputs: dict[Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)], InputSpec] | None = None
    outputs: list[str] | None = Field(default=None, min_length=1, max_length=64)  # default: the last node
    train: TrainSpec = TrainSpec()  # epochs, batch size, seed, clipping, the NaN guard

    nodes: list[Any]  # the layers; a node without `inputs` takes the previous one
    loss: Any = None  # the loss layer, fed the first output and the targets
    optimizer: Any = None  # how params are updated; default SGD
    data: Any = None  # the training data: a registered dataset
    metrics: list[Any] | None = None  # reported per epoch and by evaluate; None = the loss's defaults
    validation: Any = None  # held-out data: a split of the training data, or a dataset of its own
    callbacks: list[Any] = Field(default_factory=list)  # e.g. checkpoint, early_stopping

    @field_validator("format_version")
    @classmethod
    def _current_version(cls, value: int) -> int:
        if value != FORMAT_VERSION:  # the module's value at call time: tests pretend another
            raise ValueError(f"must be {FORMAT_VERSION}; read the file with nnkit.read_model_file "
                             "or run `nnkit migrate` to upgrade it")
        return value


@dataclass(frozen=True)
class Node:
    """A node of the normalised graph: its name, the names feeding it, and its layer's
    config (with the same name and inputs filled in)."""

    name: str
    inputs: tuple[str, ...]
    config: LayerConfig
    #: This node's params that are another node's (`share`) or its transpose (`tie`).
    share: Mapping[str, ParamRef] = dataclasses.field(default_factory=dict)
    tie: Mapping[str, ParamRef] = dataclasses.field(default_factory=dict)
    #: Where the node stands in the file (None for the loss), and whether its name is the
    #: user's or was made up: messages speak of nodes as the user wrote them.
    index: int | None = dataclasses.field(default=None, compare=False)
    named: bool = dataclasses.field(default=True, compare=False)

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def label(self) -> str:
        """"node 'fc1'", or for a node the user left unnamed "the 2nd node (Affine, unnamed)"."""
        if self.named or self.index is None:
            return f"node {self.name!r}"
        n = self.index + 1
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"the {n}{suffix} node ({self.type}, unnamed)"

    def to_dict(self) -> dict[str, Any]:
        fields = self.config.model_dump(mode="json", exclude_none=True, exclude={"name", "inputs"})
        return {"name": self.name, "inputs": list(self.inputs), **fields}


@dataclass(frozen=True)
class Spec:
    """A validated, normalised model spec. Build with `nnkit.validate_spec` or
    `nnkit.read_model_file`; change with `replace` (network) or `with_train` (recipe)."""

    nodes: tuple[Node, ...]  # as written in the file
    order: tuple[Node, ...]  # topological: every node after its inputs (a chain keeps its order)
    outputs: tuple[str, ...]
    loss: Node | None
    inputs: Mapping[str, InputSpec] | None  # None: one input "x", shaped like the data
    dtype: Literal["float64", "float32"]
    train: TrainSpec
    optimizer: Config
    data: Config | None
    metrics: tuple[Config, ...]
    validation: ValidationBase | None
    callbacks: tuple[Config, ...]
    name: str | None = None
    schema_url: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs) if self.inputs is not None else ["x"]

    def replace(self, **changes: Any) -> Spec:
        """A copy with fields replaced (e.g. `inputs` taken from the data)."""
        return dataclasses.replace(self, **changes)

    def with_train(self, **changes: Any) -> Spec:
        """A copy whose `train` settings have `changes` (None values ignored), validated as
        a model file's would be; ModelFileError naming the option otherwise."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        try:
            train = TrainSpec.model_validate({**self.train.model_dump(), **changes})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise ModelFileError(f"--{err['loc'][0]} {err['input']}: {err['msg']}") from None
        return self.replace(train=train)

    def network_differences(self, other: Spec) -> list[str]:
        """The parts of the network (not the recipe) in which `other` differs from this spec."""
        a, b = self.to_dict(), other.to_dict()
        different = [k for k in ("dtype", "nodes", "outputs", "loss") if a.get(k) != b.get(k)]
        if other.inputs is not None and a.get("inputs") != b.get("inputs"):
            different.append("inputs")
        return different

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (JSON/TOML/msgpack-safe), with defaults filled in."""
        def dump(model: Strict | None) -> Any:
            return None if model is None else model.model_dump(mode="json", by_alias=True, exclude_none=True)

        data: dict[str, Any] = {
            "$schema": self.schema_url, "format_version": self.format_version, "name": self.name,
            "dtype": self.dtype,
            "inputs": {k: dump(v) for k, v in self.inputs.items()} if self.inputs is not None else None,
            "outputs": list(self.outputs), "train": dump(self.train),
            "nodes": [n.to_dict() for n in self.nodes],
            "loss": self.loss.to_dict() if self.loss is not None else None,
            "optimizer": dump(self.optimizer), "data": dump(self.data),
            "metrics": [dump(m) for m in self.metrics], "validation": dump(self.validation),
            "callbacks": [dump(c) for c in self.callbacks],
        }
        return {k: v for k, v in data.items() if v is not None}


def _any_of(types: list[Any]) -> Any:
    """The union of `types`, built at run time (the registry decides what it holds)."""
    return Union[tuple(types)]  # noqa: UP007


def _list_of(item: Any) -> Any:
    return list[item]


def _union(configs: list[type[Config]]) -> Any:
    if len(configs) == 1:
        return configs[0]
    return Annotated[_any_of(list(configs)), Field(discriminator="type")]


@functools.lru_cache(maxsize=8)
def spec_model(registry: Registry) -> type[ModelFileBase]:
    """The pydantic model of a model file for the components in `registry`."""

    def configs(kind: Kind, loss: bool | None = None) -> list[type[Config]]:
        classes = [registry.get(kind, n).cls for n in registry.names(kind)]
        if loss is not None:
            classes = [c for c in classes if c.is_loss == loss]
        return [c.Config for c in classes]

    node = _union(configs("layer", loss=False))
    loss = _union(configs("layer", loss=True))
    optimizer = _union(configs("optimizer"))
    default_optimizer = registry.get("optimizer", "SGD").cls.Config()
    data = _union(configs("dataset"))
    metric_configs = configs("metric")
    metric_names = tuple(type_name_of(registry.get("metric", n).cls) for n in registry.names("metric"))
    metric = _by_name_or_config(metric_configs, metric_names)
    validation = create_model(
        "ValidationSpec", __base__=ValidationBase,
        data=(data | None, Field(default=None, description="a dataset of its own")),
    )
    callback = _union(configs("callback"))
    model: type[ModelFileBase] = create_model(
        "ModelSpec",
        __base__=ModelFileBase,
        nodes=(_list_of(node), Field(min_length=1, max_length=MAX_NODES)),
        loss=(loss | None, None),
        optimizer=(optimizer, default_optimizer),
        data=(data | None, None),
        # Omitted: the loss's own defaults (accuracy for classifiers, mae for regression).
        metrics=(_list_of(metric) | None, Field(default=None, max_length=64)),
        validation=(validation | None, None),
        callbacks=(_list_of(callback), Field(default_factory=list, max_length=64)),
    )
    return model


def _by_name_or_config(configs: list[type[Config]], names: tuple[str, ...]) -> Any:
    """A metric's config, which a model file may also write as its name alone."""
    return Annotated[_union(configs), BeforeValidator(
        _name_to_config, json_schema_input_type=_any_of([Literal[names], *configs]))]


def _name_to_config(value: Any) -> Any:
    """A metric may be written as its name alone: "accuracy" means {type = "accuracy"}."""
    return {"type": value} if isinstance(value, str) else value
