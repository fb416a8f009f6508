"""Memory for checkpoint arrays: zeros that take memory only when written, load targets
without numpy's hugepage hint, and loads that do not wake the cycle collector."""

from __future__ import annotations

import gc
import math
import mmap
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

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


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a load, then restore it as it was.

    A header of 8,000 entries is ~100,000 new dicts, lists and strings: each 700 of them
    start a collection, and the older generations are walked again and again, though a
    parsed header and a built network hold no garbage cycles (a quarter of the time of a
    2,000-layer load). The pause is process-wide, so it is kept to the load itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
