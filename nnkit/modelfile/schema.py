"""JSON Schema of model files, generated from the pydantic models for an editor's use."""

from __future__ import annotations

import json
from typing import Any

from nnkit.registry import Registry
from nnkit.spec import spec_model

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def model_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a model file accepting every component in `registry`."""
    schema = spec_model(registry).model_json_schema(by_alias=True)
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "nnkit model file"}


def schema_text(schema: dict[str, Any]) -> str:
    """A schema as stable, diff-friendly JSON text."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
