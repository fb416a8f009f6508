"""nnkit's built-in layers: a plugin registered through the same hook as any other.

The classes here are public: a plugin may subclass them (see nnkit-rnn's TimeAffine).
"""

from __future__ import annotations

from nnkit.hookspecs import Register, RegisterConverter, hookimpl
from nnkit.layers.activations import ReLU, Sigmoid, Softmax, Tanh
from nnkit.layers.combine import Add, Concat, Mean
from nnkit.layers.dropout import Dropout
from nnkit.layers.embedding import Embedding
from nnkit.layers.linear import Affine, MatMul
from nnkit.layers.losses import SigmoidWithLoss, SoftmaxWithLoss
from nnkit.layers.reduce import Repeat, Sum
from nnkit.layers.regression import Huber, MeanAbsoluteError, MeanSquaredError
from nnkit.layers.sampling import EmbeddingDot, NegativeSamplingLoss

BUILTIN_LAYERS = (
    MatMul, Affine, Sigmoid, ReLU, Tanh, Softmax,
    SoftmaxWithLoss, SigmoidWithLoss, MeanSquaredError, MeanAbsoluteError, Huber, Repeat, Sum, Dropout, Embedding,
    Concat, Add, Mean, EmbeddingDot, NegativeSamplingLoss,
)


__all__ = [
    "BUILTIN_LAYERS", "Add", "Affine", "Concat", "Dropout", "Embedding", "EmbeddingDot", "Huber", "MatMul", "Mean",
    "MeanAbsoluteError", "MeanSquaredError", "NegativeSamplingLoss", "ReLU", "Repeat", "Sigmoid", "SigmoidWithLoss",
    "Softmax", "SoftmaxWithLoss", "Sum", "Tanh",
]


@hookimpl
def register_layers(register: Register) -> None:
    for layer in BUILTIN_LAYERS:
        register(layer)


@hookimpl
def register_onnx_converters(register: RegisterConverter) -> None:
    from nnkit.interop.onnx_layers import CONVERTERS  # only when a registry is loaded

    for layer_type, convert in CONVERTERS.items():
        register(layer_type, convert)
