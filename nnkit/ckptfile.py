"""The checkpoint container: one msgpack stream holding a header and aligned array payloads.

Layout (every part is a msgpack object, so any msgpack reader can walk the file):

    "nnkit-ckpt"            fixstr magic (11 bytes)
    {header}                map: format, format_version, ..., "arrays": {name: entry}
    nil nil ...             0xc0 padding so that the first payload's bytes align
    bin32 payload           0xc6, 4-byte big-endian length, the array's bytes
    nil ... bin32 ...       and so on, each payload's first byte at a multiple of 64

An entry's `offset` counts from the payload base: the first multiple of 64 at or after
the end of the header. That keeps the header independent of its own length. Loading
checks every entry against the canonical layout (so payloads cannot overlap or leave
gaps), the dtype allowlist, shapes and checksums.
"""

from __future__ import annotations

import math
import mmap
import os
import tempfile
import threading
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from pydantic import ValidationError

from nnkit.ckptheader import DTYPES, FORMAT, FORMAT_VERSION, MAX_PAYLOAD, Header
from nnkit.errors import CheckpointError, reading

MAGIC = msgpack.packb("nnkit-ckpt")
ALIGN = 64
MAX_HEADER_BYTES = 64 * 1024 * 1024
PARALLEL_BYTES = 8 * 1024 * 1024  # below this, threads cost more than they save
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

    The previous file at `path`, if any, stays intact until the rename succeeds. Checksums
    are computed on worker threads while the payloads are written, and written pages start
    going to disk during the write, so that the final fsync waits for little.
    """
    path = Path(path)
    contiguous = {name: np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")) for name, a in arrays.items()}
    for name, a in contiguous.items():
        if _dtype_str(a) not in DTYPES:
            raise CheckpointError(f"{path}: array {name!r} has dtype {a.dtype}, which checkpoints do not hold")
        if a.nbytes > MAX_PAYLOAD:
            raise CheckpointError(f"{path}: array {name!r} is {a.nbytes} bytes; the cap is {MAX_PAYLOAD}")
    offsets = _layout([a.nbytes for a in contiguous.values()])

    def head(crcs: list[str]) -> bytes:
        index = {
            name: {"dtype": _dtype_str(a), "shape": list(a.shape), "offset": off, "length": a.nbytes, "crc32": crc}
            for (name, a), off, crc in zip(contiguous.items(), offsets, crcs)
        }
        return MAGIC + msgpack.packb({**header, "arrays": index}, use_bin_type=True)

    # Checksums are fixed-width strings, so the header's length is known before they are.
    placeholder = head(["0" * 8] * len(contiguous))
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from None
    # One worker checksums while this thread writes; another pushes written pages to disk.
    pool, flusher = ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)
    try:
        with os.fdopen(fd, "wb") as f:
            crcs = [pool.submit(checksum, a) for a in contiguous.values()]
            writeback = _Writeback(f.fileno(), flusher)
            f.write(b"\0" * len(placeholder))  # the header goes here once the checksums are known
            f.write(b"\xc0" * (_align(len(placeholder)) - len(placeholder)))
            cursor = 0
            for a, off in zip(contiguous.values(), offsets):
                f.write(b"\xc0" * (off - _PREFIX - cursor))
                f.write(b"\xc6" + a.nbytes.to_bytes(4, "big"))
                f.write(memoryview(a).cast("B"))
                cursor = off + a.nbytes
                writeback.wrote(a.nbytes, f)
            final = head([c.result() for c in crcs])
            if len(final) != len(placeholder):
                raise AssertionError("the checkpoint header changed length")
            f.seek(0)
            f.write(final)
            f.flush()
            writeback.finish()
            os.fsync(f.fileno())
        old = _hold(path)
        try:
            os.replace(tmp, path)
        finally:
            _release_later(old)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise
    finally:
        pool.shutdown(wait=True)
        flusher.shutdown(wait=True)
    _fsync_folder(folder)


def _hold(path: Path) -> int | None:
    """An open descriptor of the file about to be replaced (POSIX), so that freeing its
    pages happens when `_release_later` closes it, off the caller's path."""
    if os.name != "posix":
        return None
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _release_later(fd: int | None) -> None:
    if fd is not None:
        threading.Thread(target=os.close, args=(fd,), name="nnkit-release-old-checkpoint", daemon=True).start()


def checksum(data: np.ndarray | memoryview) -> str:
    """CRC-32 of an array's (or a buffer's) bytes as 8 lowercase hex digits; zlib releases
    the GIL, so checksums run on several cores at once."""
    return format(zlib.crc32(memoryview(data).cast("B")), "08x")


class _Writeback:
    """Starts flushing written pages to disk (fdatasync on a worker) every `every` bytes,
    so that disk writes overlap the copying of later payloads into the page cache."""

    def __init__(self, fd: int, pool: ThreadPoolExecutor, every: int = 32 * 1024 * 1024) -> None:
        self.fd, self.pool, self.every = fd, pool, every
        self.pending = 0
        self.running: Any = None

    def wrote(self, n: int, f: Any) -> None:
        self.pending += n
        if self.pending >= self.every and (self.running is None or self.running.done()):
            f.flush()
            self.running = self.pool.submit(os.fdatasync, self.fd)
            self.pending = 0

    def finish(self) -> None:
        if self.running is not None:
            self.running.result()


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed in a checkpoint")


class CheckpointFile:
    """An opened checkpoint: its validated header, and its arrays read on demand.

    Arrays are views of a memory map of the file, so reading a few of them touches only
    their bytes. With `writable=True` the map is copy-on-write: arrays can be written
    (the file never changes) and a page is copied only when first written.
    """

    def __init__(self, path: str | Path, *, writable: bool = False) -> None:
        self.path = Path(path)
        with reading(self.path, CheckpointError, "checkpoint"), open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.header, self.data_start = _read_header(f, self.path)
            _check_index(self.header, self.path, size - self.data_start)
            access = mmap.ACCESS_COPY if writable else mmap.ACCESS_READ
            self._map: Any = mmap.mmap(f.fileno(), 0, access=access)
        self.index = self.header.arrays

    def close(self) -> None:
        """Release the memory map once no array still uses it."""
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

        `verify` checks the payload's CRC-32, which reads every byte of it.
        """
        entry = self.index[name]
        start = self.data_start + entry.offset
        if self._map[start - _PREFIX:start] != b"\xc6" + entry.length.to_bytes(4, "big"):
            raise CheckpointError(f"{self.path}: array {name!r}: payload marker is damaged")
        view = memoryview(self._map)[start:start + entry.length]
        if verify and checksum(view) != entry.crc32:
            view.release()
            raise CheckpointError(f"{self.path}: array {name!r}: checksum mismatch (the file is damaged)")
        return np.frombuffer(view, dtype=np.dtype(entry.dtype)).reshape(entry.shape)

    def arrays(self, names: list[str], *, verify: bool = True,
               into: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Several arrays at once, checksums verified on all cores (zlib releases the GIL).

        With `into`, each array is copied into `into[name]` right after its check, while
        its bytes are still in cache; the copies are returned.
        """
        def one(name: str) -> np.ndarray:
            array = self.array(name, verify=verify)
            if into is None:
                return array
            into[name][...] = array
            return into[name]

        total = sum(self.index[n].length for n in names)
        if total < PARALLEL_BYTES or len(names) < 2:
            return {name: one(name) for name in names}
        with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1, 8)) as pool:
            return dict(zip(names, pool.map(one, names)))


def _read_header(f: Any, path: Path) -> tuple[Header, int]:
    if f.read(len(MAGIC)) != MAGIC:
        raise CheckpointError(f"{path}: not an nnkit checkpoint (wrong magic)")
    unpacker = msgpack.Unpacker(
        f, raw=False, strict_map_key=True, ext_hook=_refuse_ext, max_buffer_size=MAX_HEADER_BYTES,
        use_list=True, timestamp=0,
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
    try:
        header = Header.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{path}: invalid header at {where}: {first['msg']}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: invalid header: nested too deeply") from None
    return header, _align(len(MAGIC) + unpacker.tell())


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
