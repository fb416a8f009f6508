"""Metrics: registered classes that score a network's outputs for users against targets.

A model file lists them in its top-level `metrics` (default: accuracy); the runner reports each
per epoch (mean over the epoch's batches) and from `evaluate` (over all samples).
Plugins add metrics through the `register_metrics` hook.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from nnkit.config import Config as ComponentConfig
from nnkit.hookspecs import Register, hookimpl
from nnkit.labels import class_indices


def accuracy(probabilities: np.ndarray, t: np.ndarray) -> float:
    """Fraction of correct predictions.

    probabilities: (N, ..., C) with C ≥ 2 against class indices (N, ...) or one-hot
    (N, ..., C), compared by argmax; negative class indices (ignored labels) are not
    counted. Otherwise element-wise binary, thresholded at 0.5.
    """
    if probabilities.size == 0:
        return float("nan")
    multiclass = probabilities.ndim >= 2 and probabilities.shape[-1] >= 2
    if multiclass:
        labels = class_indices(t, probabilities.shape).reshape(-1)
        predicted = probabilities.argmax(axis=-1).reshape(-1)
        # Called every training step: few passes over small arrays. An ignored (negative)
        # label never equals an argmax, so it only needs leaving out of the count.
        hits = np.count_nonzero(predicted == labels)
        scored = labels.size - np.count_nonzero(labels < 0)
        return hits / scored if scored else float("nan")
    return float(np.mean((probabilities.reshape(-1) > 0.5) == (t.reshape(-1) > 0.5)))


class Metric:
    """Base of every metric: `metric(probabilities, t)` returns a float; higher is better
    unless `greater_is_better` is False."""

    Config: ClassVar[type[ComponentConfig]]
    greater_is_better: ClassVar[bool] = True

    def __init__(self, config: ComponentConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        """The key under which the metric appears in the history."""
        return self.config.type

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        raise NotImplementedError

    #: True for a metric of what the network writes by itself (an encoder-decoder's
    #: greedy answers), not of one pass's outputs: scored by `decoded` on held-out data
    #: (`val_<name>`, `evaluate`), never per training step.
    needs_decoding: ClassVar[bool] = False

    def decoded(self, network: Any, x: Any, t: np.ndarray) -> float:
        """The metric of the network's own answers to x against t (`needs_decoding`)."""
        raise NotImplementedError

    def from_step(self, step: Any) -> float | None:
        """The value for a training step (a `nnkit.network.LossResult`) when the metric can
        take it from what the step computed anyway; None = call the metric."""
        return None

    def finish(self, mean: float) -> float:
        """The reported value from the mean of the calls' values over an epoch's batches
        (or from the one call over all samples): itself, unless the metric averages
        something else (perplexity averages the log-likelihood, then exponentiates)."""
        return mean


class AccuracyConfig(ComponentConfig):
    type: Literal["accuracy"] = "accuracy"


class Accuracy(Metric):
    """Fraction correct (argmax for classes; 0.5 threshold for binary outputs)."""

    Config = AccuracyConfig

    def from_step(self, step: Any) -> float | None:
        return step.loss_layer.last_accuracy()

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        return accuracy(probabilities, t)


class TopKAccuracyConfig(ComponentConfig):
    type: Literal["top_k_accuracy"] = "top_k_accuracy"
    k: int = Field(default=5, ge=1, le=100_000)  # right when the class is among the k most probable


class TopKAccuracy(Metric):
    """Fraction of samples whose class is among the k most probable. probabilities (N, ..., C)."""

    Config = TopKAccuracyConfig
    config: TopKAccuracyConfig

    @property
    def name(self) -> str:
        return f"top{self.config.k}_accuracy"

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        c = probabilities.shape[-1]
        scores = probabilities.reshape(-1, c)
        labels = class_indices(t, probabilities.shape).reshape(-1)
        scored = labels >= 0
        k = min(self.config.k, c)
        top = np.argpartition(-scores[scored], k - 1, axis=1)[:, :k]
        return float(np.mean(np.any(top == labels[scored, None], axis=1))) if scored.any() else float("nan")


def _errors(predictions: np.ndarray, t: np.ndarray) -> np.ndarray:
    if t.size != predictions.size:
        raise ValueError(f"targets of shape {t.shape} do not match predictions of shape {predictions.shape}")
    return predictions.reshape(-1) - t.reshape(-1).astype(predictions.dtype, copy=False)


class MaeConfig(ComponentConfig):
    type: Literal["mae"] = "mae"


class MeanAbsoluteError(Metric):
    """mean |prediction - t| over every element (regression)."""

    Config = MaeConfig
    greater_is_better = False

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        return float(np.mean(np.abs(_errors(probabilities, t)))) if t.size else float("nan")


class MseConfig(ComponentConfig):
    type: Literal["mse"] = "mse"


class MeanSquaredError(Metric):
    """mean (prediction - t)² over every element (regression)."""

    Config = MseConfig
    greater_is_better = False

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        return float(np.mean(np.square(_errors(probabilities, t)))) if t.size else float("nan")


class R2Config(ComponentConfig):
    type: Literal["r2"] = "r2"


class R2(Metric):
    """The coefficient of determination, 1 - Σ(prediction - t)² / Σ(t - mean t)², over every
    output column together (scikit-learn's `r2_score` for one output); 1 is perfect."""

    Config = R2Config

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        residual = float(np.sum(np.square(_errors(probabilities, t))))
        total = float(np.sum(np.square(t - t.mean()))) if t.size else 0.0
        return 1.0 - residual / total if total > 0 else float("nan")


class PerplexityConfig(ComponentConfig):
    type: Literal["perplexity"] = "perplexity"


class Perplexity(Metric):
    """exp(mean cross-entropy): how many words a language model hesitates between, as the
    book reports it (exp of the mean over batches of each batch's mean loss). probabilities
    (N, ..., C) against class indices (N, ...) or one-hot; negative (ignored) labels are
    left out. 1 is perfect; a uniform guess over C classes scores C."""

    Config = PerplexityConfig
    greater_is_better = False

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        c = probabilities.shape[-1]
        labels = class_indices(t, probabilities.shape).reshape(-1)
        scored = labels >= 0
        if not scored.any():
            return float("nan")
        rows = probabilities.reshape(-1, c)[scored]
        p = rows[np.arange(len(rows)), labels[scored]]
        return float(-np.mean(np.log(np.maximum(p, np.finfo(p.dtype).tiny))))  # the mean log-loss

    def finish(self, mean: float) -> float:
        return float(np.exp(mean))


class ExactMatchConfig(ComponentConfig):
    type: Literal["exact_match"] = "exact_match"
    feed: str = Field(default="answer_in", max_length=64)  # the decoder's input, its first column the start symbol


class ExactMatch(Metric):
    """The book's seq2seq accuracy (ch. 7-8): the fraction of answers, decoded greedily
    from the start symbol, right in every position. x: an encoder-decoder's inputs,
    t (N, T) the answers."""

    Config = ExactMatchConfig
    config: ExactMatchConfig
    needs_decoding = True

    def decoded(self, network: Any, x: Any, t: np.ndarray) -> float:
        from nnkit.generate import decode_greedy

        if not isinstance(x, dict) or np.ndim(t) != 2:
            raise ValueError("exact_match scores an encoder-decoder's answers: inputs by name, answers (N, T)")
        answers = decode_greedy(network, x, feed=self.config.feed)
        return float(np.mean(np.all(answers == t, axis=1))) if len(t) else float("nan")

    def __call__(self, probabilities: np.ndarray, t: np.ndarray) -> float:
        raise TypeError("exact_match scores decoded answers (Metric.decoded), not one pass's outputs")


@hookimpl
def register_metrics(register: Register) -> None:
    for metric in (Accuracy, TopKAccuracy, Perplexity, MeanAbsoluteError, MeanSquaredError, R2, ExactMatch):
        register(metric)
