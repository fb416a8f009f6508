"""Reading user data (.npy, .csv, .parquet, or CSV on standard input as `-`) for `nnkit
predict`, `nnkit evaluate --data` and the `file` dataset: whole, or in row batches read
one after another (never mapped), so that memory stays flat for a file of any size.
Never unpickles; only regular files (and the standard input) are read.

A CSV file's first line is a header when any of its fields is not a number (or when
`header` says so); columns are then chosen by name (`Columns`). Parquet files always
name their columns (see `nnkit.data.parquet`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nnkit.errors import DataError, reading
from nnkit.names import did_you_mean
from nnkit.paths import open_regular

SUFFIXES = (".npy", ".csv", ".parquet")
#: The path that means the standard input (CSV).
STDIN = "-"


def suffix_of(path: Path) -> str:
    if str(path) == STDIN:
        return ".csv"
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown input extension {path.suffix!r}; use .npy, .csv or .parquet "
                        "(or - for CSV on standard input)")
    return suffix


@dataclass(frozen=True)
class Columns:
    """Which columns of a table are what. `header`: whether a CSV's first line names its
    columns (None: detected). `features`: the feature columns by name, in the network's
    order (None: every column but the label). `label`: the target column by name (None:
    `label_column`, by position). `features_if_named`: the features to take when the file
    names its columns and `features` is None (a network fitted on a DataFrame knows them)."""

    header: bool | None = None
    features: tuple[str, ...] | None = None
    label: str | None = None
    features_if_named: tuple[str, ...] | None = None

    def indices(self, names: list[str] | None, path: object, *, with_label: bool,
                label_column: int = -1) -> tuple[list[int] | None, int | None]:
        """(feature column indices or None for "all but the label", label index or None)."""
        if names is None:
            if self.features is not None or self.label is not None:
                asked = ", ".join(repr(n) for n in (*(self.features or ()), *((self.label,) if self.label else ())))
                raise DataError(f"{path}: has no header row naming its columns, so columns {asked} cannot be found; "
                                "add one, or leave the columns to their positions")
            return None, None
        label = self._find(names, self.label, path) if self.label is not None else None
        if with_label and label is None:
            if not -len(names) <= label_column < len(names):
                raise DataError(f"{path}: has {len(names)} columns; there is no column {label_column} for the label")
            label = label_column % len(names)
        features = self.features if self.features is not None else self.features_if_named
        if features is None:
            return [i for i in range(len(names)) if i != label], label
        return [self._find(names, f, path) for f in features], label

    @staticmethod
    def _find(names: list[str], name: str, path: object) -> int:
        if name not in names:
            raise DataError(f"{path}: no column {name!r}{did_you_mean(name, names)} (columns: {', '.join(names)})")
        if names.count(name) > 1:
            raise DataError(f"{path}: the column name {name!r} appears {names.count(name)} times")
        return names.index(name)


#: Every column, by position; a header row detected.
EVERY_COLUMN = Columns()


def header_names(line: bytes, header: bool | None, path: object) -> list[str] | None:
    """The column names on a CSV's first line, or None when it is a row of numbers."""
    try:
        fields = [f.strip() for f in line.decode("utf-8-sig").split(",")]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}") from None
    if header is None:
        header = not all(_is_number(f) for f in fields)
    if header and len(set(fields)) != len(fields):
        repeated = sorted({f for f in fields if fields.count(f) > 1})
        raise DataError(f"{path}: the header names columns more than once: {', '.join(map(repr, repeated))}")
    return [f.strip('"') for f in fields] if header else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_numbers(values: np.ndarray | np.dtype, where: str) -> None:
    """DataError unless the values are real numbers (booleans, integers, floats)."""
    dtype = values if isinstance(values, np.dtype) else values.dtype
    if dtype.kind not in "biuf":
        raise DataError(f"{where}: holds {dtype} values; nnkit takes real numbers")


def read_array(path: str | Path, *, skip_rows: int = 0) -> np.ndarray:
    """An array of numbers from `.npy` (no pickles) or a 2-D one from `.csv` (comma-separated,
    `#` comments, `skip_rows` lines skipped, a header row detected) or `.parquet`."""
    features, _ = read_table(path, Columns(), with_label=False, skip_rows=skip_rows)
    return features


def read_table(path: str | Path, columns: Columns, *, with_label: bool, label_column: int = -1,
               skip_rows: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, label or None) of a whole file; a .npy's columns go by position."""
    path = Path(path)
    suffix = suffix_of(path)
    if suffix == ".parquet":
        from nnkit.data.parquet import read_parquet

        return read_parquet(path, columns, with_label=with_label, label_column=label_column)
    with _opened(path) as f, reading(path, DataError, "data file"):
        try:
            if suffix == ".npy":
                table = np.load(f, allow_pickle=False)
                names = None
            else:
                for _ in range(skip_rows):
                    f.readline()
                names, first = _first_line(f, columns.header, path)
                with warnings_as_errors():
                    table = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64, encoding="utf-8")
                if first is not None:
                    table = np.concatenate([first, table]) if table.size else first
        except (ValueError, UserWarning, EOFError) as exc:
            raise DataError(f"{path}: cannot read array: {exc}") from None
    check_numbers(table, str(path))
    return split_columns(table, names, columns, path, with_label=with_label, label_column=label_column)


def split_columns(table: np.ndarray, names: list[str] | None, columns: Columns, path: object, *, with_label: bool,
                  label_column: int = -1) -> tuple[np.ndarray, np.ndarray | None]:
    """The chosen feature columns and label column of a table (N, K)."""
    if names is not None and table.ndim == 2 and table.shape[1] != len(names):
        raise DataError(f"{path}: the header names {len(names)} columns, the rows have {table.shape[1]}")
    features, label = columns.indices(names, path, with_label=with_label, label_column=label_column)
    if features is None and label is None:
        if not with_label:
            return table, None
        if table.ndim != 2 or table.shape[1] < 2:
            raise DataError(f"{path}: expected a table with feature columns and a label column, got {table.shape}")
        label = label_column % table.shape[1]
        features = [i for i in range(table.shape[1]) if i != label]
    x = np.ascontiguousarray(table[:, features]) if features is not None else table
    return x, (table[:, label] if label is not None else None)


def _first_line(f: BinaryIO, header: bool | None, path: object) -> tuple[list[str] | None, np.ndarray | None]:
    """A CSV's column names and, when its first line is data, that row (parsed here: a
    pipe cannot be rewound). Comment lines before it are skipped."""
    line = f.readline()
    while line.lstrip().startswith(b"#") or (line and not line.strip()):
        line = f.readline()
    if not line:
        return None, None
    names = header_names(line, header, path)
    if names is not None:
        return names, None
    with warnings_as_errors():
        return None, np.loadtxt([line.decode("utf-8")], delimiter=",", ndmin=2, dtype=np.float64)


def _opened(path: Path) -> BinaryIO:
    """The file at `path`, or the standard input for `-` (left open when closed here)."""
    if str(path) == STDIN:
        import sys

        return open(sys.stdin.buffer.fileno(), "rb", closefd=False)
    return open_regular(path, DataError, "data file")


@contextlib.contextmanager
def warnings_as_errors() -> Iterator[None]:
    """np.loadtxt warns on an empty file; treat that as the error it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@dataclass(frozen=True)
class NpyLayout:
    """Where a .npy file's rows are: shape, dtype and the offset of the first byte."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize


def npy_layout(f: BinaryIO, path: Path) -> NpyLayout:
    """The layout in a .npy header; DataError for anything but rows of numbers in C order."""
    fmt: Any = np.lib.format
    try:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a .npy file: {exc}") from None
    if not shape:
        raise DataError(f"{path}: holds a single value, not rows")
    if fortran_order and len(shape) > 1:
        raise DataError(f"{path}: is in Fortran order; save it in C order (np.ascontiguousarray) to stream its rows")
    check_numbers(np.dtype(dtype), str(path))
    return NpyLayout(tuple(shape), np.dtype(dtype), f.tell())


def row_count(path: str | Path, header: bool | None = None) -> int:
    """Rows in a .npy or .parquet file (from its header) or a .csv file (one pass over the
    text, less a header row)."""
    path = Path(path)
    suffix = suffix_of(path)
    if str(path) == STDIN:
        raise DataError("the standard input cannot be counted ahead: write .csv or to standard output, "
                        "or save the input to a file for a .npy output")
    if suffix == ".parquet":
        from nnkit.data.parquet import parquet_rows

        return parquet_rows(path)
    with open_regular(path, DataError, "data file") as f, reading(path, DataError, "data file"):
        if suffix == ".npy":
            return npy_layout(f, path).shape[0]
        names, first = _first_line(f, header, path)
        return (first is not None) + sum(1 for line in f if line.strip() and not line.lstrip().startswith(b"#"))


class Batches:
    """Feature rows of a .npy, .csv or .parquet file (or CSV on standard input), a batch at
    a time, each read when it is needed. Opening checks the file (a regular file of rows of
    numbers, its header and the columns asked for) before the first batch; use in a `with`
    block so that the file is closed however the reading ends."""

    def __init__(self, path: str | Path, batch_size: int, columns: Columns = EVERY_COLUMN) -> None:
        self.path = Path(path)
        if batch_size < 1:
            raise DataError(f"the batch size must be at least 1, not {batch_size}")
        suffix = suffix_of(self.path)
        #: The names of the columns each batch holds, when the file names them.
        self.names: list[str] | None = None
        if suffix == ".parquet":
            from nnkit.data.parquet import parquet_batches

            self.file, self.names, self._rows = parquet_batches(self.path, batch_size, columns)
            return
        self.file = _opened(self.path)
        try:
            if suffix == ".npy":
                if columns.features is not None:
                    raise DataError(f"{self.path}: a .npy file has no column names; its columns go by position")
                self._rows = _npy_batches(self.file, self.path, npy_layout(self.file, self.path), batch_size)
            else:
                with reading(self.path, DataError, "data file"):
                    names, first = _first_line(self.file, columns.header, self.path)
                chosen, _ = columns.indices(names, self.path, with_label=False)
                if names is not None:
                    self.names = [names[i] for i in chosen] if chosen is not None else names
                self._rows = _csv_batches(self.file, self.path, batch_size, first, chosen, names)
        except BaseException:
            self.file.close()
            raise

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._rows

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def batches(path: str | Path, batch_size: int, columns: Columns = EVERY_COLUMN) -> Batches:
    """Feature rows of a file, a batch at a time (see `Batches`)."""
    return Batches(path, batch_size, columns)


def _npy_batches(f: BinaryIO, path: Path, layout: NpyLayout, batch_size: int) -> Iterator[np.ndarray]:
    with reading(path, DataError, "data file"):
        for start in range(0, layout.shape[0], batch_size):
            rows = min(batch_size, layout.shape[0] - start)
            raw = f.read(rows * layout.row_bytes)
            if len(raw) != rows * layout.row_bytes:
                raise DataError(f"{path}: truncated: the header promises {layout.shape[0]} rows")
            yield np.frombuffer(raw, dtype=layout.dtype).reshape(rows, *layout.shape[1:])


def _csv_batches(f: BinaryIO, path: Path, batch_size: int, first: np.ndarray | None, chosen: list[int] | None,
                 names: list[str] | None) -> Iterator[np.ndarray]:
    """Rows of batch_size (the first batch begins with the already parsed `first` row),
    only the `chosen` columns."""
    with reading(path, DataError, "data file"):
        while True:
            want = batch_size - (first is not None)
            try:
                with warnings_as_errors():
                    chunk = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64, max_rows=want,
                                       encoding="utf-8") if want else np.empty((0, 0))
            except UserWarning:  # no rows left
                chunk = np.empty((0, 0))
            except (ValueError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot read array: {exc}") from None
            if first is not None:
                chunk = np.concatenate([first, chunk]) if chunk.size else first
                first = None
            if len(chunk) == 0:
                return
            if names is not None and chunk.shape[1] != len(names):
                raise DataError(f"{path}: the header names {len(names)} columns, a row has {chunk.shape[1]}")
            yield np.ascontiguousarray(chunk[:, chosen]) if chosen is not None else chunk
            if len(chunk) < batch_size:
                return
