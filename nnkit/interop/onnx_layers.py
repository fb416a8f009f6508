"""How nnkit's own layers are written as ONNX operators, registered through the hook
`register_onnx_converters` like any plugin's. Each converter gets the built layer and a
`NodeBuilder` (see `nnkit.interop.onnx`); arrays keep the batch axis first, so a layer's
per-sample axis k is the graph's axis k + 1. Loss layers convert their `predict`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # converters only call it; nnkit.interop.onnx imports onnx on first use
    from nnkit.interop.onnx import NodeBuilder


def matmul(layer: Any, node: NodeBuilder) -> None:
    """x @ W (one input) or a @ b per sample (two; a @ bᵀ with transpose_b): ONNX MatMul
    broadcasts as NumPy does."""
    other = node.inputs[1] if len(node.inputs) == 2 else node.param(0)
    if len(node.inputs) == 2 and layer.config.transpose_b:
        rank = len(layer.input_shapes[1]) + 1
        other = node.add("Transpose", [other], perm=[*range(rank - 2), rank - 1, rank - 2])
    node.add("MatMul", [node.inputs[0], other], node.output)


def affine(layer: Any, node: NodeBuilder) -> None:
    """x @ W + b."""
    node.add("Add", [node.add("MatMul", [node.inputs[0], node.param(0)]), node.param(1)], node.output)


def elementwise(op_type: str) -> Callable[[Any, NodeBuilder], None]:
    """A converter writing the single ONNX operator `op_type` (Sigmoid, Relu, Tanh, Identity, …)."""
    def convert(layer: Any, node: NodeBuilder) -> None:
        node.add(op_type, node.inputs[:1], node.output)
    return convert


def softmax(layer: Any, node: NodeBuilder) -> None:
    """Softmax over the last axis (ONNX ≥ 13 normalises over `axis` alone, as nnkit does)."""
    node.add("Softmax", node.inputs[:1], node.output, axis=-1)


def embedding(layer: Any, node: NodeBuilder) -> None:
    """W[ids]: ids arrive as int64, or as whole numbers in a float input (cast)."""
    ids = node.add("Cast", node.inputs[:1], to=7)  # 7 = INT64
    node.add("Gather", [node.param(0), ids], node.output, axis=0)


def embedding_dot(layer: Any, node: NodeBuilder) -> None:
    """h · W[ids] row by row: Gather the rows (N, K, D), multiply by h (N, 1, D), sum over D."""
    h, ids = node.inputs
    rows = node.add("Gather", [node.param(0), node.add("Cast", [ids], to=7)], axis=0)
    spread = node.add("Unsqueeze", [h, node.constant([1])])
    node.add("ReduceSum", [node.add("Mul", [spread, rows]), node.constant([2])], node.output, keepdims=0)


def negative_sampling_predict(layer: Any, node: NodeBuilder) -> None:
    """What predict gives: softmax(h Wᵀ), a distribution over the vocabulary."""
    scores = node.add("MatMul", [node.inputs[0], node.add("Transpose", [node.param(0)], perm=[1, 0])])
    node.add("Softmax", [scores], node.output, axis=-1)


def repeat(layer: Any, node: NodeBuilder) -> None:
    """np.repeat along the layer's axis: a new axis after it, tiled, merged back (with
    `new_axis`, the new axis tiled is the output)."""
    axis, r = layer.config.axis + 1, layer.config.repeats
    rank = len(layer.input_shapes[0]) + 1
    if layer.config.new_axis:
        spread = node.add("Unsqueeze", [node.inputs[0], node.constant([axis])])
        node.add("Tile", [spread, node.constant([r if k == axis else 1 for k in range(rank + 1)])], node.output)
        return
    spread = node.add("Unsqueeze", [node.inputs[0], node.constant([axis + 1])])
    tiled = node.add("Tile", [spread, node.constant([r if k == axis + 1 else 1 for k in range(rank + 1)])])
    node.add("Reshape", [tiled, node.constant([-1, *layer.output_shape])], node.output)


def sum_axis(layer: Any, node: NodeBuilder) -> None:
    """Σ along the layer's axis, kept with size 1."""
    node.add("ReduceSum", [node.inputs[0], node.constant([layer.config.axis + 1])], node.output, keepdims=1)


def concat(layer: Any, node: NodeBuilder) -> None:
    node.add("Concat", node.inputs, node.output, axis=layer.axis)


def add(layer: Any, node: NodeBuilder) -> None:
    """Σ of one or more inputs of one shape."""
    node.add("Sum", node.inputs, node.output)


def mean(layer: Any, node: NodeBuilder) -> None:
    """Σ / count, as nnkit computes it (ONNX Runtime's Mean has no float64 kernel)."""
    node.add("Div", [node.add("Sum", node.inputs), node.constant(len(node.inputs), node.dtype)], node.output)


CONVERTERS: dict[str, Callable[[Any, NodeBuilder], None]] = {
    "MatMul": matmul, "Affine": affine,
    "Sigmoid": elementwise("Sigmoid"), "ReLU": elementwise("Relu"), "Tanh": elementwise("Tanh"), "Softmax": softmax,
    "Dropout": elementwise("Identity"),  # inference: the identity (inverted dropout)
    "Embedding": embedding, "Repeat": repeat, "Sum": sum_axis,
    "Concat": concat, "Add": add, "Mean": mean, "EmbeddingDot": embedding_dot,
    # Loss layers: what `predict` applies to the scores.
    "SoftmaxWithLoss": softmax, "SigmoidWithLoss": elementwise("Sigmoid"),
    "MeanSquaredError": elementwise("Identity"), "MeanAbsoluteError": elementwise("Identity"),
    "Huber": elementwise("Identity"), "NegativeSamplingLoss": negative_sampling_predict,
}
