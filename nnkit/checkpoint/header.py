"""The checkpoint header's schema: pydantic models that validate what a file claims before
anything is built from it, and that generate `schemas/checkpoint-header.schema.json`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SkipValidation, ValidationInfo, field_validator
from pydantic import with_config as pydantic_dataclass_config

from nnkit.config import Strict
from nnkit.modelfile.schema import SCHEMA_DIALECT
from nnkit.training.state import Count, Name, Progress

FORMAT = "nnkit.checkpoint"
FORMAT_VERSION = 3
#: Which checksum each format version uses: version 1 CRC-32 (zlib's), versions 2 and 3
#: XXH3-64. Version 3 adds the plugin lock of every component kind (`components`) and the
#: optimizer's state layout version.
CHECKSUM_FIELD = {1: "crc32", 2: "xxh3", 3: "xxh3"}
#: The component kinds besides layers that a recipe names and `components` locks.
RECIPE_KINDS = ("optimizer", "dataset", "metric", "callback")
MAX_ARRAYS = 100_000
MAX_RANK = 32
MAX_PAYLOAD = 2**32 - 1  # msgpack bin32
#: The only dtypes a checkpoint may hold, all little-endian.
DTYPES = ("<f2", "<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1")


class _Strict(Strict):
    model_config = ConfigDict(allow_inf_nan=True)  # a header may hold NaN metrics


@pydantic_dataclass_config(ConfigDict(extra="forbid"))
@dataclass(slots=True)  # not frozen: a frozen dataclass takes 3x as long to make, and headers hold thousands
class ArrayEntry:
    """Where one array lives: offset from the payload base, length in bytes, and the
    payload's checksum as fixed-width lowercase hex (see container.write for why fixed):
    `xxh3` (XXH3-64, format 2) or `crc32` (format 1 files)."""

    # A plain dataclass, not a pydantic model: a header holds thousands of entries, checked
    # together by `entries_of`; these constraints give the JSON Schema.

    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    shape: Annotated[list[Annotated[int, Field(ge=0, le=MAX_PAYLOAD)]], Field(max_length=MAX_RANK)]
    offset: Annotated[int, Field(ge=0, le=2**63 - 1)]
    length: Annotated[int, Field(ge=0, le=MAX_PAYLOAD)]
    xxh3: Annotated[str | None, Field(pattern=r"^[0-9a-f]{16}$")] = None
    crc32: Annotated[str | None, Field(pattern=r"^[0-9a-f]{8}$")] = None


_FIELDS = {"dtype", "shape", "offset", "length"}
_KEYS = {"xxh3": _FIELDS | {"xxh3"}, "crc32": _FIELDS | {"crc32"}}
_HEX = set("0123456789abcdef")
_DTYPE_SET = set(DTYPES)


def entries_of(index: Any, version: int) -> dict[str, ArrayEntry]:
    """The header's `arrays` map checked as columns, not entry by entry: every name a
    string of at most 512 characters; every entry a map of exactly dtype, shape, offset,
    length and the checksum of format `version` (`CHECKSUM_FIELD`) as lowercase hex of
    its width; dtypes from `DTYPES`; shapes lists of at most `MAX_RANK` whole numbers in
    [0, MAX_PAYLOAD]; offsets in [0, 2^63); lengths in [0, MAX_PAYLOAD]. ValueError names
    the first entry that fails and why."""
    if type(index) is not dict:
        raise ValueError("must be a map from array name to entry")
    if len(index) > MAX_ARRAYS:
        raise ValueError(f"{len(index):,} arrays; the cap is {MAX_ARRAYS:,}")
    names, entries = list(index), list(index.values())
    checksum = CHECKSUM_FIELD[version]
    keys = _KEYS[checksum]

    def first(bad: Any, reason: str) -> ValueError:
        name = next(n for n, e in zip(names, entries) if bad(n, e))
        return ValueError(f"array {str(name)[:80]!r}: {reason}")

    if not all(type(n) is str and len(n) <= 512 for n in names):
        raise first(lambda n, e: type(n) is not str or len(n) > 512, "names are strings of at most 512 characters")
    if not all(type(e) is dict and e.keys() == keys for e in entries):
        raise first(lambda n, e: type(e) is not dict or e.keys() != keys,
                    f"an entry holds exactly {', '.join(sorted(keys))} (format {version} files use {checksum} "
                    "checksums)")
    if not all(type(e["dtype"]) is str and e["dtype"] in _DTYPE_SET for e in entries):
        raise first(lambda n, e: type(e["dtype"]) is not str or e["dtype"] not in _DTYPE_SET,
                    f"dtype must be one of {', '.join(DTYPES)}")
    for field, top in (("offset", 2**63 - 1), ("length", MAX_PAYLOAD)):
        values = [e[field] for e in entries]
        if not (all(type(v) is int for v in values) and (not values or (min(values) >= 0 and max(values) <= top))):
            raise first(lambda n, e, field=field, top=top: type(e[field]) is not int or not 0 <= e[field] <= top,
                        f"{field} must be a whole number in [0, {top}]")
    shapes = [e["shape"] for e in entries]
    sizes = [d for s in shapes if type(s) is list for d in s]
    if not (all(type(s) is list and len(s) <= MAX_RANK for s in shapes) and all(type(d) is int for d in sizes)
            and (not sizes or (min(sizes) >= 0 and max(sizes) <= MAX_PAYLOAD))):
        raise first(lambda n, e: type(e["shape"]) is not list or len(e["shape"]) > MAX_RANK
                    or not all(type(d) is int and 0 <= d <= MAX_PAYLOAD for d in e["shape"]),
                    f"shape must be a list of at most {MAX_RANK} whole numbers in [0, {MAX_PAYLOAD}]")
    digits = 16 if checksum == "xxh3" else 8
    sums = [e[checksum] for e in entries]
    if not (all(type(x) is str and len(x) == digits for x in sums) and set("".join(sums)) <= _HEX):
        raise first(lambda n, e: type(e[checksum]) is not str or len(e[checksum]) != digits
                    or not set(e[checksum]) <= _HEX, f"{checksum} must be {digits} lowercase hex digits")
    if checksum == "xxh3":
        return {n: ArrayEntry(e["dtype"], e["shape"], e["offset"], e["length"], e["xxh3"]) for n, e in index.items()}
    return {n: ArrayEntry(e["dtype"], e["shape"], e["offset"], e["length"], None, e["crc32"])
            for n, e in index.items()}


class PluginLock(_Strict):
    """The distribution (and its version) that provided a layer type when the file was written."""

    distribution: Name
    version: Name


class RngState(_Strict):
    """A PCG64 generator's state; the 128-bit integers as lowercase hex strings."""

    bit_generator: Literal["PCG64"]
    state: Annotated[str, Field(pattern=r"^[0-9a-f]{1,32}$")]
    inc: Annotated[str, Field(pattern=r"^[0-9a-f]{1,32}$")]
    has_uint32: Annotated[int, Field(ge=0, le=1)]
    uinteger: Annotated[int, Field(ge=0, le=2**32 - 1)]


class OptimizerInfo(_Strict):
    """Which optimizer the `optimizer/...` arrays belong to, and its update count."""

    type: Name
    iterations: Count
    state_version: Annotated[int, Field(ge=1, le=1_000_000)] = 1  # the optimizer class's `state_version`


class Header(_Strict):
    """Everything before the payloads."""

    format: Literal["nnkit.checkpoint"]
    format_version: Annotated[int, Field(ge=1, le=FORMAT_VERSION)]
    nnkit_version: Name
    created: Name  # ISO 8601, UTC; kept when training resumes
    spec: dict[Name, Any]  # the validated model spec, as plain data
    plugins: dict[Name, PluginLock]  # layer type → provider
    # Every other kind the recipe names (optimizer, dataset, metric, callback): type → provider.
    components: dict[Literal[RECIPE_KINDS], dict[Name, PluginLock]] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    progress: Progress = Field(default_factory=Progress)
    rng: dict[Name, RngState] = Field(default_factory=dict)  # stream name → state
    optimizer: OptimizerInfo | None = None
    # Checked by `entries_of`, as columns: see there.
    arrays: SkipValidation[dict[Name, ArrayEntry]] = Field(max_length=MAX_ARRAYS)

    @field_validator("arrays", mode="after")
    @classmethod
    def _entries(cls, value: Any, info: ValidationInfo) -> dict[str, ArrayEntry]:
        version = info.data.get("format_version")
        if version is None:  # invalid itself: that error is the one to report
            raise ValueError("cannot be checked without a valid format_version")
        return entries_of(value, version)


def header_schema() -> dict[str, Any]:
    """The JSON Schema of a checkpoint's header (the msgpack map after the magic)."""
    schema = Header.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "nnkit checkpoint header"}
