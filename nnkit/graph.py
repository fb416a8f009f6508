"""A network: the spec's nodes built into layers, run forward and backward in graph order.

Params and grads are exposed as mappings from stable names (`"<node>.<param>"`, e.g.
`fc1.W`) to the layers' own arrays, so that writing into them changes the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from nnkit.errors import DataError, ModelFileError, PluginError
from nnkit.layer import Layer, LayerConfig, LossLayer, Shape
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.spec import SpecBase, topological_order

Inputs = np.ndarray | Mapping[str, np.ndarray]


def count_rows(x: Inputs) -> int:
    """The number of samples in an input array, or in each named input (they must agree)."""
    lengths = {len(a) for a in (x.values() if isinstance(x, Mapping) else [x])}
    if len(lengths) != 1:
        raise DataError(f"the inputs have different numbers of samples: {sorted(lengths)}")
    return lengths.pop()


def take_rows(x: Inputs, index: Any) -> Inputs:
    """Rows `index` of the input array, or of each named input."""
    return {k: v[index] for k, v in x.items()} if isinstance(x, Mapping) else x[index]


#: Networks with more params than this are refused before anything is allocated;
#: raise it with NNKIT_MAX_PARAMS or `Network(..., max_params=...)`.
DEFAULT_MAX_PARAMS = 1_000_000_000


@dataclass(frozen=True)
class SharedParam:
    """Param `index` of node `node` is the param `owner` (transposed if `transpose`)."""

    node: str
    index: int
    owner: str
    transpose: bool


class Network:
    """Layers wired as the spec's DAG. Build with `Network(spec, rng=...)`."""

    def __init__(
        self,
        spec: SpecBase,
        *,
        rng: np.random.Generator,
        registry: Registry | None = None,
        source: str = "<spec>",
        skip_init: bool | Literal["views"] = False,
        max_params: int | None = None,
    ) -> None:
        """`skip_init` leaves params uninitialised (True) or as stand-ins ("views") for a
        network about to be filled from a file."""
        if spec.inputs is None:
            raise ModelFileError(f"{source}: the network's input shapes are unknown; declare [inputs]")
        registry = registry or get_registry()
        self.spec = spec
        self.rng = rng
        self.dtype = np.dtype(spec.dtype)
        self.input_names = list(spec.inputs)
        self.input_kinds = {name: inp.dtype for name, inp in spec.inputs.items()}
        self.order = topological_order(spec.nodes)
        self.outputs = list(spec.outputs or [])
        if skip_init != "views":  # count on stand-ins first: a huge network is refused unallocated
            dry = Network(spec, rng=rng, registry=registry, source=source, skip_init="views")
            cap = max_params if max_params is not None else int(os.environ.get("NNKIT_MAX_PARAMS", DEFAULT_MAX_PARAMS))
            if dry.param_count() > cap:
                raise ModelFileError(f"{source}: the network has {dry.param_count():,} params, over the cap of "
                                     f"{cap:,} (set NNKIT_MAX_PARAMS to raise it)")
        shapes: dict[str, Shape] = {name: tuple(inp.shape) for name, inp in spec.inputs.items()}
        self.layers: dict[str, Layer] = {}
        for node in self.order:
            self.layers[node.name] = layer = _build(registry, node, shapes, rng, self.dtype, source, skip_init)
            shapes[node.name] = layer.output_shape
        self.shapes = shapes
        self.loss_layer: LossLayer | None = None
        if spec.loss is not None:
            layer = _build(registry, spec.loss, shapes, rng, self.dtype, source, skip_init)
            if not isinstance(layer, LossLayer):
                raise ModelFileError(f"{source}: loss: {spec.loss.type} is not a loss layer")
            self.loss_layer = layer
        self.shared = self._resolve_shared(source)
        self._bind_shared()
        self._index_params()
        data_inputs = set(self.input_names)
        for node in self.order:  # no one needs dL/d(data): the first layers may skip it
            self.layers[node.name].needs_input_grad = not data_inputs.issuperset(node.inputs)
        # Both passes compiled once: (layer, node name, its inputs), in graph order.
        self._forward_plan = [(self.layers[n.name], n.name, tuple(n.inputs)) for n in self.order]
        self._backward_plan = self._forward_plan[::-1]

    def _resolve_shared(self, source: str) -> list[SharedParam]:
        """Check every `share`/`tie` and follow chains to the param that owns the array."""
        links: dict[str, tuple[str, bool]] = {}
        for node in self.order:
            for field, transpose in (("share", False), ("tie", True)):
                for pname, ref in (getattr(node, field) or {}).items():
                    layer = self.layers[node.name]
                    owner_node, owner_param = ref.split(".", 1)
                    if pname not in layer.param_names:
                        raise ModelFileError(f"{source}: node {node.name!r} has no param {pname!r} to {field} "
                                             f"(it has {layer.param_names or 'none'})")
                    if owner_param not in self.layers[owner_node].param_names:
                        raise ModelFileError(f"{source}: node {node.name!r} {field}s {ref!r}, but node "
                                             f"{owner_node!r} has no param {owner_param!r}")
                    links[f"{node.name}.{pname}"] = (ref, transpose)
        shared = []
        for key, (ref, transpose) in links.items():
            seen = {key}
            while ref in links:  # a chain: a shares b, b shares c → a is c
                if ref in seen:
                    raise ModelFileError(f"{source}: params share in a circle: {' -> '.join(sorted(seen))}")
                seen.add(ref)
                ref, more = links[ref]
                transpose ^= more
            node, pname = key.split(".", 1)
            layer = self.layers[node]
            index = layer.param_names.index(pname)
            owner_node, owner_param = ref.split(".", 1)
            owner = self.layers[owner_node].params[self.layers[owner_node].param_names.index(owner_param)]
            want = owner.shape[::-1] if transpose else owner.shape
            if layer.params[index].shape != want:
                how = "tie (transposed)" if transpose else "share"
                raise ModelFileError(f"{source}: node {node!r} cannot {how} {ref!r}: its {pname} is "
                                     f"{layer.params[index].shape}, {ref} gives {want}")
            shared.append(SharedParam(node, index, ref, transpose))
        return shared

    def _bind_shared(self) -> None:
        """Point every sharing node at its owner's array (a transposed view when tied)."""
        for s in self.shared:
            owner_node, owner_param = s.owner.split(".", 1)
            owner_layer = self.layers[owner_node]
            owner = owner_layer.params[owner_layer.param_names.index(owner_param)]
            self.layers[s.node].params[s.index] = owner.T if s.transpose else owner

    def _index_params(self) -> None:
        """`params`/`grads`: each array once, under its owner's name (shared ones excluded)."""
        borrowed = {(s.node, s.index) for s in self.shared}
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        for name, layer in self.layers.items():
            for i, (pname, param, grad) in enumerate(zip(layer.param_names, layer.params, layer.grads)):
                if (name, i) not in borrowed:
                    self.params[f"{name}.{pname}"] = param
                    self.grads[f"{name}.{pname}"] = grad

    def replace_arrays(self, params: Mapping[str, np.ndarray] | None = None,
                       grads: Mapping[str, np.ndarray] | None = None) -> None:
        """Make the named arrays the network's own (no copy); shapes and dtypes must match."""
        for section, arrays in (("params", params), ("grads", grads)):
            for key, array in (arrays or {}).items():
                node, pname = key.rsplit(".", 1)
                layer = self.layers[node]
                i = layer.param_names.index(pname)
                current = getattr(layer, section)[i]
                if array.shape != current.shape or array.dtype != current.dtype:
                    raise ValueError(f"{section} {key}: {array.dtype} {array.shape} does not fit "
                                     f"{current.dtype} {current.shape}")
                getattr(layer, section)[i] = array
        self._bind_shared()
        self._index_params()

    def use_rng(self, rng: np.random.Generator) -> None:
        """Make every layer draw from `rng` (dropout masks); used when restoring a checkpoint."""
        self.rng = rng
        for layer in [*self.layers.values(), *([self.loss_layer] if self.loss_layer else [])]:
            layer.rng = rng

    @property
    def output_shape(self) -> Shape:
        """Per-sample shape of the first output."""
        return self.shapes[self.outputs[0]]

    def param_count(self) -> int:
        """Number of trainable numbers, each shared array counted once."""
        return int(sum(p.size for p in self.params.values()))

    def _feed(self, inputs: Inputs) -> dict[str, np.ndarray]:
        if not isinstance(inputs, Mapping):
            if len(self.input_names) != 1:
                raise DataError(f"the network takes inputs {', '.join(self.input_names)}; "
                                "pass a dict of arrays by input name")
            inputs = {self.input_names[0]: inputs}
        values: dict[str, np.ndarray] = {}
        for name in self.input_names:
            if name not in inputs:
                raise DataError(f"missing network input {name!r}")
            x = np.asarray(inputs[name])
            expected = tuple(self.spec.inputs[name].shape)
            if x.shape[1:] != expected:
                raise DataError(
                    f"input {name!r} has shape {x.shape}; the network expects (N, {', '.join(map(str, expected))})"
                )
            if self.input_kinds[name] == "float":
                x = x.astype(self.dtype, copy=False)
            values[name] = x
        return values

    def forward(self, inputs: Inputs, *, train: bool = False) -> np.ndarray:
        """Run every node; return the first output, (N, *output_shape). Keeps all outputs."""
        values = self._feed(inputs)
        name = ""
        try:
            for layer, name, names in self._forward_plan:
                if len(names) == 1:
                    values[name] = layer.forward(values[names[0]], train=train)
                else:
                    values[name] = layer.forward(*[values[i] for i in names], train=train)
        except (ValueError, IndexError) as exc:  # data a layer cannot take, e.g. an id out of range
            raise DataError(f"node {name!r} ({self.layers[name].config.type}): {exc}") from None
        self.values = values
        return values[self.outputs[0]]

    def from_columns(self, table: np.ndarray) -> Inputs:
        """Rows of a table (N, K) as the network's inputs: the columns hold each input's
        flattened per-sample values, inputs in declared order."""
        sizes = [int(np.prod(self.spec.inputs[n].shape, dtype=np.int64)) for n in self.input_names]
        if table.ndim == 1:
            table = table[:, None]
        if len(self.input_names) == 1 and table.shape[1:] == tuple(self.spec.inputs[self.input_names[0]].shape):
            return table
        if table.ndim != 2 or table.shape[1] != sum(sizes):
            layout = " + ".join(f"{n} {tuple(self.spec.inputs[n].shape)}" for n in self.input_names)
            raise DataError(f"rows have {table.shape[1:]} values; the network's inputs take "
                            f"{sum(sizes)} columns ({layout})")
        ends = np.cumsum(sizes)
        parts = np.split(table, ends[:-1], axis=1)
        named = {n: p.reshape(len(table), *self.spec.inputs[n].shape) for n, p in zip(self.input_names, parts)}
        return named if len(named) > 1 else named[self.input_names[0]]

    def forward_all(self, inputs: Inputs, *, train: bool = False) -> dict[str, np.ndarray]:
        """Every output by name, (N, *shape) each."""
        self.forward(inputs, train=train)
        return {name: self.values[name] for name in self.outputs}

    def loss(self, inputs: Inputs, t: np.ndarray, *, train: bool = True) -> float:
        """Forward through the network and the loss layer; returns the mean loss."""
        if self.loss_layer is None:
            raise ModelFileError("the network has no loss; add a [loss] section")
        self.forward(inputs, train=train)
        (source,) = self.spec.loss.inputs
        try:
            return self.loss_layer.forward(self.values[source], np.asarray(t), train=train)
        except (ValueError, IndexError) as exc:
            raise DataError(f"the targets do not fit the loss ({self.spec.loss.type}): {exc}") from None

    def backward(self, dout: float = 1.0) -> None:
        """Backpropagate from the loss; every layer's grads are overwritten in place."""
        assert self.loss_layer is not None and self.spec.loss is not None
        (source,) = self.spec.loss.inputs
        pending: dict[str, np.ndarray] = {source: self.loss_layer.backward(dout)}
        for layer, name, inputs in self._backward_plan:
            dy = pending.pop(name, None)
            if dy is None:  # the node does not reach the loss: its grads are zero
                for grad in layer.grads:
                    grad[...] = 0.0
                continue
            dxs = layer.backward(dy)
            if len(inputs) == 1:
                dxs = (dxs,)
            for source_name, dx in zip(inputs, dxs):
                if dx is not None:
                    pending[source_name] = pending[source_name] + dx if source_name in pending else dx
        for s in self.shared:  # one array, several users: its grad is the sum of theirs
            grad = self.layers[s.node].grads[s.index]
            self.grads[s.owner] += grad.T if s.transpose else grad

    def probabilities(self) -> np.ndarray:
        """What users see for the last `loss` call: the loss layer's predictions (class
        probabilities for a classifier), reused from its forward when it kept them."""
        assert self.loss_layer is not None and self.spec.loss is not None
        kept = self.loss_layer.last_predictions()
        return kept if kept is not None else self.loss_layer.predict(self.values[self.spec.loss.inputs[0]])

    def predict(self, inputs: Inputs, *, batch_size: int = 4096) -> np.ndarray:
        """Outputs for users, in batches: class probabilities when the loss is a classifier's."""
        if not isinstance(inputs, Mapping) and len(self.input_names) != 1:
            self._feed(inputs)  # raises: several inputs need names
        n = count_rows(inputs)
        chunks = []
        for start in range(0, n, batch_size):
            y = self.forward(take_rows(inputs, slice(start, start + batch_size)), train=False)
            if self.loss_layer is not None and self.spec.loss.inputs[0] == self.outputs[0]:
                y = self.loss_layer.predict(y)
            chunks.append(y)
        if not chunks:
            return np.empty((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(chunks)


def _build(
    registry: Registry, node: LayerConfig, shapes: dict[str, Shape], rng: np.random.Generator,
    dtype: np.dtype, source: str, skip_init: bool | Literal["views"],
) -> Layer:
    try:
        cls = registry.get("layer", node.type).cls
    except PluginError as exc:
        raise ModelFileError(f"{source}: node {node.name!r}: {exc}") from None
    in_shapes = [shapes[i] for i in node.inputs]
    if not cls.accepts(len(in_shapes)):
        expected = cls.num_inputs if isinstance(cls.num_inputs, int) else \
            f"{cls.num_inputs[0]} to {cls.num_inputs[1] or 'any number of'}"
        raise ModelFileError(
            f"{source}: node {node.name!r} ({node.type}) takes {expected} input(s), got {len(in_shapes)}")
    try:
        return cls(node, in_shapes, rng=rng, dtype=dtype, skip_init=skip_init)
    except ValueError as exc:
        shown = ", ".join(f"{i} {s}" for i, s in zip(node.inputs, in_shapes))
        raise ModelFileError(f"{source}: node {node.name!r} ({node.type}) with inputs {shown}: {exc}") from None
