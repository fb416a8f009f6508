"""TimeAttention: the book's chapter-8 attention over the encoder's states."""

from __future__ import annotations

import numpy as np
from nnkit_rnn import TimeAttention

from nnkit.testing import check_layer


def test_time_attention_passes_the_layer_contract() -> None:
    check_layer(TimeAttention, {}, [(6, 4), (3, 4)])


def test_each_step_is_a_weighted_mean_of_the_encoder_states_and_the_weights_are_kept() -> None:
    layer = TimeAttention(TimeAttention.Config(type="TimeAttention"), [(5, 3), (2, 3)])
    rng = np.random.default_rng(0)
    hs_enc, hs_dec = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 2, 3))
    contexts = layer.forward(hs_enc, hs_dec)
    weights = layer.attention_weights
    assert weights.shape == (4, 2, 5) and np.allclose(weights.sum(axis=-1), 1.0) and (weights > 0).all()
    for n in range(4):
        for t in range(2):  # the book's loop: a = softmax(hs · h), c = Σ a hs
            scores = hs_enc[n] @ hs_dec[n, t]
            a = np.exp(scores - scores.max())
            a /= a.sum()
            np.testing.assert_allclose(contexts[n, t], a @ hs_enc[n], rtol=1e-12)
    sharp = np.zeros((1, 3, 2))
    sharp[0, 1] = [50.0, 0.0]  # a decoder state aligned with encoder step 1 attends to it alone
    layer.forward(sharp, np.array([[[50.0, 0.0]]]))
    assert layer.attention_weights[0, 0].argmax() == 1 and layer.attention_weights[0, 0, 1] > 0.999


def test_the_books_per_step_pieces_make_time_attention() -> None:
    """Attention (AttentionWeight then WeightSum) at each decoder step is TimeAttention's row."""
    from nnkit_rnn import Attention, AttentionWeight, WeightSum

    rng = np.random.default_rng(2)
    hs_enc, hs_dec = rng.standard_normal((3, 6, 4)), rng.standard_normal((3, 2, 4))
    whole = TimeAttention(TimeAttention.Config(), [(6, 4), (2, 4)])
    contexts = whole.forward(hs_enc, hs_dec)
    step = Attention(Attention.Config(), [(6, 4), (4,)])
    weight, weight_sum = AttentionWeight(AttentionWeight.Config(), [(6, 4), (4,)]), WeightSum(
        WeightSum.Config(), [(6, 4), (6,)])
    for t in range(2):
        np.testing.assert_allclose(step.forward(hs_enc, hs_dec[:, t]), contexts[:, t], rtol=1e-12)
        np.testing.assert_allclose(step.attention_weights, whole.attention_weights[:, t], rtol=1e-12)
        a = weight.forward(hs_enc, hs_dec[:, t])
        np.testing.assert_allclose(weight_sum.forward(hs_enc, a), contexts[:, t], rtol=1e-12)
