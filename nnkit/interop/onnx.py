"""ONNX export: a network's inference graph as an ONNX model that ONNX Runtime runs.

The exported graph is what `nnkit predict` computes: every node in graph order with
training-only behaviour off (dropout is the identity), no loss, and — when the first
output feeds the loss — what the loss layer's `predict` applies to the scores (the softmax
of a classifier). Inputs and outputs keep the model file's names and have a dynamic batch
axis `N`; params are initializers under their stable names (`fc1.W`); the graph is in the
network's dtype (float32 or float64).

Each layer type converts through the converter registered for it with the hook
`register_onnx_converters` (nnkit's own layers in `nnkit.interop.onnx_layers`). A
converter adds plain ONNX operators through a `NodeBuilder`; only this module imports
`onnx` (the extra `nnkit[onnx]`), and builds the model with `onnx.helper`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.atomic import write_bytes
from nnkit.errors import ExportError
from nnkit.layer import Layer
from nnkit.network import Network
from nnkit.registry import Registry
from nnkit.version import __version__, install_hint

#: The operator set the graph is written in: a recent stable one that ONNX Runtime ≥ 1.17 runs.
OPSET = 21
#: The IR version that goes with it (onnx's newest IR would be refused by older runtimes).
IR_VERSION = 10


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError(f"ONNX export needs the onnx package: {install_hint('onnx')}") from None
    return onnx


class NodeBuilder:
    """What a converter sees of the graph while it writes one nnkit node: the names of the
    node's inputs and of the output it must produce, its params as initializers, and
    `add` to append ONNX operators. Every name it makes is unique in the graph."""

    def __init__(self, graph: GraphBuilder, name: str, layer: Layer, inputs: Sequence[str], output: str) -> None:
        self._graph, self.name, self.layer = graph, name, layer
        self.inputs: list[str] = list(inputs)
        self.output = output
        self.dtype = graph.dtype
        #: The graph names of the node's further outputs, by port ("h": a recurrent
        #: layer's last state), for the nodes that take them as "<node>.<port>".
        self.ports: dict[str, str] = {}

    def param(self, index: int) -> str:
        """The initializer holding the layer's param `index` (a shared param once, under
        its owner's name; a tied one as the transpose it is)."""
        return self._graph.param(self.name, self.layer, index)

    def constant(self, value: Any, dtype: Any = None, hint: str = "const") -> str:
        """An initializer holding `value` (default dtype: the network's for floats,
        int64 for integers)."""
        array = np.asarray(value)
        if dtype is None:
            dtype = np.int64 if array.dtype.kind in "biu" else self.dtype
        return self._graph.initializer(np.asarray(array, dtype=dtype), self._graph.fresh(f"{self.name}/{hint}"))

    def add(self, op_type: str, inputs: Sequence[str], output: str | None = None, *, outputs: int = 1,
            **attributes: Any) -> Any:
        """Append one ONNX operator; returns its output's name (`output`, or a fresh one),
        or a list of names when `outputs` > 1."""
        names = [output] if output is not None else [self._graph.fresh(f"{self.name}/{op_type}")
                                                      for _ in range(outputs)]
        self._graph.nodes.append(_onnx().helper.make_node(
            op_type, list(inputs), names, name=self._graph.fresh(f"{self.name}/{op_type}"), **attributes))
        return names[0] if outputs == 1 else names


class GraphBuilder:
    """The nodes and initializers of the graph being written."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.dtype = network.dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.used: set[str] = set(network.input_names)
        self._param_names: dict[int, str] = {id(a): name for name, a in network.params.items()}
        self._written: dict[str, str] = {}

    def fresh(self, hint: str) -> str:
        name, k = hint, 1
        while name in self.used:
            k += 1
            name = f"{hint}_{k}"
        self.used.add(name)
        return name

    def initializer(self, array: np.ndarray, name: str) -> str:
        # np.array, not np.ascontiguousarray: that one turns a 0-d array into shape (1,).
        self.initializers.append(_onnx().numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def param(self, node: str, layer: Layer, index: int) -> str:
        array = layer.params[index]
        # An owned or shared param is the network's array itself; a tied one is a view.
        name = self._param_names.get(id(array), f"{node}.{layer.param_names[index]}")
        if name not in self._written:
            self._written[name] = self.initializer(array, self.fresh(name))
        return self._written[name]


def to_onnx(network: Network, registry: Registry) -> Any:
    """The network's inference graph as an `onnx.ModelProto`, checked by onnx's checker."""
    onnx = _onnx()
    helper = onnx.helper
    spec, graph = network.spec, GraphBuilder(network)
    assert spec.inputs is not None  # a built network has them
    float_type = helper.np_dtype_to_tensor_dtype(network.dtype)
    to_user = spec.loss is not None and network.loss_layer is not None and spec.loss.inputs[0] == network.outputs[0]
    scores_of = network.outputs[0] if to_user else None
    # The names the graph gives each node's output: the node's own, except the scores
    # that the loss's `predict` turns into the output of that name.
    produced = {name: name for name in network.input_names}
    for node in spec.order:
        out = graph.fresh(f"{node.name}/scores" if node.name == scores_of else node.name)
        missing = [i for i in node.inputs if i not in produced]
        if missing:
            raise ExportError(f"node {node.name!r} takes {missing[0]!r}, which the ONNX converter of its source "
                              "does not write")
        ports = _convert(registry, graph, node.name, network.layers[node.name], [produced[i] for i in node.inputs],
                         out)
        produced.update({node.name: out, **{f"{node.name}.{port}": value for port, value in ports.items()}})
    if to_user and spec.loss is not None and network.loss_layer is not None and scores_of is not None:
        graph.used.add(scores_of)
        _convert(registry, graph, spec.loss.name, network.loss_layer, [produced[scores_of]], scores_of)
        produced[scores_of] = scores_of
    outputs = []
    for name in network.outputs:
        if produced[name] != name:  # an output that is also a layer's input elsewhere
            graph.nodes.append(helper.make_node("Identity", [produced[name]], [name], name=graph.fresh(f"{name}/out")))
        shape = network.shapes[name]
        if name == scores_of and network.loss_layer is not None:  # what predict makes of the scores
            shape = network.loss_layer.predict(np.zeros((1, *shape), dtype=network.dtype)).shape[1:]
        outputs.append(helper.make_tensor_value_info(name, float_type, ["N", *shape]))
    inputs = [helper.make_tensor_value_info(
        name, float_type if spec.inputs[name].dtype == "float" else onnx.TensorProto.INT64,
        ["N", *spec.inputs[name].shape]) for name in network.input_names]
    model = helper.make_model(
        helper.make_graph(graph.nodes, spec.name or "nnkit", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nnkit", producer_version=__version__)
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"nnkit.spec": json.dumps(spec.to_dict(), separators=(",", ":"))})
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported graph does not check: {exc}") from None
    return model


def _convert(registry: Registry, graph: GraphBuilder, name: str, layer: Layer, inputs: list[str],
             output: str) -> dict[str, str]:
    """Write one node through its layer's converter; returns the graph names of its ports."""
    layer_type = layer.config.type
    entry = registry.onnx_converters.get(layer_type)
    if entry is None:
        origin = registry.find("layer", layer_type)
        source = f" (from {origin.plugin.distribution} {origin.plugin.version})" if origin is not None else ""
        raise ExportError(f"node {name!r}: layer type {layer_type!r}{source} has no ONNX converter; its plugin "
                          "can supply one with the hook register_onnx_converters")
    before = len(graph.nodes)
    builder = NodeBuilder(graph, name, layer, inputs, output)
    entry.convert(layer, builder)
    if not any(output in n.output for n in graph.nodes[before:]):
        raise ExportError(f"node {name!r}: the ONNX converter of {layer_type!r} ({entry.plugin.distribution}) "
                          f"did not write its output {output!r}")
    return builder.ports


def export_onnx(network: Network, path: str | Path, registry: Registry) -> Path:
    """Write the network's inference graph to `path` (atomically); returns the path."""
    path = Path(path)
    data = to_onnx(network, registry).SerializeToString()
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path
