"""The checkpoint header's schema: pydantic models that validate what a file claims before
anything is built from it, and that generate `schemas/checkpoint-header.schema.json`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

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


class ArrayEntry(_Strict):
    """Where one array lives: offset from the payload base, length in bytes, and the
    payload's checksum as fixed-width lowercase hex (see container.write for why fixed):
    `xxh3` (XXH3-64, format 2) or `crc32` (format 1 files)."""

    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    shape: list[Annotated[int, Field(ge=0, le=MAX_PAYLOAD)]] = Field(max_length=MAX_RANK)
    offset: Annotated[int, Field(ge=0, le=2**63 - 1)]
    length: Annotated[int, Field(ge=0, le=MAX_PAYLOAD)]
    xxh3: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None
    crc32: Annotated[str, Field(pattern=r"^[0-9a-f]{8}$")] | None = None

    @model_validator(mode="after")
    def _one_checksum(self) -> ArrayEntry:
        if (self.xxh3 is None) == (self.crc32 is None):
            raise ValueError("an array entry needs exactly one checksum: xxh3 or crc32")
        return self


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
    arrays: dict[Name, ArrayEntry] = Field(max_length=MAX_ARRAYS)

    @model_validator(mode="after")
    def _checksums_fit_the_version(self) -> Header:
        wanted = CHECKSUM_FIELD[self.format_version]
        for name, entry in self.arrays.items():
            if getattr(entry, wanted) is None:
                raise ValueError(f"array {name!r}: format {self.format_version} files use {wanted} checksums")
        return self


def header_schema() -> dict[str, Any]:
    """The JSON Schema of a checkpoint's header (the msgpack map after the magic)."""
    schema = Header.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "nnkit checkpoint header"}
