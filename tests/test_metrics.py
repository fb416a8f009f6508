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
