"""Negative sampling (the book's chapter 4): the sampler's distribution and rules, the
CBOW example's neighbours, and a run stopped mid-epoch that resumes drawing the same
negatives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnkit
from nnkit.data.corpus import Corpus, nearest
from nnkit.layers.sampling import NegativeSamplingLoss

from .conftest import EXAMPLES


def loss_layer(vocab: int, sample_size: int, seed: int = 0) -> NegativeSamplingLoss:
    config = NegativeSamplingLoss.Config(type="NegativeSamplingLoss", vocab_size=vocab, sample_size=sample_size)
    return NegativeSamplingLoss(config, [(4,)], rng=np.random.default_rng(seed))


def test_negatives_follow_the_unigram_distribution_to_the_power() -> None:
    layer = loss_layer(6, 1)
    counts = np.array([1, 2, 4, 8, 16, 0])
    layer.prepare(np.repeat(np.arange(6), counts))
    t = np.zeros(200_000, dtype=np.intp)  # target 0 is never drawn, so the rest share all draws
    drawn = np.bincount(layer.negatives(t, np.random.default_rng(1)).reshape(-1), minlength=6)
    p = np.where(counts > 0, counts.astype(float) ** 0.75, 0.0)
    p[0] = 0.0
    np.testing.assert_allclose(drawn / drawn.sum(), p / p.sum(), atol=0.005)
    assert drawn[5] == 0  # a word never seen is never drawn


def test_negatives_are_distinct_and_never_the_target() -> None:
    layer = loss_layer(10, 5)
    layer.prepare(np.arange(10))
    t = np.random.default_rng(2).integers(0, 10, size=1000)
    negatives = layer.negatives(t, np.random.default_rng(3))
    assert negatives.shape == (1000, 5)
    assert not (negatives == t[:, None]).any()
    assert all(len(set(row)) == 5 for row in negatives.tolist())


def test_scoring_draws_from_its_own_generator() -> None:
    """Validation and evaluate never move the run's stream: training after them draws
    what it would have drawn."""
    layer = loss_layer(12, 3)
    h, t = np.random.default_rng(4).standard_normal((8, 4)), np.arange(8)
    before = layer.rng.bit_generator.state
    first = layer.forward(h, t, train=False)
    assert layer.rng.bit_generator.state == before and layer.forward(h, t, train=False) == first


def test_cbow_with_negative_sampling_finds_words_of_the_same_kind() -> None:
    model = nnkit.Model.from_file(EXAMPLES / "cbow-ns.toml")
    model.fit(verbose=False)
    vocabulary = Corpus(model.spec.data).vocabulary()
    vectors = model.params["emb0.W"]
    assert {w for w, _ in nearest(vectors, vocabulary, "tea", top=3)} == {"coffee", "water", "milk"}
    assert {w for w, _ in nearest(vectors, vocabulary, "cats", top=2)} == {"dogs", "birds"}


class StopAt(nnkit.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, runner: Any, step: int, loss: float) -> None:
        if step == self.step:
            runner.stop_training = True


def test_a_run_stopped_mid_epoch_resumes_with_the_same_negatives(tmp_path: Path) -> None:
    straight = nnkit.Model.from_file(EXAMPLES / "cbow-ns.toml", epochs=3)
    straight.fit(verbose=False)
    stopped = nnkit.Model.from_file(EXAMPLES / "cbow-ns.toml", epochs=3)
    stopped.fit(verbose=False, callbacks=[StopAt(50)])  # epoch 2 of 3, mid-way (37 steps an epoch)
    assert stopped.runner.state.progress.position > 0
    stopped.save(tmp_path / "mid.nnk")
    resumed = nnkit.load(tmp_path / "mid.nnk")
    resumed.fit(until=3, verbose=False)
    assert resumed.history.records == straight.history.records
    for name, param in straight.params.items():
        assert np.array_equal(resumed.params[name], param), name


@pytest.mark.parametrize("sample_size", [18, 30])
def test_a_sample_as_large_as_the_vocabulary_is_refused(sample_size: int) -> None:
    data = nnkit.read_model_file(EXAMPLES / "cbow-ns.toml").to_dict()
    data["loss"]["sample_size"] = sample_size
    with pytest.raises(nnkit.ModelFileError, match=f"sample_size {sample_size} needs a vocabulary larger than it"):
        nnkit.Network.from_spec(nnkit.validate_spec(data), nnkit.get_registry(), rng=np.random.default_rng(0))
