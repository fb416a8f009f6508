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

import mmap
import os
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from nnkit.errors import CheckpointError

MAGIC = msgpack.packb("nnkit-ckpt")
FORMAT = "nnkit.checkpoint"
FORMAT_VERSION = 1
ALIGN = 64
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 100_000
MAX_RANK = 32
MAX_PAYLOAD = 2**32 - 1  # msgpack bin32
DTYPES = {  # the only dtypes a checkpoint may hold, little-endian
    "<f2", "<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1",
}
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

    The previous file at `path`, if any, stays intact until the rename succeeds.
    """
    path = Path(path)
    contiguous = {name: np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")) for name, a in arrays.items()}
    for name, a in contiguous.items():
        if _dtype_str(a) not in DTYPES:
            raise CheckpointError(f"{path}: array {name!r} has dtype {a.dtype}, which checkpoints do not hold")
        if a.nbytes > MAX_PAYLOAD:
            raise CheckpointError(f"{path}: array {name!r} is {a.nbytes} bytes; the cap is {MAX_PAYLOAD}")
    offsets = _layout([a.nbytes for a in contiguous.values()])
    index = {
        name: {"dtype": _dtype_str(a), "shape": list(a.shape), "offset": off, "length": a.nbytes,
               "crc32": zlib.crc32(memoryview(a).cast("B"))}
        for (name, a), off in zip(contiguous.items(), offsets)
    }
    head = MAGIC + msgpack.packb({**header, "arrays": index}, use_bin_type=True)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(b"\xc0" * (_align(len(head)) - len(head)))
            cursor = 0
            for a, off in zip(contiguous.values(), offsets):
                f.write(b"\xc0" * (off - _PREFIX - cursor))
                f.write(b"\xc6" + a.nbytes.to_bytes(4, "big"))
                f.write(memoryview(a).cast("B"))
                cursor = off + a.nbytes
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CheckpointError(f"{path}: cannot write: {exc.strerror or exc}") from None
        raise
    _fsync_folder(folder)


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
    """An opened checkpoint: its header, and its arrays read on demand from a memory map."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self.header, self.data_start = _read_header(f, self.path)
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            raise CheckpointError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise CheckpointError(f"{self.path}: is a folder, not a checkpoint") from None
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        self.index = _check_index(self.header.get("arrays"), self.path, size - self.data_start)

    def close(self) -> None:
        """Release the memory map; arrays returned by `array` must not be used afterwards."""
        if isinstance(self._map, mmap.mmap):
            try:
                self._map.close()
            except BufferError:  # views still alive (e.g. in a traceback); freed with them
                pass

    def __enter__(self) -> CheckpointFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names(self) -> list[str]:
        return list(self.index)

    def array(self, name: str, verify: bool = True) -> np.ndarray:
        """The named array as a read-only view of the file (copy before writing to it)."""
        entry = self.index[name]
        start = self.data_start + entry["offset"]
        marker = self._map[start - _PREFIX:start]
        if marker != b"\xc6" + entry["length"].to_bytes(4, "big"):
            raise CheckpointError(f"{self.path}: array {name!r}: payload marker is damaged")
        view = memoryview(self._map)[start:start + entry["length"]]
        if verify and zlib.crc32(view) != entry["crc32"]:
            raise CheckpointError(f"{self.path}: array {name!r}: checksum mismatch (the file is damaged)")
        return np.frombuffer(view, dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])


def _read_header(f: Any, path: Path) -> tuple[dict[str, Any], int]:
    if f.read(len(MAGIC)) != MAGIC:
        raise CheckpointError(f"{path}: not an nnkit checkpoint (wrong magic)")
    unpacker = msgpack.Unpacker(
        f, raw=False, strict_map_key=True, ext_hook=_refuse_ext, max_buffer_size=MAX_HEADER_BYTES,
        use_list=True, timestamp=0,
    )
    try:
        header = unpacker.unpack()
    except msgpack.OutOfData:
        raise CheckpointError(f"{path}: truncated header") from None
    except (ValueError, msgpack.UnpackException, RecursionError) as exc:
        raise CheckpointError(f"{path}: unreadable header: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the header is not a map")
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nnkit checkpoint (format {header.get('format')!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this nnkit reads ({FORMAT_VERSION}); upgrade nnkit")
    return header, _align(len(MAGIC) + unpacker.tell())


def _check_index(index: Any, path: Path, available: int) -> dict[str, dict[str, Any]]:
    if not isinstance(index, dict) or len(index) > MAX_ARRAYS:
        raise CheckpointError(f"{path}: the array index is missing or too large")
    lengths = []
    for name, entry in index.items():
        where = f"{path}: array {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "offset", "length", "crc32"}:
            raise CheckpointError(f"{where}: malformed index entry")
        dtype, shape, length = entry["dtype"], entry["shape"], entry["length"]
        if dtype not in DTYPES:
            raise CheckpointError(f"{where}: dtype {dtype!r} is not allowed")
        if (not isinstance(shape, list) or len(shape) > MAX_RANK
                or not all(isinstance(d, int) and 0 <= d <= MAX_PAYLOAD for d in shape)):
            raise CheckpointError(f"{where}: bad shape {shape!r}")
        if not isinstance(length, int) or int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize != length:
            raise CheckpointError(f"{where}: payload length {length!r} does not match {dtype} {shape}")
        if not isinstance(entry["offset"], int) or not isinstance(entry["crc32"], int):
            raise CheckpointError(f"{where}: malformed index entry")
        lengths.append(length)
    for (name, entry), expected in zip(index.items(), _layout(lengths)):
        if entry["offset"] != expected:
            raise CheckpointError(f"{path}: array {name!r}: offset {entry['offset']} breaks the layout")
    end = _layout(lengths)[-1] + lengths[-1] if lengths else 0
    if end != available:
        problem = "truncated" if end > available else "has trailing bytes"
        raise CheckpointError(f"{path}: file {problem} ({available} payload bytes, {end} expected)")
    return index
