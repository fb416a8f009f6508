"""Batched inference over files with flat memory: inputs are memory-mapped (.npy) or read
in chunks (.csv), outputs written batch by batch (.npy, .csv, or CSV/JSON lines on stdout)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from nnkit.data.files import batches, row_count
from nnkit.errors import DataError
from nnkit.labels import class_indices
from nnkit.network import Network

Format = Literal["csv", "json"]


def predict_file(network: Network, input_path: str | Path, output: str | Path | None, *,
                 batch_size: int = 4096, classes: bool = False, fmt: Format = "csv",
                 stdout: TextIO | None = None) -> int:
    """Predict every row of `input_path` and write the outputs as they come; returns the
    row count. A row holds the inputs' values in declared order (see `Network.from_columns`).
    `output` .npy or .csv, or None/"-" for stdout in `fmt` (CSV rows or JSON lines)."""
    chunks = batches(input_path, batch_size)
    out_shape = () if classes else network.output_shape
    dtype = np.int64 if classes else network.dtype
    stdout = stdout or sys.stdout
    target = None if output is None or str(output) == "-" else Path(output)
    if target is not None and target.suffix.lower() not in (".npy", ".csv"):
        raise DataError(f"{target}: unknown output extension {target.suffix!r}; use .npy or .csv")
    memmap: Any = None
    text: TextIO | None = stdout
    try:
        if target is not None and target.suffix.lower() == ".npy":
            # A .npy needs its row count up front; the other outputs just stream.
            memmap = np.lib.format.open_memmap(target, mode="w+", dtype=dtype,
                                               shape=(row_count(input_path), *out_shape))
            text = None
        elif target is not None:
            text = open(target, "w", encoding="utf-8")
        done = 0
        for chunk in chunks:
            y = network.predict(network.from_columns(chunk), batch_size=batch_size)
            if classes:
                y = y.argmax(axis=-1) if y.ndim >= 2 and y.shape[-1] >= 2 else (y > 0.5).astype(np.int64)
            if memmap is not None:
                memmap[done:done + len(y)] = y
            else:
                assert text is not None
                _write_rows(text, y, "csv" if target is not None else fmt)
            done += len(y)
    except OSError as exc:
        raise DataError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        if memmap is not None:
            memmap.flush()
            del memmap
        if text is not None and text is not stdout:
            text.close()
    return done


def _write_rows(out: TextIO, y: np.ndarray, fmt: Format) -> None:
    if fmt == "json":
        out.write("".join(json.dumps(row) + "\n" for row in y.tolist()))
        return
    buffer = io.StringIO()
    integer = np.issubdtype(y.dtype, np.integer)
    np.savetxt(buffer, y.reshape(len(y), -1), delimiter=",", fmt="%d" if integer else "%.8g")
    out.write(buffer.getvalue())


def confusion_matrix(probabilities: np.ndarray, t: np.ndarray) -> list[list[int]] | None:
    """counts[true][predicted] for a classifier's outputs (C ≥ 2 classes); None otherwise.
    Targets may be indices or one-hot; negative (ignored) labels are left out."""
    if probabilities.ndim < 2 or probabilities.shape[-1] < 2:
        return None
    c = probabilities.shape[-1]
    labels = class_indices(t, probabilities.shape).reshape(-1)
    predicted = probabilities.reshape(-1, c).argmax(axis=1)
    keep = labels >= 0
    counts = np.zeros((c, c), dtype=np.int64)
    np.add.at(counts, (labels[keep].astype(np.intp), predicted[keep]), 1)
    return counts.tolist()
