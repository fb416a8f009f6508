"""Gradient clipping by global norm, the book's `max_grad`."""

from __future__ import annotations

import numpy as np


def clip_grads(grads: list[np.ndarray], max_grad: float) -> float:
    """Scale all grads in place by max_grad / (norm + 1e-6) when their global L2 norm exceeds
    max_grad (the book's rule); returns the norm before clipping."""
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))
    rate = max_grad / (norm + 1e-6)
    if rate < 1:
        for g in grads:
            g *= g.dtype.type(rate)
    return norm
