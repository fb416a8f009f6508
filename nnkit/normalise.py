"""From a validated model file to a `Spec`: every node named (`<type><n>` where the file
left it out) and given its inputs (the previous node where left out), every reference
checked (inputs, shared and tied params, outputs, the loss), the graph acyclic and every
node used, the topological order computed once, metrics defaulted from the loss. Errors
speak of nodes as the user wrote them and carry the node's place in the file."""

from __future__ import annotations

from nnkit.config import Config
from nnkit.layer import LayerConfig
from nnkit.names import ParamRef, did_you_mean
from nnkit.registry import Registry
from nnkit.spec import ModelFileBase, Node, Spec


class GraphError(ValueError):
    """A problem with the graph, at node `index` of the file's list (None: no one node)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def normalise(file: ModelFileBase, registry: Registry) -> Spec:
    """The `Spec` of a validated model file: node names and inputs filled, references,
    sharing and acyclicity checked, metrics defaulted from the loss. ValueError names the
    first problem."""
    inputs = list(file.inputs) if file.inputs is not None else ["x"]
    nodes = _name_nodes(file.nodes, inputs)
    known = set(inputs) | {n.name for n in nodes}
    for node in nodes:
        for ref in node.inputs:  # a node's name, or "<node>.<port>" for a further output of it
            _check_ref(ref, known, f"{node.label} takes input", node.index)
        for field, links in (("share", node.share), ("tie", node.tie)):
            for pname, owner in links.items():
                _check_ref(owner.node, known - set(inputs), f"{node.label} {field}s {pname} with node", node.index)
                if owner.node == node.name:
                    raise GraphError(f"{node.label} cannot {field} a param with itself", node.index)
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
        metrics=tuple(file.metrics) if file.metrics is not None else _default_metrics(loss, registry, inputs),
        validation=file.validation, callbacks=tuple(file.callbacks), name=file.name, schema_url=file.schema_url,
        format_version=file.format_version,
    )


def _default_metrics(loss: Node | None, registry: Registry, inputs: list[str]) -> tuple[Config, ...]:
    """What a loss reports when the file names no metrics (none without a loss); an
    encoder-decoder (inputs question and answer_in) also its decoded answers' exact_match."""
    entry = registry.find("layer", loss.type) if loss is not None else None
    names = getattr(entry.cls, "default_metrics", ()) if entry is not None else ()
    if entry is not None and set(inputs) == {"question", "answer_in"}:
        names = (*names, "exact_match")
    return tuple(registry.get("metric", n).cls.Config() for n in names if registry.find("metric", n) is not None)


def _node(config: LayerConfig, name: str, inputs: tuple[str, ...], index: int | None = None,
          named: bool = True) -> Node:
    # The node's config carries the filled-in name and inputs too, so that the same
    # network written with or without them gives equal specs.
    if config.name != name or config.inputs != list(inputs):  # a stored spec has both already
        config = config.model_copy(update={"name": name, "inputs": list(inputs)})
    return Node(name, inputs, config,
                share={k: ParamRef.parse(v) for k, v in (config.share or {}).items()},
                tie={k: ParamRef.parse(v) for k, v in (config.tie or {}).items()}, index=index, named=named)


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
            raise GraphError(f"nodes[{index}]: duplicate node name {name!r}", index)
        if config.inputs is None and previous is None:
            label = f"node {name!r}" if config.name else f"the node at nodes[{index}] ({config.type}, unnamed)"
            raise GraphError(f"{label} must name its inputs: the network has several inputs", index)
        nodes.append(_node(config, name, tuple(config.inputs) if config.inputs is not None else (previous or "",),
                           index, config.name is not None))
        seen.add(name)
        previous = name
    return nodes


def source_of(ref: str) -> str:
    """The node (or network input) an input reference reads: "enc.h" reads node "enc"."""
    return ref.partition(".")[0]


def _check_ref(ref: str, known: set[str], what: str, index: int | None = None) -> None:
    if source_of(ref) not in known:  # "enc.h": node "enc" must exist; its ports are the layer's
        raise GraphError(f"{what} {ref!r}, which is no node or network input{did_you_mean(ref, sorted(known))}",
                         index)


def _check_used(nodes: list[Node], sinks: list[str]) -> None:
    """Every node must feed an output or the loss (directly, through others, or by lending
    a shared param to a node that does)."""
    inputs_of = {n.name: tuple(source_of(i) for i in n.inputs) for n in nodes}
    lenders = {n.name: [ref.node for ref in [*n.share.values(), *n.tie.values()]] for n in nodes}
    used: set[str] = set()
    stack = [source_of(s) for s in sinks if source_of(s) in inputs_of]
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
            child = source_of(child) if child is not None else None
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
