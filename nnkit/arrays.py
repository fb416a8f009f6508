"""Reading and writing user arrays (.npy, .csv) for `nnkit predict`. Never unpickles."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from nnkit.errors import DataError


def read_array(path: str | Path) -> np.ndarray:
    """A 2-D float array from `.npy` (no pickles) or `.csv` (comma-separated, `#` comments)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise DataError(f"{path}: unknown input extension {path.suffix!r}; use .npy or .csv")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with warnings_as_errors():
            return np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read array: {exc}") from None


class warnings_as_errors:  # noqa: N801 - used as a context manager
    """np.loadtxt warns on an empty file; treat that as the error it is."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def write_array(path: str | Path | None, array: np.ndarray) -> None:
    """Write to `.npy` or `.csv`; `None` or "-" prints CSV on stdout."""
    if path is None or str(path) == "-":
        buffer = io.StringIO()
        np.savetxt(buffer, array.reshape(len(array), -1), delimiter=",",
                   fmt="%d" if np.issubdtype(array.dtype, np.integer) else "%.8g")
        sys.stdout.write(buffer.getvalue())
        return
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            np.save(path, array, allow_pickle=False)
        elif path.suffix.lower() == ".csv":
            np.savetxt(path, array.reshape(len(array), -1), delimiter=",",
                       fmt="%d" if np.issubdtype(array.dtype, np.integer) else "%.17g")
        else:
            raise DataError(f"{path}: unknown output extension {path.suffix!r}; use .npy or .csv")
    except OSError as exc:
        raise DataError(f"{path}: cannot write: {exc.strerror or exc}") from None
