"""Batched inference over files with flat memory: inputs are read a batch at a time (.npy,
.csv with or without a header, .parquet, or CSV on standard input), and outputs written
a batch at a time with ordinary buffered writes (.npy, .csv, or CSV/JSON lines on
stdout). A file output goes to a temp file beside the target,
renamed into place at the end: a failed or killed `predict` leaves no half-written output,
and an output that is the input itself is refused before anything is written."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO

import numpy as np

from nnkit.atomic import Writeback, replacing
from nnkit.data import Inputs
from nnkit.data.files import EVERY_COLUMN, STDIN, Columns, batches, row_count
from nnkit.errors import DataError
from nnkit.labels import class_indices
from nnkit.network import Network
from nnkit.paths import check_output

Format = Literal["csv", "json"]


def predict_file(network: Network, input_path: str | Path, output: str | Path | None, *,
                 batch_size: int = 4096, classes: bool = False, fmt: Format = "csv",
                 stdout: TextIO | None = None, columns: Columns = EVERY_COLUMN) -> int:
    """Predict every row of `input_path` ("-": CSV on standard input) and write the outputs
    as they come; returns the row count. A row holds the inputs' values in declared order
    (see `inputs_from_columns`); `columns` picks them from a table that names its columns
    (default: the columns the network was fitted on, if it knows them, else all).
    `output` .npy or .csv, or None/"-" for stdout in `fmt` (CSV rows or JSON lines)."""
    target = None if output is None or str(output) == "-" else Path(output)
    if target is not None:
        if target.suffix.lower() not in (".npy", ".csv"):
            raise DataError(f"{target}: unknown output extension {target.suffix!r}; use .npy or .csv")
        if str(input_path) != STDIN:
            check_output(target, DataError, inputs=[input_path])
    if columns.features is None and columns.features_if_named is None:
        columns = dataclasses.replace(columns, features_if_named=_fitted_columns(network))
    rows = row_count(input_path, columns.header) if target is not None and target.suffix.lower() == ".npy" else None
    with batches(input_path, batch_size, columns) as chunks:  # checks the input before anything is written
        _check_width(network, chunks.names, input_path)
        if target is None:
            out = stdout or sys.stdout
            return _predict_all(network, chunks, batch_size, classes, lambda y: out.write(_rows_text(y, fmt)))
        return _predict_to_file(network, target, chunks, batch_size, classes, rows)


def _input_widths(network: Network) -> dict[str, tuple[int, ...]]:
    """Each network input's per-sample shape, in declared order."""
    assert network.spec.inputs is not None
    return {n: tuple(network.spec.inputs[n].shape) for n in network.input_names}


def _check_width(network: Network, names: list[str] | None, path: str | Path) -> None:
    """A table that names its columns and has more or fewer than the network takes: say
    which it has, and how to choose."""
    width = sum(math.prod(shape) for shape in _input_widths(network).values())
    if names is not None and len(names) != width:
        raise DataError(f"{path}: {len(names)} columns ({', '.join(names)}), but the network takes {width} values per "
                        "row; choose the feature columns by name (--features, or Columns(features=...))")


def inputs_from_columns(network: Network, table: np.ndarray) -> Inputs:
    """Rows of a table (N, K) as the network's inputs: the columns hold each input's
    flattened per-sample values, inputs in declared order."""
    shapes = _input_widths(network)
    sizes = [math.prod(shape) for shape in shapes.values()]
    if table.ndim == 1:
        table = table[:, None]
    if len(shapes) == 1 and table.shape[1:] == next(iter(shapes.values())):
        return table
    if table.ndim != 2 or table.shape[1] != sum(sizes):
        layout = " + ".join(f"{n} {shape}" for n, shape in shapes.items())
        raise DataError(f"rows have {table.shape[1:]} values; the network's inputs take "
                        f"{sum(sizes)} columns ({layout})")
    parts = np.split(table, np.cumsum(sizes)[:-1], axis=1)
    named = {n: p.reshape(len(table), *shapes[n]) for n, p in zip(shapes, parts)}
    return named if len(named) > 1 else named[network.input_names[0]]


def _fitted_columns(network: Network) -> tuple[str, ...] | None:
    """The feature names a one-input network was fitted on (from a DataFrame), if any."""
    assert network.spec.inputs is not None
    if len(network.input_names) != 1:
        return None
    names = network.spec.inputs[network.input_names[0]].columns
    return tuple(names) if names else None


def _predict_to_file(network: Network, target: Path, chunks: Any, batch_size: int, classes: bool,
                     rows: int | None) -> int:
    try:
        with replacing(target) as (f, writeback):
            if rows is not None:
                return _predict_npy(network, chunks, batch_size, classes, f, writeback, rows)
            return _predict_all(network, chunks, batch_size, classes,
                                lambda y: _write(f, writeback, _rows_text(y, "csv").encode("utf-8")))
    except OSError as exc:
        raise DataError(f"{target}: cannot write: {exc.strerror or exc}") from None


def _predict_npy(network: Network, chunks: Any, batch_size: int, classes: bool, f: BinaryIO,
                 writeback: Writeback, rows: int) -> int:
    """A .npy names its shape up front: the header for `rows`, then each batch's bytes."""
    out_shape = () if classes else network.output_shape
    dtype = np.dtype(np.int64) if classes else network.dtype
    np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                             "shape": (rows, *out_shape)})
    done = _predict_all(network, chunks, batch_size, classes,
                        lambda y: _write(f, writeback, np.ascontiguousarray(y, dtype=dtype).tobytes()))
    if done != rows:
        raise DataError(f"the input changed while it was read: {done} rows, not the {rows} counted first")
    return done


def _predict_all(network: Network, chunks: Any, batch_size: int, classes: bool, write: Any) -> int:
    done = 0
    for chunk in chunks:
        y = network.predict(inputs_from_columns(network, chunk), batch_size=batch_size)
        if classes:
            y = y.argmax(axis=-1) if y.ndim >= 2 and y.shape[-1] >= 2 else (y > 0.5).astype(np.int64)
        write(y)
        done += len(y)
    return done


def _write(f: BinaryIO, writeback: Writeback, data: bytes) -> None:
    f.write(data)
    writeback.wrote(len(data))


def _rows_text(y: np.ndarray, fmt: Format) -> str:
    if fmt == "json":
        return "".join(json.dumps(row) + "\n" for row in y.tolist())
    buffer = io.StringIO()
    integer = np.issubdtype(y.dtype, np.integer)
    np.savetxt(buffer, y.reshape(len(y), -1), delimiter=",", fmt="%d" if integer else "%.8g")
    return buffer.getvalue()


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
