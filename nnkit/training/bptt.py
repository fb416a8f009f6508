"""Truncated BPTT over one ordered stream: the book's RnnlmTrainer and eval_perplexity.

A language model's data is one sequence of word ids, `xs` and the words that follow them,
`ts`. The stream is read by `rows` cursors spaced len / rows apart; window k takes
`time_size` steps from each cursor at k * time_size (wrapping past the end), so row r of
window k+1 continues row r of window k and a stateful recurrent layer carries its state
from one window into the next. Training windows are counted across epochs (the book's
`time_idx` of one `fit`); evaluation starts at the stream's beginning and never wraps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnkit.data import Inputs
from nnkit.errors import DataError


def as_stream(x: Inputs, t: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ids (N, L) and their next words (N, L) as one stream each, (M,): read
    row after row, positions whose label is negative (a last window's padding) dropped."""
    if not isinstance(x, np.ndarray):
        raise DataError(f"{what}: train.bptt reads one input stream, not inputs {', '.join(x)}")
    t = np.asarray(t)
    if x.shape != t.shape or not np.issubdtype(x.dtype, np.integer) or not np.issubdtype(t.dtype, np.integer):
        raise DataError(f"{what}: train.bptt needs word ids and their next words of one shape; got x {x.dtype} "
                        f"{x.shape}, t {t.dtype} {t.shape}")
    xs, ts = x.reshape(-1), t.reshape(-1)
    kept = ts >= 0
    return (xs, ts) if kept.all() else (xs[kept], ts[kept])


class Windows:
    """The book's batches of a stream: `rows` × `time_size` ids per window.

    xs, ts: (M,) ids. `steps` windows make an epoch: M // (rows * time_size)."""

    def __init__(self, xs: np.ndarray, ts: np.ndarray, rows: int, time_size: int, what: str) -> None:
        self.xs, self.ts, self.time_size = xs, ts, time_size
        self.steps = len(xs) // (rows * time_size)
        if self.steps == 0:
            raise DataError(f"{what}: {len(xs)} words make no window of {rows} rows × {time_size} steps")
        jump = len(xs) // rows
        self._cursor = np.arange(rows)[:, None] * jump + np.arange(time_size)  # (rows, time_size)

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Window `index` (0, 1, … counted across epochs): ids and targets, (rows, time_size) each."""
        at = (self._cursor + index * self.time_size) % len(self.xs)
        return self.xs[at], self.ts[at]


def scores_of_stream(network: Any, metrics: list[Any], x: Inputs, t: np.ndarray, rows: int,
                     time_size: int) -> dict[str, Any]:
    """The book's eval_perplexity for every metric: the held-out stream in windows from its
    start, each layer that carries state in training carrying it from window to window
    (from zero), the loss and each metric averaged over windows. The network's training
    state is left as it was."""
    windows = Windows(*as_stream(x, t, "evaluating"), rows, time_size, "evaluating")
    running = {"loss": 0.0, **{m.name: 0.0 for m in metrics}}
    with network.streaming(carry=None):
        for k in range(windows.steps):
            xb, tb = windows.window(k)
            step = network.loss(xb, tb, train=False)
            add_step(running, metrics, step, tb)
    mean = {key: value / windows.steps for key, value in running.items()}
    return {"loss": mean["loss"], **{m.name: m.finish(mean[m.name]) for m in metrics},
            "samples": windows.steps * rows * time_size}


def add_step(running: dict[str, float], metrics: list[Any], step: Any, t: np.ndarray) -> None:
    """Add a step's loss and metrics to an epoch's (or an evaluation's) running sums."""
    running["loss"] += step.loss
    for metric in metrics:
        value = metric.from_step(step)
        running[metric.name] += metric(step.predictions, t) if value is None else value
