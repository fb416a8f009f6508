"""Reading user arrays (.npy, .csv) for `nnkit predict` and file datasets (never unpickles),
and zeros that cost nothing until written."""

from __future__ import annotations

import math
import mmap
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


LAZY_BYTES = 1024 * 1024


def lazy_zeros(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """A writable array of zeros whose memory is taken page by page as it is first written.

    np.zeros gets that only when malloc happens to take fresh pages from the system;
    memory recycled inside the process is cleared up front, byte by byte. Arrays of
    `LAZY_BYTES` or more are therefore backed by their own anonymous map (always zero
    pages, released with the array); smaller ones come from np.zeros.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < LAZY_BYTES:
        return np.zeros(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


def empty_small_pages(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """np.empty without numpy's madvise(MADV_HUGEPAGE) on large arrays.

    A checkpoint load writes every byte of its arrays right away; on Linux's default
    transparent-hugepage setting (defrag=madvise) the hint makes those first writes stop
    for memory compaction, which made copied loads 1.5-2x slower and erratic (measured).
    The switch is numpy's own and process-wide; it is off only for this one allocation
    (private API: where it is missing, plain np.empty).
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    switch = getattr(multiarray, "_set_madvise_hugepage", None)
    if switch is None:
        return np.empty(shape, dtype)
    previous = switch(False)
    try:
        return np.empty(shape, dtype)
    finally:
        switch(previous)


class warnings_as_errors:  # noqa: N801 - used as a context manager
    """np.loadtxt warns on an empty file; treat that as the error it is."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
