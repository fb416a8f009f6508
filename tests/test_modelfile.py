"""Reading model files: formats, normalisation of chains and graphs, errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nnkit
from nnkit import read_model_file, validate_spec

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
    assert [n.inputs for n in spec.nodes] == [("x",), ("affine1",)]
    assert spec.outputs == ("relu1",)


def test_nodes_may_name_their_inputs_as_a_graph() -> None:
    spec = validate_spec({
        "inputs": {"x": {"shape": [1, 3]}},
        "nodes": [
            {"name": "rep", "type": "Repeat", "repeats": 4, "inputs": ["x"]},
            {"name": "sum", "type": "Sum", "inputs": ["rep"]},
        ],
        "outputs": ["sum"],
    })
    assert spec.nodes[1].inputs == ("rep",)


@pytest.mark.parametrize(("change", "message"), [
    ({"nodes": [{"type": "Afine", "units": 3}]}, r"nodes\[0\]: unknown layer type 'Afine'; did you mean 'Affine'"),
    ({"nodes": [{"name": "fc", "type": "Affine", "units": 0}]},
     r"nodes\.fc\.units: Input should be greater than or equal to 1"),
    ({"nodes": [{"name": "fc", "type": "Affine", "units": "3"}]},
     r"nodes\.fc\.units: Input should be a valid integer"),
    ({"nodes": [{"name": "fc", "type": "Affine", "units": 3, "unit": 2}]},
     r"nodes\.fc\.unit: unknown field 'unit'; did you mean 'units'"),
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
    with pytest.raises(nnkit.ModelFileError, match=r"bad.toml:2:5: invalid TOML: Invalid value"):
        read_model_file(bad)
    bad = write(tmp_path, "bad.json", '{"nodes": [}')
    with pytest.raises(nnkit.ModelFileError, match="bad.json:1:12: invalid JSON: Expecting value"):
        read_model_file(bad)
    dup = write(tmp_path, "dup.json", '{"nodes": [], "nodes": []}')
    with pytest.raises(nnkit.ModelFileError, match="duplicate key 'nodes'"):
        read_model_file(dup)
    other = write(tmp_path, "model.ini", "")
    with pytest.raises(nnkit.ModelFileError, match="unknown model-file extension"):
        read_model_file(other)
    checkpoint = write(tmp_path, "spiral.nnk", "")
    said = r"a checkpoint, not a model file; to train it on: nnkit train --resume .*spiral.nnk \(in Python: nnkit.Model"
    with pytest.raises(nnkit.ModelFileError, match=said):
        read_model_file(checkpoint)


def test_a_dotted_type_is_a_name_never_an_import() -> None:
    with pytest.raises(nnkit.ModelFileError, match="unknown layer type 'os.system'"):
        validate_spec({**CHAIN, "nodes": [{"type": "os.system"}]})


SPIRAL_YAML = """\
format_version: 1
inputs:
  x: {shape: [2]}
nodes:
  - {name: fc1, type: Affine, units: 10, init: normal, init_scale: 0.01}
  - {name: act1, type: Sigmoid}
  - {name: fc2, type: Affine, units: 3, init: normal, init_scale: 0.01}
loss: {type: SoftmaxWithLoss}
optimizer: {type: SGD, lr: 1.0}
data: {type: spiral, points_per_class: 100, classes: 3}
validation:
  data: {type: spiral, points_per_class: 100, classes: 3}
train: {epochs: 300, batch_size: 30, seed: 1}
name: spiral
"""


def test_yaml_gives_the_same_spec(tmp_path: Path) -> None:
    assert read_model_file(write(tmp_path, "s.yaml", SPIRAL_YAML)) == read_model_file(EXAMPLES / "spiral.toml")


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_a_spec_written_out_reads_back_equal(tmp_path: Path, suffix: str) -> None:
    from nnkit.modelfile import write_model_file

    for example in ("spiral.toml", "cbow.toml"):
        spec = read_model_file(EXAMPLES / example)
        write_model_file(spec, tmp_path / f"out{suffix}")
        assert read_model_file(tmp_path / f"out{suffix}") == spec


def test_yaml_without_pyyaml_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(nnkit.ModelFileError, match=r"YAML model files need PyYAML: pip install 'nnkit-numpy\[yaml\]'"):
        read_model_file(write(tmp_path, "s.yaml", SPIRAL_YAML))


@pytest.mark.parametrize(("name", "text", "where"), [
    ("bad.toml", (EXAMPLES / "spiral.toml").read_text().replace("units = 3", "units = -3"),
     r"bad.toml:25:1: nodes\.fc2\.units: Input should be greater than or equal to 1"),
    ("bad.toml", (EXAMPLES / "spiral.toml").read_text().replace("lr = 1.0", 'lr = "fast"'),
     r"bad.toml:34:1: optimizer\.lr: Input should be a valid number"),
    ("bad.toml", (EXAMPLES / "spiral.toml").read_text().replace("x = { shape = [2] }", "x = { shape = [0] }"),
     r"bad.toml:9:7: inputs\.x\.shape\[0\]: Input should be greater than or equal to 1"),
    ("bad.json", '{\n  "nodes": [\n    {"type": "ReLU"},\n    {"type": "Affine", "units": 0}\n  ]\n}',
     r"bad.json:4:24: nodes\[1\]\.units"),
    ("bad.yaml", "nodes:\n  - type: ReLU\n  - type: Affine\n    units: 0\n",
     r"bad.yaml:4:5: nodes\[1\]\.units"),
    ("inline.toml",
     'nodes = [\n  { type = "ReLU" }, # a comment, ]\n  { name = "fc", type = "Affine", units = -3 },\n]\n',
     r"inline.toml:3:35: nodes\.fc\.units"),
    ("inline.toml", 'nodes = [\n  { type = "ReLU" },\n  { type = "Sigmod" },\n]\n',
     r"inline.toml:3:5: nodes\[1\]: unknown layer type 'Sigmod'"),
])
def test_errors_give_the_line_and_column(tmp_path: Path, name: str, text: str, where: str) -> None:
    with pytest.raises(nnkit.ModelFileError, match=where):
        read_model_file(write(tmp_path, name, text))


@pytest.mark.parametrize(("name", "text", "message"), [
    ("deep.json", '{"nodes": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("deep.json", '{"nodes": ' + "[" * 40 + "]" * 40 + "}", "nested too deeply"),
    ("deep.toml", "nodes = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("nan.json", '{"nodes": [{"type": "ReLU"}], "optimizer": {"type": "SGD", "lr": NaN}}',
     "NaN is not a number nnkit accepts"),
    ("inf.json", '{"nodes": [{"type": "ReLU"}], "optimizer": {"type": "SGD", "lr": 1e400}}',
     "optimizer.lr: Input should be a finite number"),
    ("inf.toml", 'nodes = [{type = "ReLU"}]\noptimizer = {type = "SGD", lr = inf}', "Input should be a finite number"),
    ("str.toml", 'nodes = [{type = "Affine", units = "12"}]', "units: Input should be a valid integer"),
    ("big.toml", 'nodes = [{type = "Affine", units = 99999999999999999999}]', "less than or equal to 2147483647"),
    ("dup.json", '{"nodes": [{"type": "ReLU", "type": "Tanh"}]}', "duplicate key 'type'"),
    ("dup.yaml", "nodes:\n  - type: ReLU\n    type: Tanh\n", "duplicate key 'type'"),
    ("alias.yaml", "a: &x [1, 2]\nb: *x\nnodes: [{type: ReLU}]\n", "YAML aliases are not allowed"),
    ("tag.yaml", "nodes: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
    ("import.toml", 'nodes = [{type = "os.system"}]', "unknown layer type 'os.system'"),
    ("new.toml", 'format_version = 99\nnodes = [{type = "ReLU"}]', "format_version 99 needs a newer nnkit"),
    ("list.json", "[1, 2]", "the top level must be a table/object"),
])
def test_hostile_input_gives_one_clean_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(nnkit.ModelFileError, match=message.replace(".", r"\.").replace("[", r"\[")):
        read_model_file(write(tmp_path, name, text))


def test_oversized_files_are_refused_unread(tmp_path: Path) -> None:
    from nnkit.modelfile.parse import MAX_FILE_BYTES

    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(nnkit.ModelFileError, match="model files are capped"):
        read_model_file(path)


def test_every_integer_field_is_bounded() -> None:
    from nnkit.modelfile.schema import model_schema

    def walk(node, where):  # type: ignore[no-untyped-def]
        if isinstance(node, dict):
            if node.get("type") == "integer":
                assert "maximum" in node or "exclusiveMaximum" in node or "enum" in node, where
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(model_schema(nnkit.get_registry()), "schema")


def test_errors_users_can_act_on(tmp_path: Path, capsys) -> None:
    from nnkit.cli import main

    spiral = (EXAMPLES / "spiral.toml").read_text()
    cases = {
        "field.toml": (spiral.replace("epochs = 300", "epoch = 300"),
                       "train.epoch: unknown field 'epoch'; did you mean 'epochs'?"),
        "section.toml": (spiral.replace("[train]", "[trian]"), "trian: unknown section 'trian'; did you mean 'train'"),
        "syntax.toml": ("a = {b = 1\n", "syntax.toml:1:11: invalid TOML: Unclosed inline table"),
        "batch.toml": (spiral.replace("batch_size = 30", "batch_size = 1000"),
                       "train.batch_size 1000 is larger than the 300 training samples"),
        "graph.toml": ('inputs = { a = { shape = [2] }, b = { shape = [2] } }\n[[nodes]]\ntype = "Affine"\nunits = 3\n'
                       'inputs = ["a"]\n[[nodes]]\ntype = "Add"\ninputs = ["affine1", "bb"]\n',
                       "graph.toml:6:3: the 2nd node (Add, unnamed) takes input 'bb', which is no node or network "
                       "input; did you mean 'b'?"),
    }
    if pytest.importorskip("yaml"):
        cases["syntax.yaml"] = ("nodes: [1, 2\nb: 3\n", "syntax.yaml:2:2: invalid YAML: did not find expected")
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["validate", str(tmp_path / name)]) == 1, name
        assert message in capsys.readouterr().err, name
