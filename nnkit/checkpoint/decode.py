"""Reading a checkpoint's header: the msgpack map after the magic, decoded without running
anything it says (extensions, repeated keys and timestamps refused), its checksum checked,
validated by the pydantic models of nnkit/checkpoint/header.py, and its index checked
against the canonical payload layout (see nnkit/checkpoint/container.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from pydantic import ValidationError

from nnkit.checkpoint.checksums import checksum
from nnkit.checkpoint.header import FORMAT, FORMAT_VERSION, MAX_ARRAYS, Header
from nnkit.errors import CheckpointError
from nnkit.modelfile.parse import unique_keys

MAGIC = msgpack.packb("nnkit-ckpt")
MAX_HEADER_BYTES = 64 * 1024 * 1024
ALIGN = 64
PREFIX = 5  # bin32 marker and length


def align(position: int) -> int:
    return -(-position // ALIGN) * ALIGN


def layout(lengths: list[int]) -> list[int]:
    """Payload offsets (from the payload base) for the given lengths, in order."""
    offsets, cursor = [], 0
    for length in lengths:
        start = align(cursor + PREFIX)
        offsets.append(start)
        cursor = start + length
    return offsets


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


#: msgpack's timestamp extension (type -1) as fixext 4, fixext 8 and ext 8 of 12 bytes:
#: decoded past `ext_hook`, so a header holding these bytes is parsed the careful way.
_TIMESTAMP_CODES = (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff")


def read_header(f: Any, path: Path) -> tuple[Header, int]:
    if f.read(len(MAGIC)) != MAGIC:
        raise CheckpointError(f"{path}: not an nnkit checkpoint (wrong magic)")
    # Fast: decode in C alone, then make sure nothing was lost (see `_decoded`).
    unpacker = _unpacker(f)
    data = _unpack(unpacker, path)
    length = unpacker.tell()
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
        stored = _unpack(unpacker, path, "unreadable header checksum")
    end = unpacker.tell()
    f.seek(len(MAGIC))
    raw = f.read(length)
    if isinstance(version, int) and not isinstance(version, bool) and version >= 2:
        if not isinstance(stored, str) or stored != checksum(memoryview(raw)):
            raise CheckpointError(f"{path}: header checksum mismatch (the file is damaged)")
    data = _decoded(data, raw, path)
    try:
        header = Header.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = " at " + ".".join(str(p) for p in first["loc"]) if first["loc"] else ""
        reason = first["msg"].removeprefix("Value error, ")
        raise CheckpointError(f"{path}: invalid header{where}: {reason}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: invalid header: nested too deeply") from None
    return header, align(len(MAGIC) + end)


def _unpacker(source: Any, careful: bool = False) -> msgpack.Unpacker:
    """A header decoder: extensions refused; `careful` also refuses repeated map keys and
    timestamps, at the cost of a Python call per map and list."""
    hooks: dict[str, Any] = {"object_pairs_hook": _plain_map, "list_hook": _plain_list} if careful else {}
    return msgpack.Unpacker(source, raw=False, strict_map_key=True, ext_hook=_refuse_ext,
                            max_buffer_size=MAX_HEADER_BYTES, use_list=True, timestamp=0, **hooks)


def _unpack(unpacker: msgpack.Unpacker, path: Path, what: str = "unreadable header") -> Any:
    try:
        return unpacker.unpack()
    except msgpack.OutOfData:
        raise CheckpointError(f"{path}: truncated header") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        reason = str(exc) or "nested too deeply or malformed"
        raise CheckpointError(f"{path}: {what}: {reason}") from None


def _decoded(data: Any, raw: bytes, path: Path) -> Any:
    """The header `data` decoded from `raw` by the fast decoder, checked: a map with a
    repeated key (msgpack keeps the last silently) or a timestamp would encode back to
    other bytes, or hold a timestamp's code; only then is `raw` decoded again the
    careful way, which names the problem (or accepts a valid header nnkit did not write)."""
    if not any(code in raw for code in _TIMESTAMP_CODES) and msgpack.packb(data, use_bin_type=True) == raw:
        return data
    unpacker = _unpacker(None, careful=True)
    unpacker.feed(raw)
    return _unpack(unpacker, path)


def check_index(header: Header, path: Path, available: int) -> None:
    """Every payload must sit exactly where the canonical layout puts it, and fill the file."""
    index = header.arrays
    itemsize = {dtype: np.dtype(dtype).itemsize for dtype in {entry.dtype for entry in index.values()}}
    lengths = []
    for name, entry in index.items():
        if entry.length != math.prod(entry.shape) * itemsize[entry.dtype]:
            raise CheckpointError(
                f"{path}: array {name!r}: payload length {entry.length} does not match {entry.dtype} {entry.shape}")
        lengths.append(entry.length)
    expected_offsets = layout(lengths)
    for (name, entry), expected in zip(index.items(), expected_offsets):
        if entry.offset != expected:
            raise CheckpointError(f"{path}: array {name!r}: offset {entry.offset} breaks the layout")
    end = expected_offsets[-1] + lengths[-1] if lengths else 0
    if end != available:
        problem = "truncated" if end > available else "has trailing bytes"
        raise CheckpointError(f"{path}: file {problem} ({available} payload bytes after the header, {end} expected)")
