"""JSON Schema of model files, generated from the pydantic models for an editor's use."""

from __future__ import annotations

import json
from typing import Any

from nnkit.ckptheader import Header
from nnkit.registry import Registry
from nnkit.spec import spec_model

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def model_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a model file accepting every layer, optimizer and dataset in `registry`."""
    schema = spec_model(registry).model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "nnkit model file"}


def checkpoint_header_schema() -> dict[str, Any]:
    """The JSON Schema of a checkpoint's header (the msgpack map after the magic)."""
    schema = Header.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "nnkit checkpoint header"}


def schema_text(schema: dict[str, Any]) -> str:
    """A schema as stable, diff-friendly JSON text."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def model_schema_text(registry: Registry) -> str:
    return schema_text(model_schema(registry))
