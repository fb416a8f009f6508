"""word2vec's output side with negative sampling (the book's chapter 4).

EmbeddingDot scores a hidden vector against the output embeddings of given word ids: a
row lookup in W and a row-wise dot product, so that only those rows are touched.
NegativeSamplingLoss does what the book's layer of that name does: the target word is a
positive example (label 1), `sample_size` words drawn from the unigram distribution raised
to `power` are negative examples (label 0), every one scored by the same W, each scored
by a sigmoid with cross-entropy; the loss is their sum, averaged over the batch. Negatives
are drawn without replacement and never equal the target (the book's CPU sampler), from
the layer's generator — the run's seeded stream, so a resumed run draws the same ones.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from nnkit.config import MAX_INT
from nnkit.layer import Layer, LayerConfig, LossLayer, Shape
from nnkit.layers.activations import sigmoid, softmax
from nnkit.layers.embedding import check_ids
from nnkit.layers.init import InitName, normal_init


def _row_grads(dW: np.ndarray, ids: np.ndarray, dy: np.ndarray, h: np.ndarray) -> None:
    """dW of y[n, k] = h[n] · W[ids[n, k]]: each looked-up row gets dy[n, k] h[n], summed
    where an id repeats; rows never looked up get 0."""
    dW[...] = 0.0
    np.add.at(dW, ids, dy[..., None] * h[:, None, :])


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) without overflow: -log σ(-x)."""
    return np.logaddexp(0.0, x)


class EmbeddingDotConfig(LayerConfig):
    type: Literal["EmbeddingDot"] = "EmbeddingDot"
    vocab_size: int = Field(ge=1, le=MAX_INT)  # number of ids, V
    init: InitName = "normal"  # see nnkit.layers.init
    init_scale: float = Field(default=0.01, gt=0)  # the book's 0.01 * randn


class EmbeddingDot(Layer):
    """Scores of h against the rows of W for given ids: y[n, k] = h[n] · W[ids[n, k]].
    h: (N, D), ids: (N, K) integers in [0, V) → (N, K); W: (V, D)."""

    Config = EmbeddingDotConfig
    config: EmbeddingDotConfig
    num_inputs = 2
    examples = [({"vocab_size": 7}, [(3,), (2,)]), ({"vocab_size": 5}, [(4,), (1,)])]

    def build(self, h_shape: Shape, ids_shape: Shape) -> Shape:
        if len(h_shape) != 1 or len(ids_shape) != 1:
            raise ValueError(f"expects h (D,) and ids (K,) per sample, got {h_shape} and {ids_shape}")
        v, d = self.config.vocab_size, h_shape[0]
        self.add_param("W", (v, d), normal_init(self.config.init, v, self.config.init_scale))
        return ids_shape

    def forward(self, h: np.ndarray, ids: np.ndarray, train: bool = False) -> np.ndarray:
        ids = np.asarray(ids).astype(np.intp, copy=False)
        check_ids(ids, self.config.vocab_size)
        self.h, self.ids = h, ids
        self.rows = self.params[0][ids]  # (N, K, D)
        return np.einsum("nd,nkd->nk", h, self.rows)

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray | None, None]:
        _row_grads(self.grads[0], self.ids, dy, self.h)
        dh = np.einsum("nk,nkd->nd", dy, self.rows) if self.needs_input_grad else None
        return dh, None  # integer ids have no gradient

    @classmethod
    def example_inputs(cls, config: Any, input_shapes: list[Shape], batch: int,
                       rng: np.random.Generator, dtype: np.dtype) -> list[np.ndarray]:
        h_shape, ids_shape = input_shapes
        return [rng.standard_normal((batch, *h_shape)).astype(dtype),
                rng.integers(0, config.vocab_size, size=(batch, *ids_shape))]


class NegativeSamplingLossConfig(LayerConfig):
    type: Literal["NegativeSamplingLoss"] = "NegativeSamplingLoss"
    vocab_size: int = Field(ge=2, le=MAX_INT)  # number of words, V
    sample_size: int = Field(default=5, ge=1, le=10_000)  # negatives per target (the book: 5)
    power: float = Field(default=0.75, ge=0, le=1)  # unigram counts ** power (the book: 0.75)
    init: InitName = "normal"  # see nnkit.layers.init
    init_scale: float = Field(default=0.01, gt=0)  # the book's 0.01 * randn


class NegativeSamplingLoss(LossLayer):
    """h: (N, D) hidden vectors; t: (N,) target word ids. W: (V, D), the output embeddings.

    L = mean_n [ softplus(-h·W[t]) + Σ_k softplus(h·W[neg_k]) ]: -log σ of the target's
    score plus -log(1 - σ) of each negative's. The sampling distribution is the targets'
    unigram counts ** power, from `prepare` (the runner hands it the training targets;
    uniform until then). For users, `predict` gives softmax(h Wᵀ): a distribution over the
    vocabulary (computed only when asked for; training never scores every word).
    """

    Config = NegativeSamplingLossConfig
    config: NegativeSamplingLossConfig
    examples = [({"vocab_size": 9, "sample_size": 3}, [(4,)]), ({"vocab_size": 6, "sample_size": 5}, [(3,)])]
    default_metrics = ()  # accuracy would score every word each step: what negative sampling avoids

    def build(self, in_shape: Shape) -> Shape:
        c = self.config
        if len(in_shape) != 1:
            raise ValueError(f"expects hidden vectors (D,) per sample, got {in_shape}")
        if c.sample_size >= c.vocab_size:
            raise ValueError(f"sample_size {c.sample_size} needs a vocabulary larger than it, not {c.vocab_size}")
        self.add_param("W", (c.vocab_size, in_shape[0]), normal_init(c.init, c.vocab_size, c.init_scale))
        self.log_p = np.full(c.vocab_size, -np.log(c.vocab_size))
        return ()

    def prepare(self, t: np.ndarray) -> None:
        ids = np.asarray(t).reshape(-1).astype(np.intp)
        check_ids(ids, self.config.vocab_size)
        counts = np.bincount(ids, minlength=self.config.vocab_size).astype(np.float64)
        seen = counts > 0  # a word never seen as a target is never drawn
        weights = np.full(len(counts), -np.inf)
        weights[seen] = self.config.power * np.log(counts[seen])
        self.log_p = weights - np.logaddexp.reduce(weights[seen])

    def negatives(self, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, sample_size) ids drawn without replacement with probability ∝ p, none equal
        to its row's target: the k largest of log p + Gumbel noise (the Gumbel-top-k trick,
        which draws exactly as sequential sampling without replacement does)."""
        n, k = len(t), self.config.sample_size
        keys = self.log_p + rng.gumbel(size=(n, self.config.vocab_size))
        keys[np.arange(n), t] = -np.inf
        return np.argpartition(-keys, k - 1, axis=1)[:, :k]

    def forward(self, h: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        t = np.asarray(t).reshape(-1).astype(np.intp, copy=False)
        if len(t) != len(h):
            raise ValueError(f"{len(t)} targets for {len(h)} samples")
        check_ids(t, self.config.vocab_size)
        # Training draws from the run's stream; scoring (validation, evaluate) from a fixed
        # generator of its own, so that it neither changes nor depends on the training draws.
        rng = self.rng if train else np.random.default_rng(0)
        ids = np.concatenate([t[:, None], self.negatives(t, rng)], axis=1)  # (N, 1 + k): the target first
        W = self.params[0]
        self.h, self.ids, self.rows = h, ids, W[ids]
        scores = np.einsum("nd,nkd->nk", h, self.rows)
        self.scores = scores
        positive, negative = _softplus(-scores[:, 0]), _softplus(scores[:, 1:]).sum(axis=1)
        return float(np.mean(positive + negative))

    def backward(self, dout: float = 1.0) -> np.ndarray:
        s = sigmoid(self.scores)
        s[:, 0] -= 1.0  # d/ds: σ(s) - label, label 1 for the target and 0 for the negatives
        ds = s * (dout / len(s))
        _row_grads(self.grads[0], self.ids, ds, self.h)
        return np.einsum("nk,nkd->nd", ds, self.rows)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return softmax(x @ self.params[0].T)

    @classmethod
    def example_targets(cls, config: Any, input_shape: Shape, batch: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, config.vocab_size, size=batch)
