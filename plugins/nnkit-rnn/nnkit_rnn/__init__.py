"""nnkit-rnn: the book's time-series layers as an nnkit plugin.

Inputs are (batch, time, features). Registered through the entry point `rnn` in the
group `nnkit`, exactly like any third-party plugin.
"""

from __future__ import annotations

from collections.abc import Callable

import nnkit
from nnkit_rnn.attention import Attention, AttentionWeight, TimeAttention, WeightSum
from nnkit_rnn.data import ArithmeticSequences
from nnkit_rnn.recurrent import TimeGRU, TimeLSTM, TimeRNN
from nnkit_rnn.time_layers import TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss

LAYERS = (TimeEmbedding, TimeAffine, TimeRNN, TimeLSTM, TimeGRU, TimeDropout, TimeSoftmaxWithLoss, TimeAttention,
          AttentionWeight, WeightSum, Attention)

__all__ = [
    "LAYERS", "ArithmeticSequences", "Attention", "AttentionWeight", "TimeAffine", "TimeAttention", "TimeDropout",
    "TimeEmbedding", "TimeGRU", "TimeLSTM", "TimeRNN", "TimeSoftmaxWithLoss", "WeightSum",
]


@nnkit.hookimpl
def register_layers(register: Callable[[type], None]) -> None:
    for layer in LAYERS:
        register(layer)


@nnkit.hookimpl
def register_datasets(register: Callable[[type], None]) -> None:
    register(ArithmeticSequences)


@nnkit.hookimpl
def register_onnx_converters(register: Callable[[str, Callable[..., None]], None]) -> None:
    from nnkit_rnn.onnx_converters import CONVERTERS  # nnkit export only

    for layer_type, convert in CONVERTERS.items():
        register(layer_type, convert)
