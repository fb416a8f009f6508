"""The book's TimeAttention (chapter 8): each decoder step attends over the encoder's
states. For every step t, a_t = softmax(hs_enc · h_dec,t) weighs the encoder's states and
the context is c_t = Σ_s a_t,s hs_enc,s; all steps at once, as matrices:

    S = hs_dec hs_encᵀ   (T_dec, T_enc)      A = softmax(S) over the encoder's steps
    C = A hs_enc          (T_dec, H)

The weights A of the last forward are kept (`attention_weights`, (N, T_dec, T_enc)) for
the book's attention plots.
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
