"""Reading and writing model files (TOML, JSON, YAML) as validated specs.

Reading never runs code: the parsers build plain data (YAML through a safe loader that also
refuses aliases and duplicate keys), migrations bring it to the current format, pydantic
validates it, and layer types are looked up by name in the registry, never imported.
Every problem is one ModelFileError: `file:line:column: field.path: reason`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nnkit.errors import ModelFileError, reading
from nnkit.locate import json_position, toml_position, yaml_position
from nnkit.migrations import upgrade
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.spec import SpecBase, spec_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MAX_FILE_BYTES = 4 * 1024 * 1024  # model files are small; a larger one is refused unread
MAX_DEPTH = 32  # nesting of tables and lists; specs need about 6
FORMATS = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ModelFileError(f"{path}: unknown model-file extension {path.suffix!r}; use {', '.join(FORMATS)}")
    return fmt


def read_text(path: str | Path) -> str:
    """A model file's text, refusing missing, oversized and non-UTF-8 files."""
    path = Path(path)
    with reading(path, ModelFileError, "model file"):
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelFileError(f"{path}: file is {size} bytes; model files are capped at {MAX_FILE_BYTES}")
        raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_model_file(path: str | Path, registry: Registry | None = None) -> SpecBase:
    """Read, parse, upgrade and validate a model file. Raises ModelFileError naming the file."""
    path = Path(path)
    fmt = format_of(path)
    text = read_text(path)
    data = parse_text(text, fmt, str(path))
    return validate_spec(upgrade(data, str(path)), str(path), registry, text=text, fmt=fmt)


def parse_text(text: str, fmt: str, source: str) -> dict[str, Any]:
    """Parse model-file text in `fmt` ("toml", "json" or "yaml") into plain data."""
    if len(text) > MAX_FILE_BYTES:
        raise ModelFileError(f"{source}: {len(text)} characters; model files are capped at {MAX_FILE_BYTES} bytes")
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        elif fmt == "json":
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
        else:
            data = _yaml().load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(f"{source}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ModelFileError(f"{source}: nested too deeply (the cap is {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise ModelFileError(f"{source}: invalid {fmt.upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: the top level must be a table/object, not {type(data).__name__}")
    if _depth(data) > MAX_DEPTH:
        raise ModelFileError(f"{source}: nested too deeply (the cap is {MAX_DEPTH} levels)")
    return data


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number nnkit accepts")


class _YamlModule:
    """PyYAML behind the optional extra, with a loader fit for files from strangers."""

    def __init__(self) -> None:
        try:
            import yaml
        except ImportError:
            raise ModelFileError("YAML model files need PyYAML: pip install 'nnkit[yaml]'") from None
        self.yaml = yaml

        class Loader(yaml.SafeLoader):
            def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
                if self.check_event(yaml.AliasEvent):
                    event = self.peek_event()
                    raise ValueError(f"line {event.start_mark.line + 1}: YAML aliases are not allowed")
                return super().compose_node(parent, index)

            def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
                seen = set()
                for key, _ in node.value:
                    if key.value in seen:
                        raise ValueError(f"line {key.start_mark.line + 1}: duplicate key {key.value!r}")
                    seen.add(key.value)
                return super().construct_mapping(node, deep=deep)

        self.Loader = Loader

    def load(self, text: str) -> Any:
        try:
            return self.yaml.load(text, Loader=self.Loader)  # noqa: S506 - a SafeLoader subclass
        except self.yaml.YAMLError as exc:
            raise ValueError(str(exc).replace("\n", " ")) from None

    def compose(self, text: str) -> Any:
        return self.yaml.compose(text, Loader=self.Loader)  # noqa: S506

    def dump(self, data: Any) -> str:
        return self.yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _yaml() -> _YamlModule:
    return _YamlModule()


def validate_spec(data: dict[str, Any], source: str = "<spec>", registry: Registry | None = None,
                  *, text: str | None = None, fmt: str | None = None) -> SpecBase:
    """Validate plain data as a model spec; errors name `source`, the field path and, given
    the file's `text` and `fmt`, the line and column."""
    registry = registry or get_registry()
    try:
        return spec_model(registry).model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        messages = [_describe(err, data, registry) for err in errors]
        path = _data_path(list(errors[0]["loc"]), data)
        if errors[0]["type"] == "union_tag_invalid":
            path += ("type",)  # point at the unknown name itself
        where = _position(text, fmt, path) if text is not None else None
        prefix = f"{source}:{where[0]}:{where[1]}" if where else source
        raise ModelFileError(f"{prefix}: " + "; ".join(messages)) from None


def _position(text: str, fmt: str | None, path: tuple[Any, ...]) -> tuple[int, int] | None:
    try:
        if fmt == "toml":
            return toml_position(text, path)
        if fmt == "json":
            return json_position(text, path)
        if fmt == "yaml":
            return yaml_position(_yaml().compose(text), path)
    except Exception:  # noqa: BLE001 - a position is a courtesy; the error stands without it
        return None
    return None


_KIND_OF_SECTION = {"nodes": "layer", "loss": "layer", "optimizer": "optimizer", "data": "dataset",
                    "metrics": "metric"}


def _describe(err: Any, data: dict[str, Any], registry: Registry) -> str:
    loc = list(err["loc"])
    where = _readable(loc, data)
    kind = _KIND_OF_SECTION.get(loc[0]) if loc and isinstance(loc[0], str) else None
    if kind is not None and err["type"] == "union_tag_invalid":
        return f"{where}: {registry.unknown_message(kind, str(err['ctx']['tag']))}"
    if kind is not None and err["type"] == "literal_error" and loc[-1] == "type":
        return f"{_readable(loc[:-1], data)}: {registry.unknown_message(kind, str(err['input']))}"
    if err["type"] == "union_tag_not_found":
        return f"{where}: missing field 'type'"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _data_path(loc: list[Any], data: dict[str, Any]) -> tuple[Any, ...]:
    """The error's location as keys and indices into the file's data (union tags dropped)."""
    path: list[Any] = []
    node: Any = data
    for key in loc:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        elif isinstance(node, dict) and key == node.get("type"):
            continue  # a discriminated union's tag
        else:
            path.append(key)
            break
        path.append(key)
    return tuple(path)


def _readable(loc: list[Any], data: dict[str, Any]) -> str:
    """A readable field path: ('nodes', 1, 'Affine', 'units') → 'nodes.fc2.units'."""
    path = _data_path(loc, data)
    parts: list[str] = []
    node: Any = data
    for key in path:
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            item = node[key]
            name = item.get("name") if isinstance(item, dict) else None
            parts.append(f".{name}" if isinstance(name, str) and parts == ["nodes"] else f"[{key}]")
            node = item
        else:
            parts.append(f".{key}" if parts else str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts)


def dump_text(data: dict[str, Any], fmt: str) -> str:
    """Plain data as model-file text in `fmt`."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return _yaml().dump(data)
    try:
        import tomli_w
    except ImportError:
        raise ModelFileError("writing TOML needs tomli-w: pip install 'nnkit[toml]'") from None
    return tomli_w.dumps(data)


def write_model_file(data: SpecBase | dict[str, Any], path: str | Path) -> None:
    """Write a spec (normalised, defaults filled) or plain data as a model file, atomically;
    the format follows the extension."""
    path = Path(path)
    text = dump_text(data.to_dict() if isinstance(data, SpecBase) else data, format_of(path))
    folder = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ModelFileError(f"{path}: cannot write: {exc.strerror or exc}") from None


def migrate_file(path: str | Path, out: str | Path | None = None) -> tuple[int, int]:
    """Rewrite a model file at the current format version (to `out`, default in place).
    Returns (old version, new version). The result is validated before it is written."""
    path = Path(path)
    fmt = format_of(path)
    data = parse_text(read_text(path), fmt, str(path))
    old = data.get("format_version", None)
    upgraded = upgrade(data, str(path))
    validate_spec(upgraded, str(path))
    if upgraded != data or (out is not None and Path(out) != path):  # nothing to rewrite otherwise
        write_model_file(upgraded, out or path)
    return (old if isinstance(old, int) else upgraded["format_version"]), upgraded["format_version"]
