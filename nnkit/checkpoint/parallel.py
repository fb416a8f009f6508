"""Reading many arrays on worker threads (copies and checksums release the GIL), so that
the caller can do other work meanwhile: a checkpoint load builds the network while its
arrays arrive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class Reading:
    """Arrays being read on worker threads (or, when small, read by `result()` itself).

    Each worker takes one contiguous run of the arrays, about an equal share of the
    bytes: two tasks instead of one per array (a task costs ~20 us to hand over), and
    each thread reads its part of the file front to back.
    """

    def __init__(self, names: list[str], sizes: list[int], read_one: Callable[[str], np.ndarray],
                 workers: int) -> None:
        self._names, self._read_one = names, read_one
        self._done: dict[str, np.ndarray] = {}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers else None
        pool = self._pool
        self._futures = [pool.submit(self._run, run) for run in _runs(names, sizes, workers)] if pool else []

    def _run(self, names: list[str]) -> None:
        try:
            for name in names:
                if self._stop.is_set():
                    return
                self._done[name] = self._read_one(name)
        except BaseException:
            self._stop.set()  # the other workers stop at their next array
            raise

    def result(self) -> dict[str, np.ndarray]:
        """Wait for every array; the first failure (e.g. a checksum mismatch) is raised."""
        if self._pool is None:
            return {name: self._read_one(name) for name in self._names}
        try:
            for future in self._futures:
                future.result()
        finally:
            self.cancel()
        return {name: self._done[name] for name in self._names}

    def cancel(self) -> None:
        """Stop at the next array and wait for the workers."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _runs(names: list[str], sizes: list[int], count: int) -> list[list[str]]:
    """`names` cut into at most `count` contiguous runs of about equal total size."""
    runs: list[list[str]] = [[] for _ in range(count)]
    total, current, filled = sum(sizes), 0, 0
    for name, size in zip(names, sizes):
        if filled + size / 2 > total * (current + 1) / count and current < count - 1 and runs[current]:
            current += 1
        runs[current].append(name)
        filled += size
    return [run for run in runs if run]
