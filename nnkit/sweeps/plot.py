"""A finished sweep in pictures (`nnkit plot SWEEP_DIR`): the metric against each searched
setting, one panel each (a log axis for log-uniform ranges), and the optimisation
history — every trial's value in order, with the best so far."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.errors import DataError, reading
from nnkit.plot import _figure, _save


def read_results(folder: str | Path) -> dict[str, Any]:
    """The `results.json` a sweep wrote in `folder`."""
    from nnkit.sweeps import RESULTS

    path = Path(folder) / RESULTS
    with reading(path, DataError, "sweep results file"):
        text = path.read_text(encoding="utf-8")
    try:
        summary = json.loads(text)
        summary["trials"], summary["space"], summary["metric"]  # the fields this module reads
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a sweep's results: {exc}") from None
    return dict(summary)


def plot_sweep(folder: str | Path, out: str | Path) -> Any:
    """Metric vs each setting, and the optimisation history; returns the Figure."""
    summary = read_results(folder)
    metric, names = summary["metric"], list(summary["space"])
    done = [r for r in summary["trials"] if r["value"] is not None and r["state"] == "complete"]
    if not done:
        raise DataError(f"{folder}: no trial has finished yet: nothing to draw")
    figure = _figure(figsize=(4 * (len(names) + 1), 3.6))
    axes = np.atleast_1d(figure.subplots(1, len(names) + 1))
    values = [r["value"] for r in done]
    for ax, name in zip(axes, names):
        xs = [r["settings"].get(name) for r in done]
        dimension = summary["space"][name]
        if "choice" in dimension:  # one column per choice, in the order the space lists them
            labels = [str(c) for c in dimension["choice"]]
            ax.scatter([labels.index(str(x)) for x in xs], values, s=18)
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        else:
            ax.scatter(xs, values, s=18)
            if "log_uniform" in dimension:
                _log_axis(ax)
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    history = axes[-1]
    ordered = sorted(done, key=lambda r: r["number"])
    numbers = [r["number"] for r in ordered]
    best = np.minimum.accumulate if summary["direction"] == "minimize" else np.maximum.accumulate
    history.scatter(numbers, [r["value"] for r in ordered], s=18, label="trial")
    history.step(numbers, best(np.array([r["value"] for r in ordered])), where="post", color="C1", label="best so far")
    history.set_xlabel("trial")
    history.set_ylabel(metric)
    history.grid(alpha=0.3)
    history.legend()
    counts = {state: sum(r["state"] == state for r in summary["trials"]) for state in ("complete", "pruned", "fail")}
    figure.suptitle(f"sweep: {metric} ({summary['direction']}) of {counts['complete']} complete trials "
                    f"({counts['pruned']} pruned, {counts['fail']} failed not shown)")
    _save(figure, out)
    return figure


def _log_axis(ax: Any) -> None:
    """A log x axis labelled in plain numbers (0.3, 1, 3), not powers of ten."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
