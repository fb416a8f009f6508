"""The book's spiral rule, drawn from an explicit generator."""

from __future__ import annotations

import numpy as np

from nnkit.data.builtin import spiral


def test_spiral_follows_the_books_rule() -> None:
    data = spiral(np.random.default_rng(0), points_per_class=100, classes=3)
    assert data.x.shape == (300, 2) and data.t.shape == (300,)
    assert list(np.bincount(data.t)) == [100, 100, 100]
    assert np.all(data.t[:100] == 0) and np.all(data.t[200:] == 2)  # ordered by class
    radius = np.hypot(data.x[:, 0], data.x[:, 1])
    assert np.allclose(radius[:100], np.arange(100) / 100)  # radius = i / N


def test_noise_free_spiral_angles() -> None:
    data = spiral(np.random.default_rng(0), points_per_class=10, classes=2, noise=0.0)
    i, j = 3, 1
    rate = i / 10
    theta = 4.0 * j + 4.0 * rate
    assert np.allclose(data.x[10 + i], [rate * np.sin(theta), rate * np.cos(theta)])


def test_spiral_is_reproducible_from_the_generator() -> None:
    a = spiral(np.random.default_rng(5))
    b = spiral(np.random.default_rng(5))
    assert np.array_equal(a.x, b.x)


def test_generated_datasets_are_bounded() -> None:
    import pytest

    import nnkit

    with pytest.raises(nnkit.ModelFileError, match=r"points_per_class × classes may be at most 100,000,000"):
        nnkit.validate_spec({"inputs": {"x": {"shape": [2]}}, "nodes": [{"type": "ReLU"}],
                             "data": {"type": "spiral", "points_per_class": 1_000_000, "classes": 1000}})


def test_the_corpus_tokenizer_is_the_books_preprocess() -> None:
    from nnkit.data.corpus import tokenize

    assert tokenize("You say goodbye and I say hello.") == ["you", "say", "goodbye", "and", "i", "say", "hello", "."]
    # PTB's tokens survive: every run of non-space characters is a word, '.' split off as the book does
    assert tokenize("the <unk> rose $ 5 N % to 3.5 <eos>") == \
        ["the", "<unk>", "rose", "$", "5", "n", "%", "to", "3", ".5", "<eos>"]
