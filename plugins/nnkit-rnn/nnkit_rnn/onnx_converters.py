"""ONNX converters for nnkit-rnn's layers (`nnkit export --format onnx`).

The recurrent layers are written as an **unrolled graph**: one group of MatMul / Add /
Sigmoid / Tanh / Mul operators per time step (T is fixed by the model file's input shape).
ONNX's own LSTM, GRU and RNN operators would be smaller, but ONNX Runtime runs them in
float32 only, and an unrolled graph computes exactly the book's equations in either dtype.
The state starts at zero, as in nnkit (so step 0 has no h_{t-1} Wh term).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nnkit.interop.onnx_layers import affine, elementwise, embedding, softmax

if TYPE_CHECKING:
    from nnkit.interop.onnx import NodeBuilder


def _steps(node: NodeBuilder, layer: Any) -> tuple[list[str], int]:
    """x_t Wx + b for every step at once, (N, T, G*H), sliced into T arrays (N, G*H)."""
    projected = node.add("Add", [node.add("MatMul", [node.inputs[0], node.param(0)]), node.param(2)])
    t = layer.input_shapes[0][0]
    steps = [node.add("Gather", [projected, node.constant(k)], axis=1) for k in range(t)]
    return steps, layer.config.units


def _output(node: NodeBuilder, layer: Any, hs: list[str]) -> None:
    """(N, T, H) from the steps' h_t, or the last h_t when `return_sequences` is off."""
    if not layer.config.return_sequences:
        node.add("Identity", [hs[-1]], node.output)
        return
    axis = node.constant([1])
    node.add("Concat", [node.add("Unsqueeze", [h, axis]) for h in hs], node.output, axis=1)


def _split(node: NodeBuilder, a: str, sizes: list[int]) -> list[str]:
    parts: list[str] = node.add("Split", [a, node.constant(sizes)], axis=1, outputs=len(sizes))
    return parts


def _given(node: NodeBuilder, index: int) -> str | None:
    """The initial state the node takes as input `index` (1: h, 2: c), or None (zero)."""
    return node.inputs[index] if len(node.inputs) > index else None


def time_rnn(layer: Any, node: NodeBuilder) -> None:
    """h_t = tanh(x_t Wx + b + h_{t-1} Wh)."""
    steps, _ = _steps(node, layer)
    Wh = node.param(1)
    h = _given(node, 1)
    hs: list[str] = []
    for a in steps:
        pre = a if h is None else node.add("Add", [a, node.add("MatMul", [h, Wh])])  # h_{-1} = 0: x Wx + b
        h = node.add("Tanh", [pre])
        hs.append(h)
    node.ports["h"] = hs[-1]
    _output(node, layer, hs)


def time_lstm(layer: Any, node: NodeBuilder) -> None:
    """Gates (f, g, i, o) packed as in nnkit: c_t = f c_{t-1} + g i; h_t = o tanh(c_t)."""
    steps, h_units = _steps(node, layer)
    Wh = node.param(1)
    h, c = _given(node, 1), _given(node, 2)
    hs: list[str] = []
    for a in steps:
        pre = a if h is None else node.add("Add", [a, node.add("MatMul", [h, Wh])])
        f, g, i, o = _split(node, pre, [h_units] * 4)
        g_i = node.add("Mul", [node.add("Tanh", [g]), node.add("Sigmoid", [i])])
        c = g_i if c is None else node.add("Add", [node.add("Mul", [node.add("Sigmoid", [f]), c]), g_i])
        h = node.add("Mul", [node.add("Sigmoid", [o]), node.add("Tanh", [c])])
        hs.append(h)
    assert c is not None  # a sequence has a step
    node.ports.update(h=hs[-1], c=c)
    _output(node, layer, hs)


def time_gru(layer: Any, node: NodeBuilder) -> None:
    """Packed (z, r, h~): z, r = σ(x W + h Wh + b); h~ = tanh(x Wxh + (r h) Whh + bh);
    h_t = (1 - z) h_{t-1} + z h~."""
    steps, h_units = _steps(node, layer)
    Wh_zr, Wh_h = _split(node, node.param(1), [2 * h_units, h_units])  # Wh's (z, r) and h~ columns
    one = node.constant(1.0)
    hs: list[str] = []
    h = _given(node, 1)
    for a in steps:
        a_zr, a_h = _split(node, a, [2 * h_units, h_units])
        if h is None:  # h_{t-1} = 0: z h~ alone
            z = _split(node, node.add("Sigmoid", [a_zr]), [h_units, h_units])[0]
            h = node.add("Mul", [z, node.add("Tanh", [a_h])])
            hs.append(h)
            continue
        z, r = _split(node, node.add("Sigmoid", [node.add("Add", [a_zr, node.add("MatMul", [h, Wh_zr])])]),
                      [h_units, h_units])
        h_hat = node.add("Tanh", [node.add("Add", [a_h, node.add("MatMul", [node.add("Mul", [r, h]), Wh_h])])])
        keep = node.add("Mul", [node.add("Sub", [one, z]), h])
        h = node.add("Add", [keep, node.add("Mul", [z, h_hat])])
        hs.append(h)
    node.ports["h"] = hs[-1]
    _output(node, layer, hs)


def time_attention(layer: Any, node: NodeBuilder) -> None:
    """softmax(hs_dec hs_encᵀ) hs_enc, as the layer computes it."""
    hs_enc, hs_dec = node.inputs
    scores = node.add("MatMul", [hs_dec, node.add("Transpose", [hs_enc], perm=[0, 2, 1])])
    node.add("MatMul", [node.add("Softmax", [scores], axis=-1), hs_enc], node.output)


def _weights(node: NodeBuilder, hs: str, h: str, output: str | None = None) -> str:
    """softmax(hs · h) over the steps: (N, T, H), (N, H) → (N, T)."""
    scores = node.add("ReduceSum", [node.add("Mul", [hs, node.add("Unsqueeze", [h, node.constant([1])])]),
                                    node.constant([-1])], keepdims=0)
    return str(node.add("Softmax", [scores], output, axis=-1))


def _weight_sum(node: NodeBuilder, hs: str, a: str, output: str) -> None:
    """Σ_t a_t hs_t: (N, T, H), (N, T) → (N, H)."""
    weighted = node.add("Mul", [hs, node.add("Unsqueeze", [a, node.constant([-1])])])
    node.add("ReduceSum", [weighted, node.constant([1])], output, keepdims=0)


def attention_weight(layer: Any, node: NodeBuilder) -> None:
    hs, h = node.inputs
    _weights(node, hs, h, node.output)


def weight_sum(layer: Any, node: NodeBuilder) -> None:
    hs, a = node.inputs
    _weight_sum(node, hs, a, node.output)


def attention(layer: Any, node: NodeBuilder) -> None:
    hs, h = node.inputs
    _weight_sum(node, hs, _weights(node, hs, h), node.output)


CONVERTERS: dict[str, Callable[[Any, NodeBuilder], None]] = {
    "TimeEmbedding": embedding, "TimeAffine": affine, "TimeDropout": elementwise("Identity"),
    "TimeSoftmaxWithLoss": softmax, "TimeRNN": time_rnn, "TimeLSTM": time_lstm, "TimeGRU": time_gru,
    "AttentionWeight": attention_weight, "WeightSum": weight_sum, "Attention": attention,
    "TimeAttention": time_attention,
}
