"""Small arrays in runs: many small payloads written and read as one buffer each.

A network of 2,000 small layers holds 4,000 arrays of a few hundred bytes; a write, a read
and a checksum call apiece made its checkpoint 3-8x slower than safetensors. So consecutive
arrays under `SMALL` bytes form a run of at most `RUN_BYTES`: its bytes (payloads with
their padding and bin32 markers, exactly as the container lays them out) are built in one
buffer and written with one write, or read with one read into one buffer; the markers are
checked all at once with numpy, each payload's checksum on its slice, and every array is a
view into the run's buffer. Larger arrays keep their own write and chunked read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash

from nnkit.checkpoint.decode import ALIGN, PREFIX

SMALL = 64 * 1024
RUN_BYTES = 4 * 1024 * 1024


def cut(lengths: Sequence[int]) -> list[range]:
    """Indices of `lengths` in order, cut into runs: consecutive small payloads up to
    `RUN_BYTES` together, each larger one alone."""
    runs: list[range] = []
    start, total = 0, 0
    for i, length in enumerate(lengths):
        if length >= SMALL or total + length > RUN_BYTES:
            if start < i:
                runs.append(range(start, i))
            start, total = i, 0
            if length >= SMALL:
                runs.append(range(i, i + 1))
                start = i + 1
                continue
        total += length + ALIGN + PREFIX
    if start < len(lengths):
        runs.append(range(start, len(lengths)))
    return runs


def _markers(lengths: np.ndarray) -> np.ndarray:
    """The 5 marker bytes of each payload, (K, 5) uint8."""
    marks = np.empty((len(lengths), PREFIX), np.uint8)
    marks[:, 0] = 0xC6
    for k, shift in enumerate((24, 16, 8, 0)):
        marks[:, k + 1] = (lengths >> shift) & 0xFF
    return marks


def pack(arrays: Sequence[np.ndarray], starts: Sequence[int], lo: int) -> tuple[bytearray, list[str]]:
    """The file's bytes from position `lo` (the end of the previous payload) to the end
    of the last of `arrays` (C-contiguous, little-endian), whose payloads start at
    `starts`; and each payload's XXH3-64 as 16 hex digits."""
    lengths = np.array([a.nbytes for a in arrays], np.int64)
    at = np.array(starts, np.int64) - lo
    buffer = bytearray(b"\xc0") * int(at[-1] + lengths[-1])  # 0xc0 (nil) pads
    view = np.frombuffer(buffer, np.uint8)
    view[(at - PREFIX)[:, None] + np.arange(PREFIX)] = _markers(lengths)
    whole = memoryview(buffer)
    sums = []
    for a, start, length in zip(arrays, at.tolist(), lengths.tolist()):
        payload = whole[start:start + length]
        payload[:] = memoryview(a).cast("B") if a.size else b""  # type: ignore[arg-type]  # C-contiguous (the caller made them so)
        sums.append(format(xxhash.xxh3_64_intdigest(payload), "016x"))
    return buffer, sums


def aligned_buffer(size: int) -> np.ndarray:
    """`size` uint8 bytes starting at a multiple of `ALIGN` in memory."""
    raw = np.empty(size + ALIGN, np.uint8)
    skip = -raw.ctypes.data % ALIGN
    return raw[skip:skip + size]


def markers_match(buffer: np.ndarray, at: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether each payload's marker in `buffer` (payloads at `at`) is intact, (K,) bool."""
    return (buffer[(at - PREFIX)[:, None] + np.arange(PREFIX)] == _markers(lengths)).all(axis=1)


def digests(buffer: np.ndarray, at: Sequence[int], lengths: Sequence[int]) -> list[str]:
    """XXH3-64 of each payload in `buffer`, as 16 hex digits."""
    whole = memoryview(buffer)  # type: ignore[arg-type, unused-ignore]  # an ndarray is a buffer
    return [format(xxhash.xxh3_64_intdigest(whole[s:s + n]), "016x") for s, n in zip(at, lengths)]


def views(buffer: np.ndarray, at: Sequence[int], lengths: Sequence[int], dtypes: Sequence[str],
          shapes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Each payload of `buffer` as an array of its dtype and shape (views, not copies)."""
    return [buffer[start:start + n].view(dtype).reshape(tuple(shape))
            for start, n, dtype, shape in zip(at, lengths, dtypes, shapes)]
