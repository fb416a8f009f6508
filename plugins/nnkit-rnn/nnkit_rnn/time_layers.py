"""Time versions of nnkit's built-in layers. nnkit's own layers already work over any
leading axes, so each is the built-in under the book's name, checked on (N, T, D) inputs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nnkit.layers import Affine, Dropout, Embedding, SoftmaxWithLoss
from nnkit.layers.dropout import DropoutConfig
from nnkit.layers.embedding import EmbeddingConfig
from nnkit.layers.linear import AffineConfig
from nnkit.layers.losses import SoftmaxWithLossConfig


class TimeEmbeddingConfig(EmbeddingConfig):
    type: Literal["TimeEmbedding"] = "TimeEmbedding"  # type: ignore[assignment]


class TimeEmbedding(Embedding):
    """ids (N, T) → (N, T, D): W[ids]."""

    Config = TimeEmbeddingConfig  # type: ignore[assignment]
    examples = [({"vocab_size": 6, "units": 3}, [(4,)])]


class TimeAffineConfig(AffineConfig):
    type: Literal["TimeAffine"] = "TimeAffine"  # type: ignore[assignment]


class TimeAffine(Affine):
    """(N, T, D) → (N, T, H): the same Affine at every time step."""

    Config = TimeAffineConfig  # type: ignore[assignment]
    examples = [({"units": 4}, [(3, 2)])]


class TimeDropoutConfig(DropoutConfig):
    type: Literal["TimeDropout"] = "TimeDropout"  # type: ignore[assignment]


class TimeDropout(Dropout):
    """Inverted dropout over (N, T, D), the book's TimeDropout rule."""

    Config = TimeDropoutConfig  # type: ignore[assignment]
    examples = [({"rate": 0.3}, [(3, 4)])]


class TimeSoftmaxWithLossConfig(SoftmaxWithLossConfig):
    type: Literal["TimeSoftmaxWithLoss"] = "TimeSoftmaxWithLoss"  # type: ignore[assignment]
    ignore_label: int | None = Field(default=-1, ge=-(2**31), le=2**31 - 1)  # the book's -1


class TimeSoftmaxWithLoss(SoftmaxWithLoss):
    """Scores (N, T, V), labels (N, T); positions labelled -1 are ignored, the loss is the
    mean over the rest."""

    Config = TimeSoftmaxWithLossConfig  # type: ignore[assignment]
    examples = [({}, [(4, 3)])]
    #: A language model's loss: perplexity, as the book reports it, and accuracy.
    default_metrics = ("perplexity", "accuracy")
