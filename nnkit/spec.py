"""The model-file schema: pydantic models built from whatever the registry holds.

A spec declares the network (inputs, nodes, outputs, loss) and its training recipe
(optimizer, data, train). `nodes` is a list; a node that omits `inputs` takes the previous
node (the first takes the only network input), so a plain list of layers is a chain.
Validated specs are normalised: every node has a name and inputs, and `outputs` is set,
so that a spec stored in a checkpoint rebuilds the same network with the same param names.
"""

from __future__ import annotations

import difflib
import functools
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator, model_validator

from nnkit import migrations
from nnkit.config import MAX_INT, Config, type_name_of
from nnkit.layer import NAME_PATTERN, LayerConfig
from nnkit.migrations import FORMAT_VERSION
from nnkit.registry import Kind, Registry

MAX_NODES = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class InputSpec(_Strict):
    """One network input: its per-sample shape (no batch axis) and kind of values."""

    shape: list[Annotated[int, Field(ge=1, le=MAX_INT)]] = Field(max_length=8)
    dtype: Literal["float", "int"] = "float"  # "int" for ids fed to an Embedding


class TrainSpec(_Strict):
    """How to train: the book's trainer settings."""

    epochs: int = Field(default=10, ge=1, le=10_000_000)
    batch_size: int = Field(default=32, ge=1, le=MAX_INT)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)  # seeds data, init and shuffling
    log_every: int | None = Field(default=None, ge=1, le=10_000_000)  # epochs; None = ~10 lines
    # Global-norm clipping, the book's `max_grad`: scale all grads by max_grad / (norm + 1e-6).
    max_grad: float | None = Field(default=None, gt=0, le=1e12)
    nan_guard: bool = True  # stop at the first non-finite loss or param, naming where it began


class ValidationBase(_Strict):
    """Held-out data, scored after every epoch (val_loss, val_<metric>): give one of the two."""

    split: float | None = Field(default=None, gt=0, lt=1)  # fraction of the training data held out
    data: Any = None

    @model_validator(mode="after")
    def _one_source(self) -> ValidationBase:
        if (self.split is None) == (self.data is None):
            raise ValueError("give exactly one of split (a fraction of the training data) or data (a dataset)")
        return self


class SpecBase(_Strict):
    """Fields of every model file; `nodes`, `loss`, `optimizer` and `data` are added per registry."""

    model_config = ConfigDict(populate_by_name=True)

    schema_url: str | None = Field(default=None, alias="$schema", max_length=2048)
    format_version: int = Field(default=FORMAT_VERSION, ge=1, le=1000)  # see nnkit.migrations
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
    metrics: list[Any] = Field(default_factory=list)  # reported per epoch and by evaluate
    validation: Any = None  # held-out data: a split of the training data, or a dataset of its own
    callbacks: list[Any] = Field(default_factory=list)  # e.g. checkpoint, early_stopping

    @field_validator("format_version")
    @classmethod
    def _current_version(cls, value: int) -> int:
        if value != migrations.FORMAT_VERSION:  # read at call time: tests may pretend another
            raise ValueError(f"must be {migrations.FORMAT_VERSION}; read the file with nnkit.read_model_file "
                             "or run `nnkit migrate` to upgrade it")
        return value

    @model_validator(mode="after")
    def _normalise(self) -> SpecBase:
        return _normalise_graph(self)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (JSON/TOML/msgpack-safe), with defaults filled in."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _union(configs: list[type[Config]]) -> Any:
    if len(configs) == 1:
        return configs[0]
    return Annotated[Union[tuple(configs)], Field(discriminator="type")]  # noqa: UP007


@functools.lru_cache(maxsize=8)
def spec_model(registry: Registry) -> type[SpecBase]:
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
    metric = Annotated[_union(metric_configs),
                       BeforeValidator(_name_to_config, json_schema_input_type=Union[  # noqa: UP007
                           (Literal[tuple(type_name_of(registry.get("metric", n).cls)
                                          for n in registry.names("metric"))], *metric_configs)])]
    default_metrics = [registry.get("metric", "accuracy").cls.Config()] if registry.find("metric", "accuracy") else []
    validation = create_model(
        "ValidationSpec", __base__=ValidationBase,
        data=(data | None, Field(default=None, description="a dataset of its own")),
    )
    callback = _union(configs("callback"))
    return create_model(
        "ModelSpec",
        __base__=SpecBase,
        nodes=(list[node], Field(min_length=1, max_length=MAX_NODES)),
        loss=(loss | None, None),
        optimizer=(optimizer, default_optimizer),
        data=(data | None, None),
        metrics=(list[metric], Field(default_factory=lambda: list(default_metrics), max_length=64)),
        validation=(validation | None, None),
        callbacks=(list[callback], Field(default_factory=list, max_length=64)),
    )


def _name_to_config(value: Any) -> Any:
    """A metric may be written as its name alone: "accuracy" means {type = "accuracy"}."""
    return {"type": value} if isinstance(value, str) else value


def _normalise_graph(spec: SpecBase) -> SpecBase:
    """Fill node names and inputs; check names, references and acyclicity."""
    inputs = list(spec.inputs) if spec.inputs is not None else ["x"]
    taken = set(inputs) | {n.name for n in spec.nodes if n.name is not None}
    counts: dict[str, int] = {}
    nodes: list[LayerConfig] = []
    seen: set[str] = set(inputs)
    previous: str | None = inputs[0] if len(inputs) == 1 else None
    for index, node in enumerate(spec.nodes):
        name = node.name
        if name is None:
            base = node.type.lower()
            while True:
                counts[base] = counts.get(base, 0) + 1
                name = f"{base}{counts[base]}"
                if name not in taken:
                    break
            taken.add(name)
        elif name in seen:
            raise ValueError(f"nodes[{index}]: duplicate node name {name!r}")
        node_inputs = node.inputs
        if node_inputs is None:
            if previous is None:
                raise ValueError(f"node {name!r} must name its inputs: the network has several inputs")
            node_inputs = [previous]
        nodes.append(node.model_copy(update={"name": name, "inputs": list(node_inputs)}))
        seen.add(name)
        previous = name
    known = set(inputs) | {n.name for n in nodes}
    for node in nodes:
        for ref in node.inputs:
            _check_ref(ref, known, f"node {node.name!r} takes input")
        for field in ("share", "tie"):
            for pname, ref in (getattr(node, field) or {}).items():
                owner = ref.split(".", 1)[0]
                _check_ref(owner, known - set(inputs), f"node {node.name!r} {field}s {pname} with node")
                if owner == node.name:
                    raise ValueError(f"node {node.name!r} cannot {field} a param with itself")
    topological_order(nodes)  # raises on a cycle
    outputs = spec.outputs if spec.outputs is not None else [nodes[-1].name]
    for out in outputs:
        _check_ref(out, known, "output")
    loss = spec.loss
    if loss is not None:
        loss = loss.model_copy(update={"name": loss.name or "loss", "inputs": loss.inputs or [outputs[0]]})
        for ref in loss.inputs:
            _check_ref(ref, known, "loss takes input")
    _check_used(nodes, [*outputs, *(loss.inputs if loss is not None else [])])
    object.__setattr__(spec, "nodes", nodes)
    object.__setattr__(spec, "outputs", list(outputs))
    object.__setattr__(spec, "loss", loss)
    return spec


def _check_ref(ref: str, known: set[str], what: str) -> None:
    if ref not in known:
        close = difflib.get_close_matches(ref, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{what} {ref!r}, which is no node or network input{hint}")


def _check_used(nodes: list[LayerConfig], sinks: list[str]) -> None:
    """Every node must feed an output or the loss (directly, through others, or by lending
    a shared param to a node that does)."""
    inputs_of = {n.name: n.inputs or [] for n in nodes}
    lenders = {n.name: [ref.split(".", 1)[0] for ref in [*(n.share or {}).values(), *(n.tie or {}).values()]]
               for n in nodes}
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


def topological_order(nodes: list[LayerConfig]) -> list[LayerConfig]:
    """Nodes ordered so that every node comes after its inputs (a chain keeps its order);
    ValueError naming the nodes of a cycle. Network inputs are not nodes and are skipped."""
    by_name = {n.name: n for n in nodes}
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = placed in the order
    order: list[LayerConfig] = []
    for start in by_name:
        if start in colour:
            continue
        colour[start] = 1
        stack = [(start, iter(by_name[start].inputs or []))]
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
                stack.append((child, iter(by_name[child].inputs or [])))
    return order
