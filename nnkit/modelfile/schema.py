"""JSON Schema of model files, generated from the pydantic models for an editor's use.

Every field gets a description, shown by editors on hover: the comment written beside the
field (or on the lines just above it) in the config class that declares it — the same
text a reader of the code sees, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from typing import Any

from nnkit.config import Strict
from nnkit.registry import Registry
from nnkit.spec import spec_model

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def model_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a model file accepting every component in `registry`."""
    model = spec_model(registry)
    schema = model.model_json_schema(by_alias=True)
    classes = _strict_classes()
    for name, definition in schema.get("$defs", {}).items():
        describe(definition, classes.get(name))
    describe(schema, model)
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "nnkit model file"}


def schema_text(schema: dict[str, Any]) -> str:
    """A schema as stable, diff-friendly JSON text."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def describe(definition: dict[str, Any], cls: type | None) -> None:
    """Give each property of `definition` the comment beside its field in `cls`."""
    comments = field_comments(cls) if cls is not None else {}
    for name, prop in definition.get("properties", {}).items():
        text = comments.get(name) or comments.get(name.lstrip("$") + "_url") or _GENERIC.get(name)
        if text and "description" not in prop:
            prop["description"] = text


_GENERIC = {
    "type": "the registered type name that picks this component (see `nnkit plugins`)",
    "$schema": "a JSON Schema for editors, e.g. nnkit's schemas/model.schema.json",
}


def _strict_classes() -> dict[str, type]:
    """Every validated model class by name (plugins' included), subclasses after bases."""
    found: dict[str, type] = {}
    pending: list[type] = [Strict]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def field_comments(cls: type) -> dict[str, str]:
    """Field name → the comment beside its declaration (or just above it), through the
    class and its bases (the nearest declaration wins)."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # built at run time, or no source shipped
            continue
        lines = source.splitlines()
        body = ast.parse(source).body
        if not body or not isinstance(body[0], ast.ClassDef):
            continue
        for node in body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                text = _comment_of(lines, node.lineno - 1, (node.end_lineno or node.lineno) - 1)
                if text:
                    comments[node.target.id] = text
    return comments


def _comment_of(lines: list[str], first: int, last: int) -> str:
    """The trailing comment of lines first..last, else the comment lines right above."""
    for line in lines[first:last + 1]:
        code, hash_, comment = line.partition("  # ")
        if hash_ and comment and "type: ignore" not in comment and "noqa" not in comment:
            return comment.strip()
    above: list[str] = []
    row = first - 1
    while row >= 0 and lines[row].strip().startswith("#"):
        above.insert(0, lines[row].strip().lstrip("#").strip())
        row -= 1
    return " ".join(above)
