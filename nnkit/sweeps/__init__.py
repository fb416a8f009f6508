"""`nnkit sweep`: search a model file's settings with Optuna, run the trials on Dask.

    results = nnkit.sweep("examples/spiral-sweep.toml")               # a LocalCluster here
    results = nnkit.sweep("sweep.toml", scheduler="tcp://host:8786",  # an existing cluster
                          storage="postgresql://…")

The sweep's folder (default `<sweep file stem>.sweep/` in the current folder) holds the
study (`study.db`), each trial's checkpoint and history (`trials/`), the best checkpoint
(`best.nnk`) and `results.json`; running the same sweep again continues the study.
`spec.py` reads sweep files, `engine.py` drives the study and the cluster, `trial.py` is
what a worker runs, `plot.py` draws a finished sweep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnkit.atomic import write_output
from nnkit.errors import NnkitError
from nnkit.registry import Registry

RESULTS = "results.json"


def default_folder(sweep_file: str | Path) -> Path:
    """Where a sweep keeps its study and results when not told: `<stem>.sweep` here."""
    return Path(f"{Path(sweep_file).stem}.sweep")


def sweep(path: str | Path, *, out: str | Path | None = None, scheduler: str | None = None,
          workers: int | None = None, storage: str | None = None, registry: Registry | None = None,
          on_status: Callable[[Any], None] | None = None) -> Any:
    """Run (or continue) the sweep a sweep file declares; returns its trials as records
    (number, state, value, settings, seconds, reason, checkpoint), as a pandas DataFrame
    when pandas is installed. `scheduler`: a Dask scheduler's address (default: a
    LocalCluster of `workers` processes, one per core); `storage`: the Optuna storage URL
    (default: SQLite in the sweep's folder)."""
    outcome = run_file(path, out=out, scheduler=scheduler, workers=workers, storage=storage, registry=registry,
                       on_status=on_status)
    try:
        import pandas
    except ImportError:
        return outcome.records
    return pandas.DataFrame(outcome.records)


def run_file(path: str | Path, *, out: str | Path | None = None, scheduler: str | None = None,
             workers: int | None = None, storage: str | None = None, registry: Registry | None = None,
             on_status: Callable[[Any], None] | None = None) -> Any:
    """`sweep`, returning the engine's `Outcome`, with `results.json` written."""
    from nnkit.plugins import get_registry
    from nnkit.sweeps import engine
    from nnkit.sweeps.spec import read_sweep_file

    checked = read_sweep_file(path, registry or get_registry())
    folder = Path(out) if out is not None else default_folder(path)
    if folder.exists() and not folder.is_dir():
        raise NnkitError(f"{folder}: is not a folder; name the sweep's folder with --out")
    outcome = engine.run(checked, folder, scheduler=scheduler, workers=workers, storage=storage, on_status=on_status)
    summary = {"sweep": str(path), "metric": checked.file.metric, "direction": checked.file.direction,
               "space": {k: v.model_dump(by_alias=True, exclude_none=True) for k, v in checked.file.space.items()},
               "best": outcome.best, "trials": outcome.records, "interrupted": outcome.interrupted}
    write_output(folder / RESULTS, json.dumps(summary, indent=1).encode("utf-8"), NnkitError)
    outcome.folder, outcome.summary = folder, summary
    return outcome


def results_table(summary: dict[str, Any]) -> str:
    """The trials as a text table, best first, then the rest by number."""
    names = list(summary["space"])
    rows = [["trial", "state", summary["metric"], *names, "seconds"]]
    reverse = summary["direction"] == "maximize"
    done = sorted((r for r in summary["trials"] if r["value"] is not None and r["state"] == "complete"),
                  key=lambda r: r["value"], reverse=reverse)
    rest = [r for r in summary["trials"] if r not in done]
    for r in [*done, *rest]:
        value = "" if r["value"] is None else f"{r['value']:.4g}"
        settings = [_show(r["settings"].get(n)) for n in names]
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        state = r["state"] + (f" ({r['reason']})" if r["state"] == "fail" and r.get("reason") else "")
        rows.append([str(r["number"]), state, value, *settings, seconds])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _show(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
