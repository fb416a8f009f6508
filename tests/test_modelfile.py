"""Reading model files: formats, normalisation of chains and graphs, errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nnkit
from nnkit.modelfile import read_model_file, validate_spec

from .conftest import EXAMPLES

CHAIN = {"inputs": {"x": {"shape": [2]}}, "nodes": [{"type": "Affine", "units": 4}, {"type": "ReLU"}]}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_and_json_give_the_same_spec(tmp_path: Path) -> None:
    toml_spec = read_model_file(EXAMPLES / "spiral.toml")
    json_path = write(tmp_path, "spiral.json", json.dumps(toml_spec.to_dict()))
    assert read_model_file(json_path) == toml_spec


def test_spec_round_trips_through_plain_data() -> None:
    spec = read_model_file(EXAMPLES / "spiral.toml")
    assert validate_spec(spec.to_dict()) == spec


def test_a_plain_list_is_a_chain_with_generated_names() -> None:
    spec = validate_spec(CHAIN)
    assert [n.name for n in spec.nodes] == ["affine1", "relu1"]
    assert [n.inputs for n in spec.nodes] == [["x"], ["affine1"]]
    assert spec.outputs == ["relu1"]


def test_nodes_may_name_their_inputs_as_a_graph() -> None:
    spec = validate_spec({
        "inputs": {"x": {"shape": [1, 3]}},
        "nodes": [
            {"name": "rep", "type": "Repeat", "repeats": 4, "inputs": ["x"]},
            {"name": "sum", "type": "Sum", "inputs": ["rep"]},
        ],
        "outputs": ["sum"],
    })
    assert spec.nodes[1].inputs == ["rep"]


@pytest.mark.parametrize(("change", "message"), [
    ({"nodes": [{"type": "Afine", "units": 3}]}, r"nodes\[0\]: unknown layer type 'Afine'; did you mean 'Affine'"),
    ({"nodes": [{"name": "fc", "type": "Affine", "units": 0}]},
     r"nodes\.fc\.units: Input should be greater than or equal to 1"),
    ({"nodes": [{"name": "fc", "type": "Affine", "units": "3"}]},
     r"nodes\.fc\.units: Input should be a valid integer"),
    ({"nodes": [{"name": "fc", "type": "Affine", "units": 3, "unit": 2}]},
     r"nodes\.fc\.unit: Extra inputs are not permitted"),
    ({"nodes": [{"name": "a", "type": "ReLU"}, {"name": "a", "type": "ReLU"}]}, "duplicate node name 'a'"),
    ({"nodes": [{"type": "ReLU", "inputs": ["nope"]}]}, "takes input 'nope', which is no node"),
    ({"nodes": [{"name": "a", "type": "ReLU", "inputs": ["b"]}, {"name": "b", "type": "ReLU", "inputs": ["a"]}]},
     "cycle: "),
    ({"optimizer": {"type": "Adamm"}}, "optimizer: unknown optimizer type 'Adamm'"),
    ({"data": {"type": "spirall"}}, "data: unknown dataset type 'spirall'; did you mean 'spiral'"),
    ({"loss": {"type": "SoftmaxWithLos"}}, "loss: unknown layer type 'SoftmaxWithLos'; did you mean 'SoftmaxWithLoss'"),
    ({"train": {"epochs": 1.5}}, r"train\.epochs: Input should be a valid integer"),
    ({"optimizer": {"type": "SGD", "lr": float("nan")}}, r"optimizer\.lr: Input should be a finite number"),
])
def test_errors_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(nnkit.ModelFileError, match=message) as info:
        validate_spec({**CHAIN, **change}, "model.toml")
    assert str(info.value).startswith("model.toml: ")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(nnkit.ModelFileError, match="missing.toml: no such file"):
        read_model_file(tmp_path / "missing.toml")
    bad = write(tmp_path, "bad.toml", "a = 1\nb = = 2\n")
    with pytest.raises(nnkit.ModelFileError, match=r"bad.toml: invalid TOML: .*line 2"):
        read_model_file(bad)
    bad = write(tmp_path, "bad.json", '{"nodes": [}')
    with pytest.raises(nnkit.ModelFileError, match="bad.json: invalid JSON at line 1, column 12"):
        read_model_file(bad)
    dup = write(tmp_path, "dup.json", '{"nodes": [], "nodes": []}')
    with pytest.raises(nnkit.ModelFileError, match="duplicate key 'nodes'"):
        read_model_file(dup)
    other = write(tmp_path, "model.ini", "")
    with pytest.raises(nnkit.ModelFileError, match="unknown model-file extension"):
        read_model_file(other)


def test_a_dotted_type_is_a_name_never_an_import() -> None:
    with pytest.raises(nnkit.ModelFileError, match="unknown layer type 'os.system'"):
        validate_spec({**CHAIN, "nodes": [{"type": "os.system"}]})
