"""Reading many arrays on worker threads (copies and checksums release the GIL), so that
the caller can do other work meanwhile: a checkpoint load builds the network while its
arrays arrive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")


class Reading:
    """Arrays being read on worker threads (or, when small, read by `result()` itself).

    The arrays come in units (an array, or a run of small ones read at once), each read by
    `read_unit`. Each worker takes one contiguous stretch of the units, about an equal
    share of the bytes: two tasks instead of one per unit (a task costs ~20 us to hand
    over), and each thread reads its part of the file front to back.
    """

    def __init__(self, units: list[tuple[str, ...]], sizes: list[int],
                 read_unit: Callable[[tuple[str, ...]], dict[str, np.ndarray]], workers: int) -> None:
        self._units, self._read_unit = units, read_unit
        self._done: dict[str, np.ndarray] = {}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers else None
        pool = self._pool
        self._futures = [pool.submit(self._run, run) for run in _runs(units, sizes, workers)] if pool else []

    def _run(self, units: list[tuple[str, ...]]) -> None:
        try:
            for unit in units:
                if self._stop.is_set():
                    return
                self._done.update(self._read_unit(unit))
        except BaseException:
            self._stop.set()  # the other workers stop at their next unit
            raise

    def result(self) -> dict[str, np.ndarray]:
        """Wait for every array; the first failure (e.g. a checksum mismatch) is raised."""
        if self._pool is None:
            for unit in self._units:
                self._done.update(self._read_unit(unit))
        else:
            try:
                for future in self._futures:
                    future.result()
            finally:
                self.cancel()
        return {name: self._done[name] for unit in self._units for name in unit}

    def cancel(self) -> None:
        """Stop at the next array and wait for the workers."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _runs(names: list[T], sizes: list[int], count: int) -> list[list[T]]:
    """`names` cut into at most `count` contiguous runs of about equal total size."""
    runs: list[list[T]] = [[] for _ in range(count)]
    total, current, filled = sum(sizes), 0, 0
    for name, size in zip(names, sizes):
        if filled + size / 2 > total * (current + 1) / count and current < count - 1 and runs[current]:
            current += 1
        runs[current].append(name)
        filled += size
    return [run for run in runs if run]
