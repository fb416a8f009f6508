"""Reading user arrays (.npy, .csv) for `nnkit predict`, `nnkit evaluate --data` and the
`file` dataset: whole, or in row batches without reading the file whole. Never unpickles."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nnkit.errors import DataError, reading


def read_array(path: str | Path, *, skip_rows: int = 0, mmap: bool = False) -> np.ndarray:
    """A 2-D array from `.npy` (no pickles; `mmap` maps it instead of reading it) or `.csv`
    (comma-separated, `#` comments, `skip_rows` header lines)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise DataError(f"{path}: unknown input extension {path.suffix!r}; use .npy or .csv")
    with reading(path, DataError, "data file"):
        try:
            if suffix == ".npy":
                return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
            with warnings_as_errors():
                return np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=skip_rows)
        except (ValueError, UserWarning) as exc:
            raise DataError(f"{path}: cannot read array: {exc}") from None


@contextlib.contextmanager
def warnings_as_errors() -> Iterator[None]:
    """np.loadtxt warns on an empty file; treat that as the error it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def row_count(path: str | Path) -> int:
    """Rows in a .npy (from its header) or .csv file (one pass over the text)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return len(read_array(path, mmap=True))
    with reading(path, DataError, "data file"), open(path, encoding="utf-8") as f:
        try:
            return sum(1 for line in f if line.strip() and not line.lstrip().startswith("#"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text: {exc}") from None


def batches(path: str | Path, batch_size: int) -> Iterator[np.ndarray]:
    """Row batches of a .npy or .csv file, without reading it whole."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        x = read_array(path, mmap=True)
        return (np.asarray(x[i:i + batch_size]) for i in range(0, len(x), batch_size))
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: unknown input extension {path.suffix!r}; use .npy or .csv")
    if not path.is_file():
        raise DataError(f"{path}: no such file")

    def chunks() -> Iterator[np.ndarray]:
        with reading(path, DataError, "data file"), open(path, encoding="utf-8") as f:
            while True:
                try:
                    with warnings_as_errors():
                        chunk = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64, max_rows=batch_size)
                except UserWarning:  # no rows left
                    return
                except ValueError as exc:
                    raise DataError(f"{path}: cannot read array: {exc}") from None
                if len(chunk) == 0:
                    return
                yield chunk

    return chunks()
