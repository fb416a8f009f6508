"""Metrics: accuracy in its three forms and top-k, ignored labels left out."""

from __future__ import annotations

import numpy as np
import pytest

from nnkit.metrics import TopKAccuracy, TopKAccuracyConfig, accuracy

P = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])


def test_accuracy_with_indices_one_hot_and_ignored_labels() -> None:
    t = np.array([1, 0, 1, 1])
    assert accuracy(P, t) == 0.5
    assert accuracy(P, np.eye(3)[t]) == 0.5
    assert accuracy(P, np.array([1, 0, -1, -1])) == 1.0  # -1: not scored
    assert np.isnan(accuracy(P, np.full(4, -1)))


def test_binary_accuracy_thresholds_at_a_half() -> None:
    assert accuracy(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_top_k_accuracy() -> None:
    top2 = TopKAccuracy(TopKAccuracyConfig(k=2))
    assert top2.name == "top2_accuracy"
    assert top2(P, np.array([2, 1, 0, 2])) == 0.5  # rows 0 and 1 have their class in the top 2
    assert TopKAccuracy(TopKAccuracyConfig(k=5))(P, np.array([2, 1, 0, 2])) == 1.0  # k beyond C


@pytest.mark.parametrize("ignore", [None, -1])
def test_accuracy_from_the_loss_step_equals_the_metric(ignore: int | None) -> None:
    """SoftmaxWithLoss hands the accuracy metric what its forward computed; the value is
    the metric's own, a tied maximum included (argmax's first index)."""
    from nnkit.layers.losses import SoftmaxWithLoss

    config = SoftmaxWithLoss.Config(type="SoftmaxWithLoss", ignore_label=ignore)
    layer = SoftmaxWithLoss(config, [(5,)])
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.standard_normal((40, 5))
        t = rng.integers(0 if ignore is None else -1, 5, size=40)
        layer.forward(x, t)
        assert layer.last_accuracy() == accuracy(layer.last_predictions(), t)
    tied = np.zeros((4, 5))  # every score equal: argmax says class 0
    layer.forward(tied, np.array([0, 1, 2, 3]))
    assert layer.last_accuracy() == accuracy(layer.last_predictions(), np.array([0, 1, 2, 3])) == 0.25
