"""Metrics computed from a network's outputs for users (probabilities) and the targets."""

from __future__ import annotations

import numpy as np


def accuracy(probabilities: np.ndarray, t: np.ndarray) -> float:
    """Fraction of correct predictions.

    probabilities: (N, ..., C) with C ≥ 2 against class indices (N, ...) or one-hot
    (N, ..., C), compared by argmax; otherwise element-wise binary, thresholded at 0.5.
    """
    if probabilities.size == 0:
        return float("nan")
    multiclass = probabilities.ndim >= 2 and probabilities.shape[-1] >= 2
    if multiclass and t.size == probabilities.size:  # one-hot targets
        t = t.reshape(probabilities.shape).argmax(axis=-1)
    if multiclass:
        predicted = probabilities.argmax(axis=-1)
        return float(np.mean(predicted.reshape(-1) == t.reshape(-1)))
    return float(np.mean((probabilities.reshape(-1) > 0.5) == (t.reshape(-1) > 0.5)))
