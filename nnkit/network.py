"""A network: the spec's nodes built into layers, run forward and backward in graph order.

Building happens in two steps, so that arrays are made exactly once:
1. `NetworkPlan(spec, registry)` builds every layer from its input shapes: shapes are
   inferred, params *declared*, shared and tied params resolved, and the param count
   checked against the cap — nothing is allocated.
2. `Network(plan, rng=...)` gives every layer its arrays, once: fresh ones drawn from
   `rng`, or the `params` (and `grads`) it is handed, e.g. copied or mapped from a
   checkpoint.

Params and grads are exposed as mappings from stable names (`"<node>.<param>"`, e.g.
`fc1.W`) to the layers' own arrays, so that writing into them changes the network.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nnkit.data import Inputs, count_rows, take_rows
from nnkit.errors import DataError, ModelFileError, PluginError
from nnkit.layer import Layer, LossLayer, ParamDecl, Shape
from nnkit.limits import default_activation_cap, env_count, max_params_from_env
from nnkit.registry import Registry
from nnkit.sharing import resolve_shared
from nnkit.spec import Node, Spec


@dataclass(frozen=True)
class ArraySpec:
    """The shape and dtype a network's param (and its grad) must have."""

    shape: Shape
    dtype: np.dtype


class NetworkPlan:
    """The spec's layers, built and wired, their params declared but not allocated."""

    def __init__(self, spec: Spec, registry: Registry, *, source: str = "<spec>",
                 max_params: int | None = None) -> None:
        if spec.inputs is None:
            raise ModelFileError(f"{source}: the network's input shapes are unknown; declare [inputs]")
        self.spec, self.source = spec, source
        self.dtype = np.dtype(spec.dtype)
        shapes: dict[str, Shape] = {name: tuple(inp.shape) for name, inp in spec.inputs.items()}
        self.layers: dict[str, Layer] = {}
        for node in spec.order:
            self.layers[node.name] = layer = self._build(registry, node, shapes)
            shapes[node.name] = layer.output_shape
            shapes.update({f"{node.name}.{port}": shape for port, shape in layer.ports.items()})
        self.shapes = shapes
        self.loss_layer: LossLayer | None = None
        if spec.loss is not None:
            layer = self._build(registry, spec.loss, shapes)
            if not isinstance(layer, LossLayer):
                raise ModelFileError(f"{source}: loss: {spec.loss.type} is not a loss layer")
            self.loss_layer = layer
        #: Every layer that may hold params, by node name: the nodes and the loss.
        self.holders: dict[str, Layer] = {**self.layers}
        if spec.loss is not None and self.loss_layer is not None:
            self.holders[spec.loss.name] = self.loss_layer
        self.shared = resolve_shared(self.spec, self.holders, source)
        borrowed = {(s.node, s.index) for s in self.shared}
        #: The params the network owns (shared ones once, under their owner's name), in
        #: graph order: what a checkpoint stores and an optimizer updates.
        self.owned: dict[str, ParamDecl] = {
            f"{name}.{decl.name}": decl  # a ParamRef's text form, built directly: thousands of layers
            for name, layer in self.holders.items() for i, decl in enumerate(layer.declared)
            if not borrowed or (name, i) not in borrowed}
        cap = max_params if max_params is not None else max_params_from_env()
        if self.param_count() > cap:
            raise ModelFileError(f"{source}: the network has {self.param_count():,} params, over the cap of "
                                 f"{cap:,} (set NNKIT_MAX_PARAMS to raise it)")

    def _build(self, registry: Registry, node: Node, shapes: dict[str, Shape]) -> Layer:
        try:
            cls = registry.get("layer", node.type).cls
        except PluginError as exc:
            raise ModelFileError(f"{self.source}: {node.label}: {exc}") from None
        for ref in node.inputs:
            if ref not in shapes:  # "<node>.<port>" where the node has no such port
                source, _, port = ref.partition(".")
                ports = [k.partition(".")[2] for k in shapes if k.startswith(f"{source}.")]
                has = f"its further outputs: {', '.join(ports)}" if ports else "it has no further outputs"
                raise ModelFileError(f"{self.source}: {node.label} takes input {ref!r}, but node {source!r} has no "
                                     f"output {port!r} ({has})")
        in_shapes = [shapes[i] for i in node.inputs]
        if not cls.accepts(len(in_shapes)):
            expected = cls.num_inputs if isinstance(cls.num_inputs, int) else \
                f"{cls.num_inputs[0]} to {cls.num_inputs[1] or 'any number of'}"
            raise ModelFileError(
                f"{self.source}: {node.label} ({node.type}) takes {expected} input(s), got {len(in_shapes)}")
        try:
            layer: Layer = cls(node.config, in_shapes, dtype=self.dtype)
        except ValueError as exc:
            shown = ", ".join(f"{i} {s}" for i, s in zip(node.inputs, in_shapes))
            raise ModelFileError(
                f"{self.source}: {node.label} ({node.type}) with inputs {shown}: {exc}") from None
        return layer

    def param_count(self) -> int:
        """Number of trainable numbers, each shared array counted once."""
        return sum(math.prod(d.shape) for d in self.owned.values())

    def arrays(self) -> dict[str, ArraySpec]:
        """What each owned param (and its grad) must be, by name."""
        return {name: ArraySpec(d.shape, self.dtype) for name, d in self.owned.items()}

    @property
    def output_shape(self) -> Shape:
        """Per-sample shape of the first output."""
        return self.shapes[self.spec.outputs[0]]

    def values_per_sample(self) -> int:
        """How many numbers one sample's pass makes: every input's and node's output."""
        return sum(math.prod(shape) for shape in self.shapes.values())

    def check_batch(self, batch: int, what: str) -> None:
        """Refuse, before anything is allocated, a batch whose activations would not fit:
        forward values, their grads and the layers' caches take about three times the
        values of a pass. The cap is NNKIT_MAX_ACTIVATION_BYTES, by default half the
        machine's memory."""
        need = 3 * batch * self.values_per_sample() * self.dtype.itemsize
        cap = env_count("NNKIT_MAX_ACTIVATION_BYTES", default_activation_cap())
        if need > cap:
            raise ModelFileError(
                f"{self.source}: {what} with batch {batch:,} needs about {need / 2**30:,.1f} GiB of activations "
                f"({self.values_per_sample():,} values per sample); the cap is {cap / 2**30:,.1f} GiB: lower the "
                "batch size, or set NNKIT_MAX_ACTIVATION_BYTES")

    def describe(self) -> str:
        """One line: nodes, params, output shape and loss."""
        loss = f", loss {self.spec.loss.type}" if self.spec.loss is not None else ""
        return (f"{len(self.spec.nodes)} nodes, {self.param_count():,} params, "
                f"output {'×'.join(map(str, self.output_shape)) or 'scalar'} per sample{loss}")


class LossResult:
    """What one `Network.loss` call gives: the mean loss, every node's output (N, ...) by
    name, and the predictions users see (class probabilities for a classifier), computed
    only when asked for and reused from the loss layer's forward when it kept them."""

    def __init__(self, loss: float, values: dict[str, np.ndarray], loss_layer: LossLayer, scores: np.ndarray) -> None:
        self.loss, self.values = loss, values
        self.loss_layer, self._scores = loss_layer, scores  # the layer as its forward left it

    @cached_property
    def predictions(self) -> np.ndarray:
        kept = self.loss_layer.last_predictions()
        return kept if kept is not None else self.loss_layer.predict(self._scores)


class Network:
    """Layers wired as the spec's DAG, with their arrays. Build with `Network.from_spec`,
    or from a `NetworkPlan` when the arrays come from elsewhere (see `nnkit.checkpoint`)."""

    def __init__(self, plan: NetworkPlan, *, rng: np.random.Generator,
                 params: Mapping[str, np.ndarray] | None = None, grads: Mapping[str, np.ndarray] | None = None) -> None:
        """Give every layer of `plan` its arrays, once. `params` (by name, exactly the
        plan's `owned` ones; default: fresh, drawn from `rng` in graph order) and `grads`
        (default: zeros) are adopted as they are, not copied. `rng` is also what layers
        draw randomness from (dropout)."""
        self.spec, self.rng, self.dtype, self.plan = plan.spec, rng, plan.dtype, plan
        self.layers, self.loss_layer, self.shapes = plan.layers, plan.loss_layer, plan.shapes
        self.shared = plan.shared
        self.input_names = plan.spec.input_names
        self.outputs = list(plan.spec.outputs)
        for given, what in ((params, "params"), (grads, "grads")):
            if given is not None and given.keys() != plan.owned.keys():  # as sets, in C
                raise ValueError(f"{what} given for {sorted(set(given) ^ set(plan.owned))} do not match the network")
        self.params: dict[str, np.ndarray] = {name: params[name] for name in plan.owned} if params is not None \
            else {name: decl.fresh(rng, self.dtype) for name, decl in plan.owned.items()}
        self.grads: dict[str, np.ndarray] = {name: grads[name] for name in plan.owned} if grads is not None \
            else {name: np.zeros(decl.shape, dtype=self.dtype) for name, decl in plan.owned.items()}
        borrowed = {(s.node, s.index): s for s in self.shared}
        self._holders = plan.holders
        for node_name, layer in plan.holders.items():
            layer_params, layer_grads = [], []
            for i, decl in enumerate(layer.declared):
                share = borrowed.get((node_name, i)) if borrowed else None
                if share is None:
                    key = f"{node_name}.{decl.name}"  # as in plan.owned
                    layer_params.append(self.params[key])
                    layer_grads.append(self.grads[key])
                else:  # the owner's array (a transposed view when tied); a grad of its own
                    owner = self.params[str(share.owner)]
                    layer_params.append(owner.T if share.transpose else owner)
                    layer_grads.append(np.zeros(decl.shape, dtype=self.dtype))
            layer.attach(layer_params, layer_grads, rng)
        data_inputs = set(self.input_names)
        for node in self.spec.order:  # no one needs dL/d(data): the first layers may skip it
            self.layers[node.name].needs_input_grad = not data_inputs.issuperset(node.inputs)
        # One float input of this dtype and shape needs no checks (see `_feed`).
        first = plan.spec.inputs[self.input_names[0]] if plan.spec.inputs and len(self.input_names) == 1 else None
        self._fast_dtype = self.dtype if first is not None and first.dtype == "float" else None
        self._fast_shape = tuple(first.shape) if first is not None else None
        # Both passes compiled once: (layer, node name, its inputs), in graph order.
        self._forward_plan = [(self.layers[n.name], n.name, n.inputs) for n in self.spec.order]
        self._backward_plan = self._forward_plan[::-1]
        self._chain_backward = self._chain()

    def _chain(self) -> list[Layer] | None:
        """The layers last to first when the graph is one chain from the only input to the
        loss, each node reading the one before and no further outputs (backward is then a
        plain loop); None otherwise."""
        order, loss, reads = self.spec.order, self.spec.loss, [(i,) for i in self.input_names]
        reads += [(n.name,) for n in order]
        if loss is None or len(reads) != len(order) + 1 or tuple(loss.inputs) != reads[-1] or any(
                tuple(n.inputs) != before or self.layers[n.name].ports for n, before in zip(order, reads)):
            return None
        return [self.layers[node.name] for node in reversed(order)]

    @classmethod
    def from_spec(cls, spec: Spec, registry: Registry, *, rng: np.random.Generator, source: str = "<spec>",
                  max_params: int | None = None) -> Network:
        """A network with fresh params drawn from `rng`."""
        return cls(NetworkPlan(spec, registry, source=source, max_params=max_params), rng=rng)

    @property
    def output_shape(self) -> Shape:
        """Per-sample shape of the first output."""
        return self.shapes[self.outputs[0]]

    def param_count(self) -> int:
        """Number of trainable numbers, each shared array counted once."""
        return int(sum(p.size for p in self.params.values()))

    def _feed(self, inputs: Inputs, any_length: bool = False) -> dict[str, np.ndarray]:
        assert self.spec.inputs is not None  # a plan needs them
        if (type(inputs) is np.ndarray and inputs.dtype == self._fast_dtype and inputs.ndim
                and inputs.shape[1:] == self._fast_shape):
            return {self.input_names[0]: inputs}  # the training loop's case: nothing to check or convert
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
            if x.dtype.kind not in "biuf":  # complex, dates, strings, objects, raw bytes
                raise DataError(f"input {name!r} holds {x.dtype} values; the network takes real numbers")
            expected = tuple(self.spec.inputs[name].shape)
            if any_length and len(expected) >= 1 and x.ndim == len(expected) + 1:
                expected = (x.shape[1], *expected[1:])  # a sequence of any number of steps
            if x.ndim == 0 or x.shape[1:] != expected:
                raise DataError(
                    f"input {name!r} has shape {x.shape}; the network expects (N, {', '.join(map(str, expected))})"
                )
            if self.spec.inputs[name].dtype == "float":
                x = x.astype(self.dtype, copy=False)
            values[name] = x
        return values

    def run(self, inputs: Inputs, *, train: bool = False, any_length: bool = False,
            reuse: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Every network input and node output by name, (N, ...) each. With `any_length`
        the inputs' first axis after the batch (time) may differ from the spec's. `reuse`:
        outputs of nodes already computed for these inputs, which are not run again (an
        encoder's, while a decoder writes its answer step by step)."""
        values = self._feed(inputs, any_length)
        name = ""
        try:
            for layer, name, names in self._forward_plan:
                if reuse and name in reuse:
                    values.update({k: v for k, v in reuse.items() if k == name or k.startswith(f"{name}.")})
                    continue
                if len(names) == 1:
                    values[name] = layer.forward(values[names[0]], train=train)
                else:
                    values[name] = layer.forward(*[values[i] for i in names], train=train)
                for port in layer.ports:  # further outputs, as "<node>.<port>"
                    values[f"{name}.{port}"] = layer.port_values[port]
        except (ValueError, IndexError) as exc:  # data a layer cannot take, e.g. an id out of range
            raise DataError(f"node {name!r} ({self.layers[name].config.type}): {exc}") from None
        return values

    def forward(self, inputs: Inputs, *, train: bool = False, any_length: bool = False) -> np.ndarray:
        """The first output, (N, *output_shape)."""
        return self.run(inputs, train=train, any_length=any_length)[self.outputs[0]]

    # -- state carried between batches (stateful recurrent layers) ----------------------

    @property
    def stateful(self) -> bool:
        """Whether some layer carries state from one batch to the next."""
        return any(layer.carries_state for layer in self.layers.values())

    def states(self) -> dict[str, np.ndarray]:
        """What the layers carry into the next batch, as "<node>.<name>" → (N, H) array."""
        return {f"{node}.{key}": value for node, layer in self.layers.items() for key, value in layer.state().items()}

    def set_states(self, states: Mapping[str, np.ndarray]) -> None:
        """Continue from `states` (as `states()` gave them); layers not named start afresh."""
        by_node: dict[str, dict[str, np.ndarray]] = {}
        for key, value in states.items():
            node, _, name = key.rpartition(".")
            if node not in self.layers:
                raise ValueError(f"state {key!r}: no node {node!r}")
            by_node.setdefault(node, {})[name] = value
        for node, layer in self.layers.items():
            layer.set_state(by_node.get(node, {}))

    def reset_states(self) -> None:
        """Every layer starts its next forward from zero (the book's reset_state)."""
        for layer in self.layers.values():
            layer.reset_state()

    @contextmanager
    def streaming(self, *, carry: bool | None = True) -> Iterator[None]:
        """Run apart from training: from zero states, carrying state from call to call in
        every layer that can (`carry` True), in those that do in training (None) or in none
        (False); afterwards the layers as they were, each its flag and carried state (so an
        evaluation mid-epoch leaves the training stream untouched)."""
        saved = self.states()
        flags = {layer: layer.carries_state for layer in self.layers.values()}
        try:
            for layer in self.layers.values():
                layer.reset_state()
                layer.carries_state = layer.can_carry_state and (flags[layer] if carry is None else carry)
            yield
        finally:
            for layer, flag in flags.items():
                layer.carries_state = flag
            self.set_states(saved)

    def forward_all(self, inputs: Inputs, *, train: bool = False) -> dict[str, np.ndarray]:
        """Every output by name, (N, *shape) each."""
        values = self.run(inputs, train=train)
        return {name: values[name] for name in self.outputs}

    def loss(self, inputs: Inputs, t: np.ndarray, *, train: bool = True) -> LossResult:
        """Forward through the network and the loss layer: the mean loss, node outputs and
        (on demand) predictions. `backward` then backpropagates from this loss."""
        if self.loss_layer is None or self.spec.loss is None:
            raise ModelFileError("the network has no loss; add a [loss] section")
        values = self.run(inputs, train=train)
        scores = values[self.spec.loss.inputs[0]]
        try:
            loss = self.loss_layer.forward(scores, np.asarray(t), train=train)
        except (ValueError, IndexError) as exc:
            raise DataError(f"the targets do not fit the loss ({self.spec.loss.type}): {exc}") from None
        return LossResult(loss, values, self.loss_layer, scores)

    def backward(self, dout: float = 1.0) -> None:
        """Backpropagate from the last `loss`; every param's grad is overwritten in place."""
        assert self.loss_layer is not None and self.spec.loss is not None
        if self._chain_backward is not None:
            dy: np.ndarray | None = self.loss_layer.backward(dout)
            for layer in self._chain_backward:  # the first layer gives None when no one needs dL/dx
                dy = layer.backward(dy)
            self._sum_shared_grads()
            return
        pending: dict[str, np.ndarray] = {self.spec.loss.inputs[0]: self.loss_layer.backward(dout)}
        for layer, name, inputs in self._backward_plan:
            dy = pending.pop(name, None)
            if layer.ports:  # most layers have none: no dict to build per step
                layer.port_grads = {p: pending.pop(f"{name}.{p}") for p in layer.ports if f"{name}.{p}" in pending}
            if dy is None and not layer.port_grads:  # the node does not reach the loss: its grads are zero
                for grad in layer.grads:
                    grad[...] = 0.0
                continue
            if dy is None:  # only a further output reaches the loss (an encoder's final state)
                rows = len(next(iter(layer.port_grads.values())))
                dy = np.zeros((rows, *self.shapes[name]), dtype=self.dtype)
            dxs = layer.backward(dy)
            for source_name, dx in zip(inputs, (dxs,) if len(inputs) == 1 else dxs):
                if dx is not None:
                    pending[source_name] = pending[source_name] + dx if source_name in pending else dx
        self._sum_shared_grads()

    def _sum_shared_grads(self) -> None:
        for s in self.shared:  # one array, several users: its grad is the sum of theirs
            grad = self._holders[s.node].grads[s.index]
            self.grads[str(s.owner)] += grad.T if s.transpose else grad

    def predict(self, inputs: Inputs, *, batch_size: int = 4096) -> np.ndarray:
        """Outputs for users, in batches: class probabilities when the loss is a classifier's."""
        if not isinstance(inputs, Mapping) and len(self.input_names) != 1:
            self._feed(inputs)  # raises: several inputs need names
        n = count_rows(inputs)
        self.plan.check_batch(min(batch_size, n), "predicting")
        to_user = self.loss_layer is not None and self.spec.loss is not None \
            and self.spec.loss.inputs[0] == self.outputs[0]
        chunks = []
        with self.streaming(carry=False):  # every batch from zero states, whatever training carries
            for start in range(0, n, batch_size):
                y = self.forward(take_rows(inputs, slice(start, start + batch_size)), train=False)
                chunks.append(self.loss_layer.predict(y) if to_user and self.loss_layer is not None else y)
        if not chunks:
            return np.empty((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(chunks)
