"""Pictures of a run: loss and metric curves from the stored history, and a 2-feature
network's decision regions with its data on top (the book's spiral figure). matplotlib is
the extra `nnkit[plot]`; figures are matplotlib `Figure`s of their own (the process's
pyplot backend is left alone), returned after they are written."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.atomic import write_output
from nnkit.errors import DataError, NnkitError
from nnkit.labels import class_indices
from nnkit.version import install_hint


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure of its own: no pyplot, so the process's backend stays as it was."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NnkitError(f"plotting needs matplotlib: {install_hint('plot')}") from None
    return Figure(**kwargs)


def plot_history(history: list[dict[str, Any]], out: str | Path, title: str = "", *,
                 restored_epoch: int | None = None, logy: bool = False) -> Any:
    """Loss (left) and every other metric (right) per epoch, training and validation;
    `restored_epoch` (early stopping's best) marked on both; `logy`: the loss on a log scale."""
    if not history:
        raise DataError("the checkpoint holds no training history to plot")
    epochs = [r["epoch"] for r in history]
    keys = [k for k in history[-1] if k != "epoch" and not k.startswith("val_")]
    figure = _figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for ax, names in ((axes[0], [k for k in keys if k == "loss"]), (axes[1], [k for k in keys if k != "loss"])):
        for name in names:
            for key, style in ((name, "-"), (f"val_{name}", "--")):
                values = [r.get(key) for r in history]
                if any(v is not None for v in values):
                    ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if restored_epoch is not None:
            ax.axvline(restored_epoch, color="grey", linestyle=":", label=f"restored (epoch {restored_epoch})")
        if ax.get_lines():
            ax.legend()
    axes[0].set_ylabel("loss")
    if logy:
        axes[0].set_yscale("log")
    metrics = [k for k in keys if k != "loss"]
    axes[1].set_ylabel(metrics[0] if len(metrics) == 1 else "metrics")
    if title:
        figure.suptitle(title)
    _save(figure, out)
    return figure


def plot_boundary(network: Any, x: Any, t: np.ndarray, out: str | Path, title: str = "",
                  resolution: int = 300) -> Any:
    """Each point of the plane coloured by the predicted class, the samples on top."""
    if not isinstance(x, np.ndarray):
        raise DataError("decision regions need a network with one input of 2 features; this one has several")
    if x.ndim != 2 or x.shape[1] != 2:
        raise DataError(f"decision regions need 2 input features; the data has shape {x.shape}")
    pad = 0.1 * (x.max(axis=0) - x.min(axis=0)).max()
    xs = np.linspace(x[:, 0].min() - pad, x[:, 0].max() + pad, resolution)
    ys = np.linspace(x[:, 1].min() - pad, x[:, 1].max() + pad, resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    scores = network.predict(grid)
    regions = predicted_classes(scores).reshape(resolution, resolution)
    labels = class_indices(t, (len(x), max(scores.shape[-1], 2))).reshape(-1)
    if scores.shape[-1] == 1:
        labels = (labels > 0.5).astype(int)
    figure = _figure(figsize=(6, 6))
    ax = figure.subplots()
    ax.contourf(xs, ys, regions, alpha=0.3, levels=np.arange(regions.max() + 2) - 0.5, cmap="tab10",
                vmin=0, vmax=9)
    markers = "ox^sv*+Dp<"
    for label in np.unique(labels):
        points = x[labels == label]
        ax.scatter(points[:, 0], points[:, 1], s=18, marker=markers[int(label) % len(markers)],
                   color=_tab10(int(label) % 10), label=f"class {label}")
    ax.legend(loc="upper right")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    _save(figure, out)
    return figure


def plot_attention(weights: np.ndarray, question: list[str], answer: list[str], out: str | Path,
                   title: str = "") -> Any:
    """The book's attention map (ch. 8): weights (T_answer, T_question), one row per
    answer character, one column per question character, darker = more attention."""
    figure = _figure(figsize=(max(4.0, 0.3 * len(question) + 1.5), max(3.0, 0.3 * len(answer) + 1.5)))
    ax = figure.subplots()
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(question)), [c if c.strip() else "␣" for c in question])
    ax.set_yticks(range(len(answer)), [c if c.strip() else "␣" for c in answer])
    ax.set_xlabel("question")
    ax.set_ylabel("answer")
    if title:
        ax.set_title(title)
    _save(figure, out)
    return figure


def predicted_classes(scores: np.ndarray) -> np.ndarray:
    """Class indices from a classifier's outputs (N, C): one output is a binary classifier's
    probability of class 1, thresholded at 0.5; several, one per class, by argmax."""
    return (scores[:, 0] > 0.5).astype(int) if scores.shape[-1] == 1 else scores.argmax(axis=-1)


def _tab10(index: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"](index)


def _save(figure: Any, out: str | Path) -> None:
    """Lay `figure` out, render it in the format its suffix names, then write it atomically."""
    figure.tight_layout()
    buffer = io.BytesIO()
    suffix = Path(out).suffix.lstrip(".").lower() or "png"
    try:
        figure.savefig(buffer, dpi=100, format=suffix)
    except ValueError as exc:
        raise NnkitError(f"{out}: cannot write the picture: {exc}") from None
    write_output(out, buffer.getvalue(), NnkitError)
