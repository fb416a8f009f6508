"""Pictures of a run: loss and metric curves from the stored history, and a 2-feature
network's decision regions with its data on top (the book's spiral figure). matplotlib is
the extra `nnkit[plot]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nnkit.errors import DataError, NnkitError


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise NnkitError("plotting needs matplotlib: pip install 'nnkit[plot]'") from None
    matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict[str, Any]], out: str | Path, title: str = "") -> None:
    """Loss (left) and every other metric (right) per epoch, training and validation."""
    if not history:
        raise DataError("the checkpoint holds no training history to plot")
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    keys = [k for k in history[-1] if k != "epoch" and not k.startswith("val_")]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, names in ((axes[0], [k for k in keys if k == "loss"]), (axes[1], [k for k in keys if k != "loss"])):
        for name in names:
            for key, style in ((name, "-"), (f"val_{name}", "--")):
                values = [r.get(key) for r in history]
                if any(v is not None for v in values):
                    ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend()
    axes[0].set_ylabel("loss")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    _save(figure, out, plt)


def plot_boundary(network: Any, x: Any, t: np.ndarray, out: str | Path, title: str = "",
                  resolution: int = 300) -> None:
    """Each point of the plane coloured by the predicted class, the samples on top."""
    if not isinstance(x, np.ndarray):
        raise DataError("decision regions need a network with one input of 2 features; this one has several")
    if x.ndim != 2 or x.shape[1] != 2:
        raise DataError(f"decision regions need 2 input features; the data has shape {x.shape}")
    plt = _pyplot()
    pad = 0.1 * (x.max(axis=0) - x.min(axis=0)).max()
    xs = np.linspace(x[:, 0].min() - pad, x[:, 0].max() + pad, resolution)
    ys = np.linspace(x[:, 1].min() - pad, x[:, 1].max() + pad, resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    regions = network.predict(grid).argmax(axis=-1).reshape(resolution, resolution)
    labels = t.argmax(axis=-1) if t.ndim == 2 else t
    figure, ax = plt.subplots(figsize=(6, 6))
    ax.contourf(xs, ys, regions, alpha=0.3, levels=np.arange(regions.max() + 2) - 0.5, cmap="tab10",
                vmin=0, vmax=9)
    markers = "ox^sv*+Dp<"
    for label in np.unique(labels):
        points = x[labels == label]
        ax.scatter(points[:, 0], points[:, 1], s=18, marker=markers[int(label) % len(markers)],
                   color=plt.get_cmap("tab10")(int(label) % 10), label=f"class {label}")
    ax.legend(loc="upper right")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    figure.tight_layout()
    _save(figure, out, plt)


def _save(figure: Any, out: str | Path, plt: Any) -> None:
    try:
        figure.savefig(out, dpi=100)
    except (OSError, ValueError) as exc:
        raise NnkitError(f"{out}: cannot write the picture: {exc}") from None
    finally:
        plt.close(figure)
