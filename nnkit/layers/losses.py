"""Loss layers: forward(x, t) returns the mean loss, backward(dout=1) returns dL/dx.

Both compute the loss from the raw scores with log-sum-exp / softplus, never `log` of a
probability, so that scores of ±1e4 still give a finite loss and finite gradients.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from nnkit.labels import class_indices
from nnkit.layer import LayerConfig, LossLayer, Shape
from nnkit.layers.activations import sigmoid, softmax

_ROWS: dict[int, np.ndarray] = {}


def _rows(n: int) -> np.ndarray:
    """np.arange(n), kept: batches repeat their size, and every step needs it twice."""
    rows = _ROWS.get(n)
    if rows is None:
        if len(_ROWS) > 64:
            _ROWS.clear()
        rows = _ROWS[n] = np.arange(n)
        rows.flags.writeable = False
    return rows


class SoftmaxWithLossConfig(LayerConfig):
    type: Literal["SoftmaxWithLoss"] = "SoftmaxWithLoss"
    # Targets equal to this label are skipped (the book's TimeSoftmaxWithLoss uses -1).
    ignore_label: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)


class SoftmaxWithLoss(LossLayer):
    """Softmax + cross-entropy over the last axis.

    x: (N, ..., C) scores; t: (N, ...) class indices, or one-hot (N, ..., C) — one-hot is
    turned into indices, as in the book. L = mean over scored positions of
    logsumexp(x) - x[t]; positions whose label is `ignore_label` are not scored.
    dx = (softmax(x) - onehot(t)) * dout / M on scored positions (0 elsewhere), M their count.
    """

    Config = SoftmaxWithLossConfig
    config: SoftmaxWithLossConfig
    examples = [({}, [(4,)]), ({}, [(2, 3)]), ({"ignore_label": -1}, [(5, 3)])]

    def build(self, in_shape: Shape) -> Shape:
        if len(in_shape) < 1 or in_shape[-1] < 2:
            raise ValueError(f"expects scores over at least 2 classes, got per-sample shape {in_shape}")
        return ()

    def forward(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        c = x.shape[-1]
        scores = x if x.ndim == 2 else x.reshape(-1, c)
        n = scores.shape[0]
        t = class_indices(t, x.shape)
        labels = t.reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"targets of shape {t.shape} do not match scores of shape {x.shape}")
        ignore = self.config.ignore_label
        self.mask = None if ignore is None else labels != ignore
        if self.mask is not None:
            labels = np.where(self.mask, labels, 0)
        rows = _rows(n)
        # ufunc reductions called directly: ndarray.max and .sum add a Python wrapper each call.
        shifted = scores - np.maximum.reduce(scores, axis=1, keepdims=True)
        try:
            # Unsigned: a negative label becomes huge and fails here, instead of wrapping round.
            labels = labels.astype(np.uintp)
            picked = shifted[rows, labels]
        except (IndexError, TypeError, ValueError):
            raise ValueError(f"class labels must be whole numbers in [0, {c}), got {t.min()}..{t.max()}") from None
        e = np.exp(shifted)
        z = np.add.reduce(e, axis=1)
        # softmax(x) = e / z: divided in backward, into dx (one pass for both), or on demand.
        self._e, self._z, self._y, self.labels, self.x_shape = e, z, None, labels, x.shape
        self._shifted = shifted  # what accuracy needs, already computed
        losses = np.log(z)
        losses -= picked
        if self.mask is None:
            self.count = n
            return float(np.add.reduce(losses)) / max(n, 1)
        self.count = max(int(self.mask.sum()), 1)
        return float((losses * self.mask).sum()) / self.count

    def backward(self, dout: float = 1.0) -> np.ndarray:
        dx = np.divide(self._e, self._z[:, None])  # softmax(x)
        dx[_rows(len(dx)), self.labels] -= 1.0
        dx *= dout / self.count
        if self.mask is not None:
            dx *= self.mask[:, None]
        return dx.reshape(self.x_shape)

    @property
    def y(self) -> np.ndarray:
        """softmax(x) of the last forward, (N', C) with the leading axes flattened."""
        y = self._y
        if y is None:
            y = self._y = self._e / self._z[:, None]
        return y

    def last_predictions(self) -> np.ndarray:
        return self.y.reshape(self.x_shape)

    def last_accuracy(self) -> float | None:
        """Accuracy of the last forward, from its max-shifted scores: argmax's first-index
        rule on ties, as the accuracy metric's own pass (at a language model's 10,000
        classes, half the time of counting zeros and checking for ties)."""
        right = self._shifted.argmax(1) == self.labels  # the method: np.argmax adds ~1 µs of dispatch
        if self.mask is None:
            return np.count_nonzero(right) / len(right) if len(right) else float("nan")
        scored = np.count_nonzero(self.mask)
        return np.count_nonzero(right & self.mask) / scored if scored else float("nan")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return softmax(x)

    @classmethod
    def example_targets(cls, config: Any, input_shape: Shape, batch: int, rng: np.random.Generator) -> np.ndarray:
        t = rng.integers(0, input_shape[-1], size=(batch, *input_shape[:-1]))
        if config.ignore_label is not None:  # ignore about a third of the positions
            t = np.where(rng.random(t.shape) < 0.3, config.ignore_label, t)
        return t


class SigmoidWithLossConfig(LayerConfig):
    type: Literal["SigmoidWithLoss"] = "SigmoidWithLoss"


class SigmoidWithLoss(LossLayer):
    """Sigmoid + binary cross-entropy, element-wise.

    x: (N, ...) scores; t: 0/1 targets of the same size. L = mean(softplus(x) - t * x),
    the stable form of -[t log σ(x) + (1 - t) log(1 - σ(x))]; dx = (σ(x) - t) * dout / size.
    """

    Config = SigmoidWithLossConfig
    examples = [({}, [(1,)]), ({}, [(3,)])]

    def build(self, in_shape: Shape) -> Shape:
        return ()

    def forward(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        if t.size != x.size:
            raise ValueError(f"targets of shape {t.shape} do not match scores of shape {x.shape}")
        t = t.reshape(x.shape).astype(x.dtype, copy=False)
        self.y = sigmoid(x)
        self.t = t
        return float(np.mean(np.logaddexp(0.0, x) - t * x))

    def backward(self, dout: float = 1.0) -> np.ndarray:
        return (self.y - self.t) * (dout / self.t.size)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(x)

    @classmethod
    def example_targets(cls, config: Any, input_shape: Shape, batch: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, 2, size=(batch, *input_shape))
