"""Parquet files (the extra `nnkit[parquet]`, pyarrow): whole for a dataset, or a batch at
a time for `nnkit predict`, read row group by row group so that memory stays flat.
Columns are chosen by name (`Columns`), or are every column (less the label) in order;
each must hold numbers and no missing values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nnkit.data.files import Columns, split_columns
from nnkit.errors import DataError, reading
from nnkit.paths import open_regular
from nnkit.version import install_hint


def _parquet() -> Any:
    try:
        import pyarrow.parquet
    except ImportError:
        raise DataError(f"reading .parquet files needs pyarrow: {install_hint('parquet')}") from None
    return pyarrow


def _open(path: Path) -> tuple[BinaryIO, Any]:
    """The file and its pyarrow ParquetFile (footer read and checked)."""
    f = open_regular(path, DataError, "data file")  # a missing file is named before a missing extra
    try:
        pyarrow = _parquet()
    except BaseException:
        f.close()
        raise
    try:
        # pre_buffer off: with it, pyarrow keeps what it read ahead, and memory grows with the file.
        return f, pyarrow.parquet.ParquetFile(f, pre_buffer=False)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        f.close()
        raise DataError(f"{path}: not a readable Parquet file: {exc}") from None


def parquet_rows(path: Path) -> int:
    f, parquet = _open(path)
    with f:
        return int(parquet.metadata.num_rows)


def _as_array(batch: Any, path: Path) -> np.ndarray:
    """A table's or record batch's columns side by side, (N, K) float64."""
    columns = []
    for name, column in zip(batch.schema.names, batch.columns):
        if column.null_count:
            raise DataError(f"{path}: column {name!r} has {column.null_count} missing values")
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind not in "biuf":
            raise DataError(f"{path}: column {name!r} holds {column.type} values; nnkit takes real numbers")
        columns.append(values.astype(np.float64, copy=False))
    return np.column_stack(columns) if columns else np.empty((batch.num_rows, 0))


def read_parquet(path: Path, columns: Columns, *, with_label: bool,
                 label_column: int = -1) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, label or None) of a whole Parquet file."""
    pyarrow = _parquet()
    f, parquet = _open(path)
    with f, reading(path, DataError, "data file"):
        names = list(parquet.schema_arrow.names)
        try:
            table = _as_array(parquet.read(), path)
        except pyarrow.ArrowException as exc:
            raise DataError(f"{path}: cannot read: {exc}") from None
    return split_columns(table, names, columns, path, with_label=with_label, label_column=label_column)


def parquet_batches(path: Path, batch_size: int,
                    columns: Columns) -> tuple[BinaryIO, list[str], Iterator[np.ndarray]]:
    """The open file, the chosen columns' names, and its rows of those columns, batch_size
    at a time."""
    f, parquet = _open(path)
    try:
        names = list(parquet.schema_arrow.names)
        chosen, _ = columns.indices(names, path, with_label=False)
        selected = [names[i] for i in chosen] if chosen is not None else names
    except BaseException:
        f.close()
        raise
    return f, selected, _batches(parquet, path, batch_size, selected)


def _batches(parquet: Any, path: Path, batch_size: int, selected: list[str]) -> Iterator[np.ndarray]:
    pyarrow = _parquet()
    with reading(path, DataError, "data file"):
        try:
            for batch in parquet.iter_batches(batch_size=batch_size, columns=selected):
                yield _as_array(batch, path)
        except pyarrow.ArrowException as exc:
            raise DataError(f"{path}: cannot read: {exc}") from None
