"""Reading model files (TOML, JSON) into validated specs, with errors that name the file.

Reading a file never runs code: the parsers build plain data, pydantic validates it,
and layer types are looked up by name in the registry (never imported by path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nnkit.errors import ModelFileError
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.spec import SpecBase, spec_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MAX_FILE_BYTES = 4 * 1024 * 1024  # model files are small; a larger one is refused unread
FORMATS = {".toml": "toml", ".json": "json"}


def read_model_file(path: str | Path, registry: Registry | None = None) -> SpecBase:
    """Read, parse and validate a model file. Raises ModelFileError naming the file."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ModelFileError(
            f"{path}: unknown model-file extension {path.suffix!r}; use {', '.join(FORMATS)}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelFileError(f"{path}: file is {size} bytes; model files are capped at {MAX_FILE_BYTES}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    data = parse_text(text, fmt, str(path))
    return validate_spec(data, str(path), registry)


def parse_text(text: str, fmt: str, source: str) -> dict[str, Any]:
    """Parse model-file text in `fmt` ("toml" or "json") into plain data."""
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(f"{source}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:
        raise ModelFileError(f"{source}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: the top level must be a table/object, not {type(data).__name__}")
    return data


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number nnkit accepts")


def validate_spec(data: dict[str, Any], source: str = "<spec>", registry: Registry | None = None) -> SpecBase:
    """Validate plain data as a model spec; errors name `source` and the field path."""
    registry = registry or get_registry()
    try:
        return spec_model(registry).model_validate(data)
    except ValidationError as exc:
        messages = [_describe(err, data, registry) for err in exc.errors(include_url=False)]
        raise ModelFileError(f"{source}: " + "; ".join(messages)) from None


_KIND_OF_SECTION = {"nodes": "layer", "loss": "layer", "optimizer": "optimizer", "data": "dataset",
                    "metrics": "metric"}


def _describe(err: Any, data: dict[str, Any], registry: Registry) -> str:
    loc = list(err["loc"])
    where = _path(loc, data)
    kind = _KIND_OF_SECTION.get(loc[0]) if loc and isinstance(loc[0], str) else None
    if kind is not None and err["type"] == "union_tag_invalid":
        return f"{where}: {registry.unknown_message(kind, str(err['ctx']['tag']))}"
    if kind is not None and err["type"] == "literal_error" and loc[-1] == "type":
        return f"{_path(loc[:-1], data)}: {registry.unknown_message(kind, str(err['input']))}"
    if err["type"] == "union_tag_not_found":
        return f"{where}: missing field 'type'"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _path(loc: list[Any], data: dict[str, Any]) -> str:
    """A readable field path: ('nodes', 1, 'Affine', 'units') → 'nodes.fc2.units'."""
    parts: list[str] = []
    node: Any = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            item = node[key]
            name = item.get("name") if isinstance(item, dict) else None
            parts.append(f".{name}" if isinstance(name, str) and parts == ["nodes"] else f"[{key}]")
            node = item
            # A discriminated union adds the tag to the path; it says nothing new.
            if i + 1 < len(loc) and isinstance(item, dict) and loc[i + 1] == item.get("type"):
                i += 1
        else:
            parts.append(f".{key}" if parts else str(key))
            node = node.get(key) if isinstance(node, dict) else None
            if i + 1 < len(loc) and isinstance(node, dict) and loc[i + 1] == node.get("type"):
                i += 1
        i += 1
    return "".join(parts)
