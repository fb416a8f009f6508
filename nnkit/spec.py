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
from nnkit.names import NAME_PATTERN, ParamRef, did_you_mean
from nnkit.registry import Kind, Registry

#: The model-file format this nnkit writes and reads natively (see nnkit/modelfile/migrations.py).
FORMAT_VERSION = 1
MAX_NODES = 10_000


class InputSpec(Strict):
    """One network input: its per-sample shape (no batch axis) and kind of values."""

    shape: list[Annotated[int, Field(ge=1, le=MAX_INT)]] = Field(max_length=8)
    dtype: Literal["float", "int"] = "float"  # "int" for ids fed to an Embedding
    # Names of a table's columns, one per feature: kept from the DataFrame a model was
    # fitted on, so that later frames are realigned by name (None = by position).
    columns: list[Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=1_000_000)

    @model_validator(mode="after")
    def _a_name_per_feature(self) -> InputSpec:
        if self.columns is not None and (len(self.shape) != 1 or len(self.columns) != self.shape[0]):
            raise ValueError(f"columns name {len(self.columns)} features, but the shape is {self.shape}")
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise ValueError("columns must not repeat a name")
        return self


class TrainSpec(Strict):
    """How to train: the book's trainer settings."""

    epochs: int = Field(default=10, ge=1, le=10_000_000)
    batch_size: int = Field(default=32, ge=1, le=MAX_INT)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)  # seeds data, init and shuffling
    log_every: int | None = Field(default=None, ge=1, le=10_000_000)  # epochs; None = ~10 lines
    # Global-norm clipping, the book's `max_grad`: scale all grads by max_grad / (norm + 1e-6).
    max_grad: float | None = Field(default=None, gt=0, le=1e12)
    nan_guard: bool = True  # stop at the first non-finite loss or param, naming where it began


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
    name: str | None = Field(default=None, max_length=256)
    dtype: Literal["float64", "float32"] = "float64"
    # Per-sample input shapes by name; omitted = one input "x" shaped like the data.
    inputs: dict[Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)], InputSpec] | None = None
    outputs: list[str] | None = Field(default=None, min_length=1, max_length=64)
    train: TrainSpec = TrainSpec()

    nodes: list[Any]
    loss: Any = None
    optimizer: Any = None
    data: Any = None
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

    @property
    def type(self) -> str:
        return self.config.type

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


def normalise(file: ModelFileBase, registry: Registry) -> Spec:
    """The `Spec` of a validated model file: node names and inputs filled, references,
    sharing and acyclicity checked, metrics defaulted from the loss. ValueError names the
    first problem."""
    inputs = list(file.inputs) if file.inputs is not None else ["x"]
    nodes = _name_nodes(file.nodes, inputs)
    known = set(inputs) | {n.name for n in nodes}
    for node in nodes:
        for ref in node.inputs:
            _check_ref(ref, known, f"node {node.name!r} takes input")
        for field, links in (("share", node.share), ("tie", node.tie)):
            for pname, owner in links.items():
                _check_ref(owner.node, known - set(inputs), f"node {node.name!r} {field}s {pname} with node")
                if owner.node == node.name:
                    raise ValueError(f"node {node.name!r} cannot {field} a param with itself")
    order = topological_order(nodes)
    outputs = tuple(file.outputs) if file.outputs is not None else (nodes[-1].name,)
    for out in outputs:
        _check_ref(out, known, "output")
    loss = None
    if file.loss is not None:
        loss = _node(file.loss, file.loss.name or "loss", tuple(file.loss.inputs or [outputs[0]]))
        for ref in loss.inputs:
            _check_ref(ref, known, "loss takes input")
    _check_used(nodes, [*outputs, *(loss.inputs if loss is not None else ())])
    return Spec(
        nodes=tuple(nodes), order=order, outputs=outputs, loss=loss, inputs=file.inputs, dtype=file.dtype,
        train=file.train, optimizer=file.optimizer, data=file.data,
        metrics=tuple(file.metrics) if file.metrics is not None else _default_metrics(loss, registry),
        validation=file.validation, callbacks=tuple(file.callbacks), name=file.name, schema_url=file.schema_url,
        format_version=file.format_version,
    )


def _default_metrics(loss: Node | None, registry: Registry) -> tuple[Config, ...]:
    """What a loss reports when the file names no metrics (none without a loss)."""
    entry = registry.find("layer", loss.type) if loss is not None else None
    names = getattr(entry.cls, "default_metrics", ()) if entry is not None else ()
    return tuple(registry.get("metric", n).cls.Config() for n in names if registry.find("metric", n) is not None)


def _node(config: LayerConfig, name: str, inputs: tuple[str, ...]) -> Node:
    # The node's config carries the filled-in name and inputs too, so that the same
    # network written with or without them gives equal specs.
    config = config.model_copy(update={"name": name, "inputs": list(inputs)})
    return Node(name, inputs, config,
                share={k: ParamRef.parse(v) for k, v in (config.share or {}).items()},
                tie={k: ParamRef.parse(v) for k, v in (config.tie or {}).items()})


def _name_nodes(configs: list[LayerConfig], inputs: list[str]) -> list[Node]:
    """Nodes with names (`<type><n>` where omitted) and inputs (the previous node where omitted)."""
    taken = set(inputs) | {c.name for c in configs if c.name is not None}
    counts: dict[str, int] = {}
    nodes: list[Node] = []
    seen: set[str] = set(inputs)
    previous: str | None = inputs[0] if len(inputs) == 1 else None
    for index, config in enumerate(configs):
        name = config.name
        if name is None:
            base = config.type.lower()
            while name is None or name in taken:
                counts[base] = counts.get(base, 0) + 1
                name = f"{base}{counts[base]}"
            taken.add(name)
        elif name in seen:
            raise ValueError(f"nodes[{index}]: duplicate node name {name!r}")
        if config.inputs is None and previous is None:
            raise ValueError(f"node {name!r} must name its inputs: the network has several inputs")
        nodes.append(_node(config, name, tuple(config.inputs) if config.inputs is not None else (previous or "",)))
        seen.add(name)
        previous = name
    return nodes


def _check_ref(ref: str, known: set[str], what: str) -> None:
    if ref not in known:
        raise ValueError(f"{what} {ref!r}, which is no node or network input{did_you_mean(ref, sorted(known))}")


def _check_used(nodes: list[Node], sinks: list[str]) -> None:
    """Every node must feed an output or the loss (directly, through others, or by lending
    a shared param to a node that does)."""
    inputs_of = {n.name: n.inputs for n in nodes}
    lenders = {n.name: [ref.node for ref in [*n.share.values(), *n.tie.values()]] for n in nodes}
    used: set[str] = set()
    stack = [s for s in sinks if s in inputs_of]
    while stack:
        name = stack.pop()
        if name in used:
            continue
        used.add(name)
        stack.extend(r for r in [*inputs_of[name], *lenders[name]] if r in inputs_of and r not in used)
    unused = [n.name for n in nodes if n.name not in used]
    if unused:
        raise ValueError(f"unused node(s) {', '.join(repr(u) for u in unused)}: no output or loss depends on them")


def topological_order(nodes: list[Node]) -> tuple[Node, ...]:
    """Nodes ordered so that every node comes after its inputs (a chain keeps its order);
    ValueError naming the nodes of a cycle. Network inputs are not nodes and are skipped."""
    by_name = {n.name: n for n in nodes}
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = placed in the order
    order: list[Node] = []
    for start in by_name:
        if start in colour:
            continue
        colour[start] = 1
        stack = [(start, iter(by_name[start].inputs))]
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[name] = 2
                order.append(by_name[name])
                stack.pop()
            elif child in by_name and colour.get(child) == 1:
                path = [n for n, _ in stack]
                cycle = path[path.index(child):] + [child]
                raise ValueError(f"the nodes form a cycle: {' -> '.join(reversed(cycle))}")
            elif child in by_name and child not in colour:
                colour[child] = 1
                stack.append((child, iter(by_name[child].inputs)))
    return tuple(order)
