"""Targets of classifiers: class indices or one-hot rows, turned into indices in one place."""

from __future__ import annotations

import math

import numpy as np


def class_indices(t: np.ndarray, scores_shape: tuple[int, ...]) -> np.ndarray:
    """Targets for scores of `scores_shape` (N, ..., C) as class indices (N, ...).

    One-hot targets (as many values as the scores, C ≥ 2) become the argmax of each row, as
    in the book; anything else is taken to be indices already and returned as it is.
    """
    c = scores_shape[-1] if scores_shape else 0
    if c >= 2 and t.size == math.prod(scores_shape):
        return t.reshape(-1, c).argmax(axis=1).reshape(scores_shape[:-1])
    return t
