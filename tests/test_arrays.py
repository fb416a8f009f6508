"""Array helpers: zeros that take memory only when written."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nnkit.checkpoint.memory import LAZY_BYTES, lazy_zeros


@pytest.mark.parametrize("shape", [(3, 4), (LAZY_BYTES // 8 + 1,), (512, 1024)])
def test_lazy_zeros_are_writable_zeros_of_the_shape_and_dtype(shape: tuple[int, ...]) -> None:
    z = lazy_zeros(shape, "float64")
    assert z.shape == shape and z.dtype == np.float64 and z.flags.writeable and z.flags.c_contiguous
    assert not z.any()
    z[...] = 2.0
    assert (z == 2.0).all()


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_lazy_zeros_take_memory_only_when_written() -> None:
    recycled = np.ones(64 * 2**20, np.uint8)  # memory malloc may hand out again, already touched
    del recycled
    before = _resident_bytes()
    z = lazy_zeros((64 * 2**20,), np.uint8)
    assert _resident_bytes() - before < 8 * 2**20
    z[: 32 * 2**20] = 1
    assert _resident_bytes() - before >= 30 * 2**20
