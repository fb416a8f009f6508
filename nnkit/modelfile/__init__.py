"""Model files (TOML, JSON, YAML) as validated specs.

Reading never runs code: the parsers build plain data (`parse.py`; YAML through a safe
loader that also refuses aliases and duplicate keys), migrations bring it to the current
format (`migrations.py`), pydantic validates it against the registry's model
(`nnkit.spec`), and layer types are looked up by name in the registry, never imported.
Every problem is one ModelFileError: `file:line:column: field.path: reason` (`locate.py`
finds the line and column). `schema.py` writes the JSON Schema editors use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nnkit.atomic import write_output
from nnkit.errors import ModelFileError
from nnkit.modelfile.locate import json_position, toml_position, yaml_position
from nnkit.modelfile.migrations import upgrade
from nnkit.modelfile.parse import dump_text, format_of, parse_text, read_text, yaml_loader
from nnkit.names import did_you_mean
from nnkit.normalise import normalise
from nnkit.registry import Kind, Registry
from nnkit.spec import Spec, spec_model

__all__ = ["migrate_file", "position", "read_model_file", "validate_spec", "write_model_file"]


def read_model_file(path: str | Path, registry: Registry) -> Spec:
    """Read, parse, upgrade and validate a model file. Raises ModelFileError naming the file."""
    path = Path(path)
    fmt = format_of(path)
    text = read_text(path)
    data = parse_text(text, fmt, str(path))
    return validate_spec(upgrade(data, str(path)), str(path), registry, text=text, fmt=fmt)


def validate_spec(data: dict[str, Any], source: str, registry: Registry,
                  *, text: str | None = None, fmt: str | None = None) -> Spec:
    """Validate plain data as a model spec; errors name `source`, the field path and, given
    the file's `text` and `fmt`, the line and column."""
    try:
        validated = spec_model(registry).model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        messages = [_describe(err, data, registry) for err in errors]
        path = _data_path(list(errors[0]["loc"]), data)
        if errors[0]["type"] == "union_tag_invalid":
            path += ("type",)  # point at the unknown name itself
        where = position(text, fmt, path) if text is not None else None
        prefix = f"{source}:{where[0]}:{where[1]}" if where else source
        raise ModelFileError(f"{prefix}: " + "; ".join(messages)) from None
    try:
        return normalise(validated, registry)
    except ValueError as exc:  # the graph: names, references, cycles, unused nodes
        index = getattr(exc, "index", None)
        where = position(text, fmt, ("nodes", index)) if text is not None and index is not None else None
        raise ModelFileError(f"{source}:{where[0]}:{where[1]}: {exc}" if where else f"{source}: {exc}") from None


def position(text: str, fmt: str | None, path: tuple[Any, ...]) -> tuple[int, int] | None:
    """(line, column) of the field at `path` (keys and indices) in a file's text, if found."""
    try:
        if fmt == "toml":
            return toml_position(text, path)
        if fmt == "json":
            return json_position(text, path)
        if fmt == "yaml":
            return yaml_position(yaml_loader().compose(text), path)
    except Exception:
        return None
    return None


_KIND_OF_SECTION: dict[str, Kind] = {"nodes": "layer", "loss": "layer", "optimizer": "optimizer", "data": "dataset",
                                     "metrics": "metric", "callbacks": "callback", "validation": "dataset"}


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
    if err["type"] == "extra_forbidden":
        path = _data_path(loc, data)
        name = str(path[-1]) if path else ""
        hint = did_you_mean(name, _fields_at(path[:-1], data, registry))
        what = "section" if len(path) == 1 else "field"
        return f"{where}: unknown {what} {name!r}{hint}"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _fields_at(path: tuple[Any, ...], data: dict[str, Any], registry: Registry) -> list[str]:
    """The field names the model file accepts at `path` (keys and indices into its data),
    for "did you mean" on an unknown one; [] where it cannot tell."""
    from nnkit.spec import InputSpec, ModelFileBase, TrainSpec

    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else (
            value[key] if isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value) else None)
    if not path:
        return [f.alias or name for name, f in ModelFileBase.model_fields.items()]
    if path == ("train",):
        return list(TrainSpec.model_fields)
    if path[0] == "inputs" and len(path) == 2:
        return list(InputSpec.model_fields)
    if path == ("validation",):
        return ["split", "data"]
    kind = _KIND_OF_SECTION.get(path[0]) if isinstance(path[0], str) else None
    if kind is not None and isinstance(value, dict) and isinstance(value.get("type"), str):
        entry = registry.find(kind, value["type"])
        return list(entry.cls.Config.model_fields) if entry is not None else []
    return []


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


def write_model_file(data: Spec | dict[str, Any], path: str | Path) -> None:
    """Write a spec (normalised, defaults filled) or plain data as a model file, atomically;
    the format follows the extension."""
    path = Path(path)
    text = dump_text(data.to_dict() if isinstance(data, Spec) else data, format_of(path))
    write_output(path, text.encode("utf-8"), ModelFileError)


def migrate_file(path: str | Path, registry: Registry, out: str | Path | None = None) -> tuple[int, int]:
    """Rewrite a model file at the current format version (to `out`, default in place).
    Returns (old version, new version). The result is validated before it is written."""
    path = Path(path)
    fmt = format_of(path)
    text = read_text(path)
    data = parse_text(text, fmt, str(path))
    old = data.get("format_version", None)
    upgraded = upgrade(data, str(path))
    validate_spec(upgraded, str(path), registry)
    if upgraded != data or (out is not None and Path(out) != path):  # nothing to rewrite otherwise
        # TOML keeps its comments and layout; the file's mode is kept by the atomic writer.
        rewritten = dump_text(upgraded, fmt, original=text if fmt == "toml" else None)
        write_output(Path(out or path), rewritten.encode("utf-8"), ModelFileError)
    return (old if isinstance(old, int) else upgraded["format_version"]), upgraded["format_version"]
