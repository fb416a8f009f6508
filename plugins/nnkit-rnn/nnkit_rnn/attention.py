"""The book's TimeAttention (chapter 8): each decoder step attends over the encoder's
states. For every step t, a_t = softmax(hs_enc · h_dec,t) weighs the encoder's states and
the context is c_t = Σ_s a_t,s hs_enc,s; all steps at once, as matrices:

    S = hs_dec hs_encᵀ   (T_dec, T_enc)      A = softmax(S) over the encoder's steps
    C = A hs_enc          (T_dec, H)

The weights A of the last forward are kept (`attention_weights`, (N, T_dec, T_enc)) for
the book's attention plots.

The book builds it from one decoder step's pieces, registered here too: AttentionWeight
(a = softmax(hs h), the weights over the encoder's steps), WeightSum (c = Σ a hs, the
context) and Attention (the two together).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

import nnkit
from nnkit.layers.activations import softmax


class TimeAttentionConfig(nnkit.LayerConfig):
    type: Literal["TimeAttention"] = "TimeAttention"


class TimeAttention(nnkit.Layer):
    """inputs (encoder states (T_enc, H), decoder states (T_dec, H)) → contexts (T_dec, H)."""

    Config = TimeAttentionConfig
    num_inputs = 2
    examples = [({}, [(5, 3), (4, 3)]), ({}, [(2, 4), (3, 4)])]

    def build(self, enc_shape: tuple[int, ...], dec_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(enc_shape) != 2 or len(dec_shape) != 2 or enc_shape[1] != dec_shape[1]:
            raise ValueError(f"expects encoder (T_enc, H) and decoder (T_dec, H) states of one width H, got "
                             f"{enc_shape} and {dec_shape}")
        return dec_shape

    def forward(self, hs_enc: np.ndarray, hs_dec: np.ndarray, train: bool = False) -> np.ndarray:
        self.hs_enc, self.hs_dec = hs_enc, hs_dec
        self.attention_weights = softmax(hs_dec @ np.swapaxes(hs_enc, 1, 2))  # (N, T_dec, T_enc)
        return self.attention_weights @ hs_enc

    def backward(self, dc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, hs_enc, hs_dec = self.attention_weights, self.hs_enc, self.hs_dec
        da = dc @ np.swapaxes(hs_enc, 1, 2)  # through C = A hs_enc
        ds = a * (da - np.sum(da * a, axis=-1, keepdims=True))  # through the softmax
        d_enc = np.swapaxes(a, 1, 2) @ dc + np.swapaxes(ds, 1, 2) @ hs_dec
        return d_enc, ds @ hs_enc


class AttentionWeightConfig(nnkit.LayerConfig):
    type: Literal["AttentionWeight"] = "AttentionWeight"


class AttentionWeight(nnkit.Layer):
    """inputs (encoder states hs (T, H), one decoder state h (H,)) → weights a (T,):
    a = softmax(hs · h), how much each encoder step matters to h."""

    Config = AttentionWeightConfig
    num_inputs = 2
    examples = [({}, [(5, 3), (3,)])]

    def build(self, hs_shape: tuple[int, ...], h_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(hs_shape) != 2 or h_shape != hs_shape[1:]:
            raise ValueError(f"expects states (T, H) and a state (H,) of one width, got {hs_shape} and {h_shape}")
        return hs_shape[:1]

    def forward(self, hs: np.ndarray, h: np.ndarray, train: bool = False) -> np.ndarray:
        self.hs, self.h = hs, h
        self.attention_weights = softmax(np.einsum("nth,nh->nt", hs, h))
        return self.attention_weights

    def backward(self, da: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = self.attention_weights
        ds = a * (da - np.sum(da * a, axis=-1, keepdims=True))  # through the softmax, (N, T)
        return ds[:, :, None] * self.h[:, None, :], np.einsum("nt,nth->nh", ds, self.hs)


class WeightSumConfig(nnkit.LayerConfig):
    type: Literal["WeightSum"] = "WeightSum"


class WeightSum(nnkit.Layer):
    """inputs (encoder states hs (T, H), weights a (T,)) → context c (H,) = Σ_t a_t hs_t."""

    Config = WeightSumConfig
    num_inputs = 2
    examples = [({}, [(5, 3), (5,)])]

    def build(self, hs_shape: tuple[int, ...], a_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(hs_shape) != 2 or a_shape != hs_shape[:1]:
            raise ValueError(f"expects states (T, H) and weights (T,), got {hs_shape} and {a_shape}")
        return hs_shape[1:]

    def forward(self, hs: np.ndarray, a: np.ndarray, train: bool = False) -> np.ndarray:
        self.hs, self.a = hs, a
        return np.einsum("nth,nt->nh", hs, a)

    def backward(self, dc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.a[:, :, None] * dc[:, None, :], np.einsum("nth,nh->nt", self.hs, dc)


class AttentionConfig(nnkit.LayerConfig):
    type: Literal["Attention"] = "Attention"


class Attention(nnkit.Layer):
    """inputs (encoder states hs (T, H), one decoder state h (H,)) → context c (H,): the
    book's Attention, AttentionWeight then WeightSum; the weights kept on `attention_weights`."""

    Config = AttentionConfig
    num_inputs = 2
    examples = [({}, [(5, 3), (3,)])]

    def build(self, hs_shape: tuple[int, ...], h_shape: tuple[int, ...]) -> tuple[int, ...]:
        self.weight = AttentionWeight(AttentionWeightConfig(), [hs_shape, h_shape], dtype=self.dtype)
        self.weight_sum = WeightSum(WeightSumConfig(), [hs_shape, hs_shape[:1]], dtype=self.dtype)
        return hs_shape[1:]

    def forward(self, hs: np.ndarray, h: np.ndarray, train: bool = False) -> np.ndarray:
        self.attention_weights = self.weight.forward(hs, h)
        return self.weight_sum.forward(hs, self.attention_weights)

    def backward(self, dc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dhs, da = self.weight_sum.backward(dc)
        dhs_a, dh = self.weight.backward(da)
        return dhs + dhs_a, dh
