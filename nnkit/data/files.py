"""Reading user arrays (.npy, .csv) for `nnkit predict`, `nnkit evaluate --data` and the
`file` dataset: whole, or in row batches read one after another (never mapped), so that
memory stays flat for a file of any size. Never unpickles; only regular files are read.
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
from nnkit.paths import open_regular

SUFFIXES = (".npy", ".csv")


def suffix_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown input extension {path.suffix!r}; use .npy or .csv")
    return suffix


def check_numbers(values: np.ndarray | np.dtype, where: str) -> None:
    """DataError unless the values are real numbers (booleans, integers, floats)."""
    dtype = values if isinstance(values, np.dtype) else values.dtype
    if dtype.kind not in "biuf":
        raise DataError(f"{where}: holds {dtype} values; nnkit takes real numbers")


def read_array(path: str | Path, *, skip_rows: int = 0) -> np.ndarray:
    """An array of numbers from `.npy` (no pickles) or a 2-D one from `.csv` (comma-separated,
    `#` comments, `skip_rows` header lines)."""
    path = Path(path)
    suffix = suffix_of(path)
    with open_regular(path, DataError, "data file") as f, reading(path, DataError, "data file"):
        try:
            if suffix == ".npy":
                array = np.load(f, allow_pickle=False)
            else:
                with warnings_as_errors():
                    array = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64, skiprows=skip_rows)
        except (ValueError, UserWarning, EOFError) as exc:
            raise DataError(f"{path}: cannot read array: {exc}") from None
    check_numbers(array, str(path))
    return array


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


def row_count(path: str | Path) -> int:
    """Rows in a .npy (from its header) or .csv file (one pass over the text)."""
    path = Path(path)
    with open_regular(path, DataError, "data file") as f, reading(path, DataError, "data file"):
        if suffix_of(path) == ".npy":
            return npy_layout(f, path).shape[0]
        try:
            return sum(1 for line in f if line.strip() and not line.lstrip().startswith(b"#"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text: {exc}") from None


class Batches:
    """Row batches of a .npy or .csv file, each read when it is needed. Opening checks the
    file (a regular file of rows of numbers) before the first batch; use in a `with` block
    so that the file is closed however the reading ends."""

    def __init__(self, path: str | Path, batch_size: int) -> None:
        self.path = Path(path)
        if batch_size < 1:
            raise DataError(f"the batch size must be at least 1, not {batch_size}")
        suffix = suffix_of(self.path)
        self.file = open_regular(self.path, DataError, "data file")
        try:
            layout = npy_layout(self.file, self.path) if suffix == ".npy" else None
        except BaseException:
            self.file.close()
            raise
        self._rows = (_npy_batches(self.file, self.path, layout, batch_size) if layout is not None
                      else _csv_batches(self.file, self.path, batch_size))

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._rows

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def batches(path: str | Path, batch_size: int) -> Batches:
    """Row batches of a .npy or .csv file (see `Batches`)."""
    return Batches(path, batch_size)


def _npy_batches(f: BinaryIO, path: Path, layout: NpyLayout, batch_size: int) -> Iterator[np.ndarray]:
    with reading(path, DataError, "data file"):
        for start in range(0, layout.shape[0], batch_size):
            rows = min(batch_size, layout.shape[0] - start)
            raw = f.read(rows * layout.row_bytes)
            if len(raw) != rows * layout.row_bytes:
                raise DataError(f"{path}: truncated: the header promises {layout.shape[0]} rows")
            yield np.frombuffer(raw, dtype=layout.dtype).reshape(rows, *layout.shape[1:])


def _csv_batches(f: BinaryIO, path: Path, batch_size: int) -> Iterator[np.ndarray]:
    with reading(path, DataError, "data file"):
        while True:
            try:
                with warnings_as_errors():
                    chunk = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64, max_rows=batch_size,
                                       encoding="utf-8")
            except UserWarning:  # no rows left
                return
            except (ValueError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot read array: {exc}") from None
            if len(chunk) == 0:
                return
            yield chunk
