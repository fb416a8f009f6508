"""Payload checksums. Format 2 uses XXH3-64: it runs at memory speed (~30 GB/s on one
core, where zlib's CRC-32 manages ~4 GB/s), so a load that checks every byte still beats a
loader that checks none. Format 1 files carry CRC-32s, which are still checked."""

from __future__ import annotations

import zlib

import numpy as np
import xxhash

from nnkit.checkpoint.header import ArrayEntry


def raw_bytes(data: np.ndarray | memoryview) -> memoryview:
    """The bytes of a C-contiguous array (empty ones included) or of a buffer."""
    if isinstance(data, np.ndarray):
        return memoryview(data.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # ndarray is a buffer
    return data if data.format == "B" else data.cast("B")


def checksum(data: np.ndarray | memoryview) -> str:
    """XXH3-64 of an array's (or a buffer's) bytes as 16 lowercase hex digits. xxhash
    releases the GIL, so checksums run on several cores at once."""
    return format(xxhash.xxh3_64_intdigest(raw_bytes(data)), "016x")


def matches(entry: ArrayEntry, payload: memoryview) -> bool:
    """Whether a whole payload has the checksum its entry names (one call, for small arrays)."""
    if entry.xxh3 is not None:
        return checksum(payload) == entry.xxh3
    return format(zlib.crc32(payload), "08x") == entry.crc32


class RunningChecksum:
    """The running checksum an entry names (`xxh3`, or `crc32` in format 1 files), fed
    piece by piece."""

    def __init__(self, entry: ArrayEntry) -> None:
        self.expected = entry.xxh3 or entry.crc32 or ""
        self.xxh3 = xxhash.xxh3_64() if entry.xxh3 is not None else None
        self.crc = 0

    def update(self, piece: memoryview) -> None:
        if self.xxh3 is not None:
            self.xxh3.update(piece)
        else:
            self.crc = zlib.crc32(piece, self.crc)

    def matches(self) -> bool:
        got = format(self.xxh3.intdigest(), "016x") if self.xxh3 is not None else format(self.crc, "08x")
        return got == self.expected
