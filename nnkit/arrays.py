"""Reading user arrays (.npy, .csv) for `nnkit predict` and file datasets. Never unpickles."""

from __future__ import annotations

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


class warnings_as_errors:  # noqa: N801 - used as a context manager
    """np.loadtxt warns on an empty file; treat that as the error it is."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
