"""The checkpoint container: one msgpack stream holding a header and aligned array payloads.

Layout (every part is a msgpack object, so any msgpack reader can walk the file):

    "nnkit-ckpt"            fixstr magic (11 bytes)
    {header}                map: format, format_version, ..., "arrays": {name: entry}
    "0123456789abcdef"      fixstr: XXH3-64 of the header map's bytes (format 2 on)
    nil nil ...             0xc0 padding so that the first payload's bytes align
    bin32 payload           0xc6, 4-byte big-endian length, the array's bytes
    nil ... bin32 ...       and so on, each payload's first byte at a multiple of 64

An entry's `offset` counts from the payload base: the first multiple of 64 at or after
the end of the header's checksum. That keeps the header independent of its own length. Loading
checks every entry against the canonical layout (so payloads cannot overlap or leave
gaps), the dtype allowlist, shapes and checksums (nnkit/checksums.py).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from nnkit.atomic import replacing
from nnkit.checkpoint.checksums import RunningChecksum, checksum, matches, raw_bytes
from nnkit.checkpoint.decode import ALIGN, MAGIC, PREFIX, align, check_index, layout, read_header
from nnkit.checkpoint.header import DTYPES, FORMAT, FORMAT_VERSION, MAX_PAYLOAD, ArrayEntry
from nnkit.checkpoint.memory import empty_small_pages
from nnkit.checkpoint.parallel import Reading
from nnkit.checkpoint.runs import SMALL, aligned_buffer, cut, digests, markers_match, pack, views
from nnkit.errors import CheckpointError, reading
from nnkit.paths import open_regular

PARALLEL_BYTES = 8 * 1024 * 1024  # below this, threads cost more than they save
CHUNK = 1024 * 1024  # copied, then checksummed while still in cache


def _dtype_str(array: np.ndarray) -> str:
    return array.dtype.newbyteorder("<").str if array.dtype.byteorder == ">" else array.dtype.str


def write(path: str | Path, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write `header` plus `arrays` atomically: a temp file, fsync, rename, fsync the folder.

    The previous file at `path`, if any, stays intact until the rename succeeds (see
    nnkit/atomic.py). Small arrays go out in runs, one write each (nnkit/checkpoint/runs.py);
    large ones are checksummed on a worker thread while they are written, and written pages
    start going to disk during the write, so that the final fsync waits for little.
    """
    path = Path(path)
    contiguous = [np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C") for a in arrays.values()]  # 0-d stays 0-d
    lengths = [a.nbytes for a in contiguous]
    offsets = layout(lengths)
    index = _index(path, list(arrays), contiguous, offsets)  # built once; the checksums are filled in when known

    def head() -> bytes:
        # The checksums written are this version's, whatever version `header` came from.
        stamped = {**header, "format": FORMAT, "format_version": FORMAT_VERSION, "arrays": index}
        packed = msgpack.packb(stamped, use_bin_type=True)
        return MAGIC + packed + msgpack.packb(checksum(memoryview(packed)))

    # Checksums are fixed-width strings, so the header's length is known before they are.
    placeholder = head()
    runs = cut(lengths)
    large = [i for i, length in enumerate(lengths) if length >= SMALL]  # alone in their runs
    sums: list[str] = [""] * len(contiguous)
    pool = ThreadPoolExecutor(max_workers=1) if large else None  # large arrays' checksums while this thread writes
    try:
        with replacing(path) as (f, writeback):
            # One task for all of them: a future per array costs more than hashing a small one.
            hashing = pool.submit(lambda: [checksum(contiguous[i]) for i in large]) if pool else None
            f.write(b"\0" * len(placeholder))  # the header goes here once the checksums are known
            f.write(b"\xc0" * (align(len(placeholder)) - len(placeholder)))
            cursor = 0
            for run in runs:
                if lengths[run.start] >= SMALL:  # a large array, alone
                    a, off = contiguous[run.start], offsets[run.start]
                    f.write(b"\xc0" * (off - PREFIX - cursor) + b"\xc6" + a.nbytes.to_bytes(4, "big"))  # pad, marker
                    f.write(raw_bytes(a))
                else:
                    buffer, sums[run.start:run.stop] = pack(contiguous[run.start:run.stop],
                                                             offsets[run.start:run.stop], cursor)
                    f.write(buffer)
                end = offsets[run[-1]] + lengths[run[-1]]
                writeback.wrote(end - cursor)
                cursor = end
            for i, digest in zip(large, hashing.result() if hashing is not None else []):
                sums[i] = digest
            for entry, digest in zip(index.values(), sums):
                entry["xxh3"] = digest
            final = head()
            if len(final) != len(placeholder):
                raise AssertionError("the checkpoint header changed length")
            f.seek(0)
            f.write(final)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _index(path: Path, names: list[str], arrays: list[np.ndarray], offsets: list[int]) -> dict[str, dict[str, Any]]:
    """The header's entry of each array, its checksum still a placeholder."""
    dtypes: dict[np.dtype, str] = {}
    index = {}
    for name, a, off in zip(names, arrays, offsets):
        dtype = dtypes.get(a.dtype) or dtypes.setdefault(a.dtype, _dtype_str(a))
        if dtype not in DTYPES:
            raise CheckpointError(f"{path}: array {name!r} has dtype {a.dtype}, which checkpoints do not hold")
        if a.nbytes > MAX_PAYLOAD:
            raise CheckpointError(f"{path}: array {name!r} is {a.nbytes} bytes; the cap is {MAX_PAYLOAD}")
        index[name] = {"dtype": dtype, "shape": list(a.shape), "offset": off, "length": a.nbytes, "xxh3": "0" * 16}
    return index


class CheckpointFile:
    """An opened checkpoint: its validated header, and its arrays read on demand.

    It holds the file open until `close()` (or the end of a `with` block). Arrays are
    views of a memory map of the file, so reading a few of them touches only their
    bytes. With `writable=True` the map is copy-on-write: arrays can be written (the
    file never changes) and a page is copied only when first written.
    """

    def __init__(self, path: str | Path, *, writable: bool = False) -> None:
        self.path = Path(path)
        self._file = open_regular(self.path, CheckpointError, "checkpoint")
        with reading(self.path, CheckpointError, "checkpoint"):
            try:
                size = os.fstat(self._file.fileno()).st_size
                self.header, self.data_start = read_header(self._file, self.path)
                check_index(self.header, self.path, size - self.data_start)
                access = mmap.ACCESS_COPY if writable else mmap.ACCESS_READ
                self._map: Any = mmap.mmap(self._file.fileno(), 0, access=access)
            except BaseException:
                self._file.close()
                raise
        self.index = self.header.arrays

    def close(self) -> None:
        """Close the file, and release the memory map once no array still uses it."""
        self._file.close()
        try:
            self._map.close()
        except BufferError:  # arrays still view the map; it is released with the last of them
            pass

    def __enter__(self) -> CheckpointFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names(self, prefix: str = "") -> list[str]:
        """The stored array names that start with `prefix`, in file order."""
        if prefix.endswith("/") and prefix.count("/") == 1:  # a section: grouped once, asked often
            return list(self._sections.get(prefix[:-1], ()))
        return [n for n in self.index if n.startswith(prefix)]

    @cached_property
    def _sections(self) -> dict[str, list[str]]:
        """Array names by section (what precedes the first "/"), in file order."""
        sections: dict[str, list[str]] = {}
        for name in self.index:
            sections.setdefault(name.partition("/")[0], []).append(name)
        return sections

    def array(self, name: str, *, verify: bool = True) -> np.ndarray:
        """The named array, a view of the file (read-only unless opened `writable`).

        `verify` checks the payload's checksum, which reads every byte of it.
        """
        entry, view = self.index[name], self._payload(name)
        if verify:
            try:
                self._check(name, entry, view)
            except CheckpointError:
                view.release()  # so that the map can close
                raise
        return np.frombuffer(view, dtype=np.dtype(entry.dtype)).reshape(entry.shape)

    def copy_into(self, name: str, target: np.ndarray, *, verify: bool = True) -> np.ndarray:
        """Copy the named array into `target` (same shape and dtype), a chunk at a time,
        each chunk checksummed right after it is read, while it is still in cache. On a
        checksum mismatch `target` holds the damaged bytes: copy into fresh arrays when
        the old contents matter (see Checkpoint.load_into).

        The bytes are read with preadv, not through the map: that spares the faults on
        the file's pages and the cost of unmapping them afterwards.
        """
        entry = self.index[name]
        if target.shape != tuple(entry.shape) or target.dtype != np.dtype(entry.dtype):
            raise ValueError(f"{name}: target is {target.dtype} {target.shape}, not {entry.dtype} {entry.shape}")
        if not (target.flags.c_contiguous and hasattr(os, "preadv")):
            target[...] = self.array(name, verify=verify)
            return target
        start = self.data_start + entry.offset
        marker = bytearray(PREFIX)
        dest = raw_bytes(target)
        if entry.length <= CHUNK:  # one read for the marker and the payload: small arrays are many
            self._read_exactly_into([memoryview(marker), dest], start - PREFIX)
            self._check_marker(name, marker)
            if verify and not matches(entry, dest):
                raise self._mismatch(name)
            return target
        running = RunningChecksum(entry) if verify else None
        self._read_exactly(memoryview(marker), start - PREFIX)
        self._check_marker(name, marker)
        for lo in range(0, entry.length, CHUNK):
            piece = dest[lo:lo + CHUNK]
            self._read_exactly(piece, start + lo)
            if running is not None:
                running.update(piece)
        if running is not None and not running.matches():
            raise self._mismatch(name)
        return target

    def _read_exactly_into(self, buffers: list[memoryview], position: int) -> None:
        """Fill `buffers`, which lie back to back in the file from `position`."""
        try:
            got = os.preadv(self._file.fileno(), buffers, position)
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        for buffer in buffers:  # a short read (rare: a signal, or a file that shrank) finishes one by one
            if got >= len(buffer):
                got -= len(buffer)
            else:
                self._read_exactly(buffer[got:], position + got)
                got = 0
            position += len(buffer)

    def _read_exactly(self, into: memoryview, position: int) -> None:
        done = 0
        while done < len(into):
            try:
                got = os.preadv(self._file.fileno(), [into[done:]], position + done)
            except OSError as exc:
                raise CheckpointError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
            if got == 0:
                raise CheckpointError(f"{self.path}: the file shrank while being read")
            done += got

    def arrays(self, names: list[str], *, verify: bool = True, copy: bool = False) -> dict[str, np.ndarray]:
        """Several arrays at once (see `read`, which this waits for)."""
        return self.read(names, verify=verify, copy=copy).result()

    def read(self, names: list[str], *, verify: bool = True, copy: bool = False) -> Reading:
        """Start reading `names` on worker threads, spread over the cores (copies and
        xxhash release the GIL), so that the caller can do other work meanwhile.

        copy=False: views of the file (see `array`). copy=True: fresh arrays; runs of small
        arrays next to each other in the file are read at once into one buffer, which
        their arrays then view (see nnkit/checkpoint/runs.py); larger ones one by one.
        """
        if copy:
            units = self._units(names)
            read_unit: Callable[[tuple[str, ...]], dict[str, np.ndarray]] = partial(self._read_copies, verify=verify)
        else:
            units = [(name,) for name in names]
            read_unit = lambda unit: {unit[0]: self.array(unit[0], verify=verify)}  # noqa: E731
        sizes = [sum(self.index[n].length for n in unit) for unit in units]
        workers = 0 if sum(sizes) < PARALLEL_BYTES or len(units) < 2 else min(len(units), os.cpu_count() or 1, 8)
        return Reading(units, sizes, read_unit, workers)

    def _units(self, names: list[str]) -> list[tuple[str, ...]]:
        """`names` in runs of small arrays that follow each other in the file, each larger
        array alone."""
        position = self._positions
        units: list[tuple[str, ...]] = []
        pieces = [[names[0]]] if names else []
        for before, name in zip(names, names[1:]):
            if position[name] == position[before] + 1:
                pieces[-1].append(name)
            else:
                pieces.append([name])
        for piece in pieces:
            units += [tuple(piece[i] for i in run) for run in cut([self.index[n].length for n in piece])]
        return units

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.index)}

    def _read_copies(self, unit: tuple[str, ...], *, verify: bool) -> dict[str, np.ndarray]:
        """The arrays of one unit, copied out of the file and checked (see `read`)."""
        first, last = self.index[unit[0]], self.index[unit[-1]]
        if len(unit) == 1 and first.length >= SMALL:
            target = empty_small_pages(tuple(first.shape), first.dtype)
            return {unit[0]: self.copy_into(unit[0], target, verify=verify)}
        entries = [self.index[n] for n in unit]
        lo = first.offset - ALIGN  # the run's first marker lies in the 64 bytes before its payload
        buffer = aligned_buffer(last.offset + last.length - lo)
        self._read_exactly(memoryview(buffer), self.data_start + lo)  # type: ignore[arg-type]  # a buffer
        at = np.array([e.offset for e in entries], np.int64) - lo
        lengths = np.array([e.length for e in entries], np.int64)
        intact = markers_match(buffer, at, lengths)
        if not intact.all():
            raise CheckpointError(f"{self.path}: array {unit[int(np.argmin(intact))]!r}: payload marker is damaged")
        starts, sizes = at.tolist(), lengths.tolist()
        if verify:
            if all(e.xxh3 is not None for e in entries):
                for name, entry, digest in zip(unit, entries, digests(buffer, starts, sizes)):
                    if digest != entry.xxh3:
                        raise self._mismatch(name)
            else:  # format 1: CRC-32s
                whole = memoryview(buffer)  # type: ignore[arg-type]
                for name, entry, start, size in zip(unit, entries, starts, sizes):
                    if not matches(entry, whole[start:start + size]):
                        raise self._mismatch(name)
        return dict(zip(unit, views(buffer, starts, sizes, [e.dtype for e in entries], [e.shape for e in entries])))

    def _payload(self, name: str) -> memoryview:
        entry = self.index[name]
        start = self.data_start + entry.offset
        self._check_marker(name, self._map[start - PREFIX:start])
        return memoryview(self._map)[start:start + entry.length]

    def _check_marker(self, name: str, marker: bytes | bytearray) -> None:
        """The 5 bytes before a payload: msgpack's bin32 code and the payload's length."""
        if marker != b"\xc6" + self.index[name].length.to_bytes(4, "big"):
            raise CheckpointError(f"{self.path}: array {name!r}: payload marker is damaged")

    def _check(self, name: str, entry: ArrayEntry, view: memoryview) -> None:
        if not matches(entry, view):
            raise self._mismatch(name)

    def _mismatch(self, name: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: array {name!r}: checksum mismatch (the file is damaged)")
