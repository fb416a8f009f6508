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

import math
import mmap
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from pydantic import ValidationError

from nnkit.atomic import replacing
from nnkit.checkpoint.checksums import RunningChecksum, checksum, matches, raw_bytes
from nnkit.checkpoint.header import DTYPES, FORMAT, FORMAT_VERSION, MAX_ARRAYS, MAX_PAYLOAD, ArrayEntry, Header
from nnkit.checkpoint.parallel import Reading
from nnkit.errors import CheckpointError, reading
from nnkit.modelfile.parse import unique_keys
from nnkit.paths import open_regular

MAGIC = msgpack.packb("nnkit-ckpt")
ALIGN = 64
MAX_HEADER_BYTES = 64 * 1024 * 1024
PARALLEL_BYTES = 8 * 1024 * 1024  # below this, threads cost more than they save
CHUNK = 1024 * 1024  # copied, then checksummed while still in cache
_PREFIX = 5  # bin32 marker and length


def _dtype_str(array: np.ndarray) -> str:
    return array.dtype.newbyteorder("<").str if array.dtype.byteorder == ">" else array.dtype.str


def _align(position: int) -> int:
    return -(-position // ALIGN) * ALIGN


def _layout(lengths: list[int]) -> list[int]:
    """Payload offsets (from the payload base) for the given lengths, in order."""
    offsets, cursor = [], 0
    for length in lengths:
        start = _align(cursor + _PREFIX)
        offsets.append(start)
        cursor = start + length
    return offsets


def write(path: str | Path, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write `header` plus `arrays` atomically: a temp file, fsync, rename, fsync the folder.

    The previous file at `path`, if any, stays intact until the rename succeeds (see
    nnkit/atomic.py). Checksums are computed on a worker thread while the payloads are
    written, and written pages start going to disk during the write, so that the final
    fsync waits for little.
    """
    path = Path(path)
    contiguous = {name: np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")) for name, a in arrays.items()}
    offsets = _layout([a.nbytes for a in contiguous.values()])
    index: dict[str, dict[str, Any]] = {}  # built once; the checksums are filled in when known
    for (name, a), off in zip(contiguous.items(), offsets):
        dtype = _dtype_str(a)
        if dtype not in DTYPES:
            raise CheckpointError(f"{path}: array {name!r} has dtype {a.dtype}, which checkpoints do not hold")
        if a.nbytes > MAX_PAYLOAD:
            raise CheckpointError(f"{path}: array {name!r} is {a.nbytes} bytes; the cap is {MAX_PAYLOAD}")
        index[name] = {"dtype": dtype, "shape": list(a.shape), "offset": off, "length": a.nbytes, "xxh3": "0" * 16}

    def head() -> bytes:
        # The checksums written are this version's, whatever version `header` came from.
        stamped = {**header, "format": FORMAT, "format_version": FORMAT_VERSION, "arrays": index}
        packed = msgpack.packb(stamped, use_bin_type=True)
        return MAGIC + packed + msgpack.packb(checksum(memoryview(packed)))

    # Checksums are fixed-width strings, so the header's length is known before they are.
    placeholder = head()
    pool = ThreadPoolExecutor(max_workers=1)  # checksums while this thread writes
    try:
        with replacing(path) as (f, writeback):
            # One task for all the checksums: a future per array cost more than hashing a
            # small one (4,000 arrays: ~120 ms of futures and locks).
            sums = pool.submit(lambda: [checksum(a) for a in contiguous.values()])
            f.write(b"\0" * len(placeholder))  # the header goes here once the checksums are known
            f.write(b"\xc0" * (_align(len(placeholder)) - len(placeholder)))
            cursor = 0
            for a, off in zip(contiguous.values(), offsets):
                f.write(b"\xc0" * (off - _PREFIX - cursor) + b"\xc6" + a.nbytes.to_bytes(4, "big"))  # pad, marker
                f.write(raw_bytes(a))
                cursor = off + a.nbytes
                writeback.wrote(a.nbytes)
            for entry, digest in zip(index.values(), sums.result()):
                entry["xxh3"] = digest
            final = head()
            if len(final) != len(placeholder):
                raise AssertionError("the checkpoint header changed length")
            f.seek(0)
            f.write(final)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        pool.shutdown(wait=True)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed in a checkpoint")


def _plain(value: Any) -> Any:
    # msgpack decodes its timestamp extension (type -1) itself, past ext_hook.
    if isinstance(value, msgpack.Timestamp):
        raise ValueError("msgpack extension type -1 (timestamp) is not allowed in a checkpoint")
    return value


def _plain_map(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A map without repeated keys (msgpack would keep the last one silently) or extensions."""
    result = unique_keys(pairs)
    if msgpack.Timestamp in map(type, result.values()):  # map(type) runs in C: headers hold ~10 maps per array
        _plain(msgpack.Timestamp(0))
    return result


def _plain_list(items: list[Any]) -> list[Any]:
    if msgpack.Timestamp in map(type, items):
        _plain(msgpack.Timestamp(0))
    return items


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
                self.header, self.data_start = _read_header(self._file, self.path)
                _check_index(self.header, self.path, size - self.data_start)
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
        return [n for n in self.index if n.startswith(prefix)]

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
        marker = bytearray(_PREFIX)
        dest = raw_bytes(target)
        if entry.length <= CHUNK:  # one read for the marker and the payload: small arrays are many
            self._read_exactly_into([memoryview(marker), dest], start - _PREFIX)
            self._check_marker(name, marker)
            if verify and not matches(entry, dest):
                raise self._mismatch(name)
            return target
        running = RunningChecksum(entry) if verify else None
        self._read_exactly(memoryview(marker), start - _PREFIX)
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

    def arrays(self, names: list[str], *, verify: bool = True,
               into: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Several arrays at once (see `read`, which this waits for).

        Without `into`: views of the file (see `array`). With `into`: each array copied into
        `into[name]` (see `copy_into`); the targets are returned.
        """
        return self.read(names, verify=verify, into=into).result()

    def read(self, names: list[str], *, verify: bool = True,
             into: dict[str, np.ndarray] | None = None) -> Reading:
        """Start reading `names` on worker threads, spread over the cores (copies and
        xxhash release the GIL), so that the caller can do other work meanwhile."""
        def one(name: str) -> np.ndarray:
            if into is None:
                return self.array(name, verify=verify)
            return self.copy_into(name, into[name], verify=verify)

        sizes = [self.index[n].length for n in names]
        workers = 0 if sum(sizes) < PARALLEL_BYTES or len(names) < 2 else min(len(names), os.cpu_count() or 1, 8)
        return Reading(names, sizes, one, workers)

    def _payload(self, name: str) -> memoryview:
        entry = self.index[name]
        start = self.data_start + entry.offset
        self._check_marker(name, self._map[start - _PREFIX:start])
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


def _read_header(f: Any, path: Path) -> tuple[Header, int]:
    if f.read(len(MAGIC)) != MAGIC:
        raise CheckpointError(f"{path}: not an nnkit checkpoint (wrong magic)")
    unpacker = msgpack.Unpacker(
        f, raw=False, strict_map_key=True, ext_hook=_refuse_ext, max_buffer_size=MAX_HEADER_BYTES,
        use_list=True, timestamp=0, object_pairs_hook=_plain_map, list_hook=_plain_list,
    )
    try:
        data = unpacker.unpack()
    except msgpack.OutOfData:
        raise CheckpointError(f"{path}: truncated header") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        reason = str(exc) or "nested too deeply or malformed"
        raise CheckpointError(f"{path}: unreadable header: {reason}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the header is not a map")
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nnkit checkpoint (format {str(data.get('format'))[:40]!r})")
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this nnkit reads ({FORMAT_VERSION}); upgrade nnkit")
    arrays = data.get("arrays")
    if isinstance(arrays, dict) and len(arrays) > MAX_ARRAYS:  # before any per-entry work
        raise CheckpointError(f"{path}: invalid header: {len(arrays):,} arrays; the cap is {MAX_ARRAYS:,}")
    if isinstance(version, int) and not isinstance(version, bool) and version >= 2:  # the header's checksum follows
        _check_header_checksum(f, unpacker, path)
    try:
        header = Header.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = " at " + ".".join(str(p) for p in first["loc"]) if first["loc"] else ""
        reason = first["msg"].removeprefix("Value error, ")
        raise CheckpointError(f"{path}: invalid header{where}: {reason}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: invalid header: nested too deeply") from None
    return header, _align(len(MAGIC) + unpacker.tell())


def _check_header_checksum(f: Any, unpacker: msgpack.Unpacker, path: Path) -> None:
    """The object after the header map must be the XXH3-64 (16 hex digits) of its bytes."""
    length = unpacker.tell()
    try:
        stored = unpacker.unpack()
    except msgpack.OutOfData:
        raise CheckpointError(f"{path}: truncated header") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"{path}: unreadable header checksum: {exc}") from None
    f.seek(len(MAGIC))
    if not isinstance(stored, str) or stored != checksum(memoryview(f.read(length))):
        raise CheckpointError(f"{path}: header checksum mismatch (the file is damaged)")


def _check_index(header: Header, path: Path, available: int) -> None:
    """Every payload must sit exactly where the canonical layout puts it, and fill the file."""
    index = header.arrays
    lengths = []
    for name, entry in index.items():
        if entry.length != math.prod(entry.shape) * np.dtype(entry.dtype).itemsize:
            raise CheckpointError(
                f"{path}: array {name!r}: payload length {entry.length} does not match {entry.dtype} {entry.shape}")
        lengths.append(entry.length)
    layout = _layout(lengths)
    for (name, entry), expected in zip(index.items(), layout):
        if entry.offset != expected:
            raise CheckpointError(f"{path}: array {name!r}: offset {entry.offset} breaks the layout")
    end = layout[-1] + lengths[-1] if lengths else 0
    if end != available:
        problem = "truncated" if end > available else "has trailing bytes"
        raise CheckpointError(f"{path}: file {problem} ({available} payload bytes after the header, {end} expected)")
