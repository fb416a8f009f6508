"""The JSON Schema for editors accepts every example model file and rejects broken ones."""

from __future__ import annotations

import json

import jsonschema
import pytest

import nnkit
from nnkit.modelfile import parse_text, read_text
from nnkit.modelfile.schema import model_schema

from .conftest import EXAMPLES, ROOT

EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.toml") if not p.name.endswith("-sweep.toml"))
SWEEP_FILES = sorted(EXAMPLES.glob("*-sweep.toml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = model_schema(nnkit.get_registry())  # every installed plugin's layers included
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_the_schema_accepts_every_example(validator, path) -> None:
    data = parse_text(read_text(path), "toml", str(path))
    errors = sorted(validator.iter_errors(data), key=str)
    assert not errors, errors[0].message


def test_examples_that_name_the_committed_schema_validate_against_it() -> None:
    committed = json.loads((ROOT / "schemas" / "model.schema.json").read_text())
    for path in EXAMPLE_FILES:
        data = parse_text(read_text(path), "toml", str(path))
        if "$schema" in data:
            jsonschema.validate(data, committed)


@pytest.mark.parametrize("broken", [
    {"nodes": [{"type": "Affine"}]},                       # units missing
    {"nodes": [{"type": "Affine", "units": "3"}]},          # a string for a number
    {"nodes": [{"type": "Afine", "units": 3}]},             # unknown type
    {"nodes": [{"type": "ReLU", "colour": "red"}]},         # unknown field
    {"nodes": [{"type": "ReLU"}], "optimizer": {"type": "SGD", "lr": -1}},
    {"nodes": [{"type": "ReLU"}], "train": {"epochs": 2**40}},
    {"nodes": [{"type": "ReLU"}], "metrics": ["acuracy"]},
    {"nodes": []},
])
def test_the_schema_rejects_broken_files(validator, broken: dict) -> None:
    assert list(validator.iter_errors(broken)), broken
    with pytest.raises(nnkit.ModelFileError):
        nnkit.validate_spec({"inputs": {"x": {"shape": [3]}}, **broken})


def test_metric_names_are_shorthand_in_the_schema_too(validator) -> None:
    assert not list(validator.iter_errors({"nodes": [{"type": "ReLU"}], "metrics": ["accuracy",
                                                                                  {"type": "top_k_accuracy", "k": 2}]}))


def test_every_field_of_the_schema_has_a_description() -> None:
    """Editors show it on hover; it is the comment beside the field in the code."""
    import json

    from .conftest import ROOT

    schema = json.loads((ROOT / "schemas" / "model.schema.json").read_text())
    bare = [f"{name}.{field}" for name, definition in [("(top)", schema), *schema["$defs"].items()]
            for field, prop in definition.get("properties", {}).items() if not prop.get("description")]
    assert not bare, f"fields without a description (write a comment beside them): {bare}"
    assert schema["$defs"]["AffineConfig"]["properties"]["units"]["description"] == "output width H"


def test_example_sweep_files_validate_against_the_sweep_schema() -> None:
    committed = json.loads((ROOT / "schemas" / "sweep.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(committed)
    assert SWEEP_FILES
    for path in SWEEP_FILES:
        jsonschema.validate(parse_text(read_text(path), "toml", str(path)), committed)
