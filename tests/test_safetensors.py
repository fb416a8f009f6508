"""safetensors in and out: params (and grads) by stable name, the spec and plugin lock in
the metadata, and the strict report of a checkpoint when names do not fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.interop.safetensors import read_metadata

from .conftest import EXAMPLES

safetensors_numpy = pytest.importorskip("safetensors.numpy")
SPIRAL = EXAMPLES / "spiral.toml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[nnkit.Model, Path]:
    folder = tmp_path_factory.mktemp("safetensors")
    model = nnkit.Model.from_file(SPIRAL, epochs=5)
    model.fit(verbose=False)
    return model, model.export(folder / "spiral.safetensors", grads=True)


def test_round_trip_gives_bit_identical_predictions_and_grads(trained: tuple[nnkit.Model, Path]) -> None:
    model, path = trained
    again = nnkit.Model.from_file(SPIRAL, weights=path)
    x = model.data.x
    assert np.array_equal(again.predict(x), model.predict(x))
    fresh = nnkit.Model.from_file(SPIRAL)
    report = nnkit.load_into(fresh, path)  # grads too: the file holds them
    assert report.ok
    for name, grad in model.network.grads.items():
        assert np.array_equal(fresh.network.grads[name], grad)


def test_the_file_holds_stable_names_and_the_spec(trained: tuple[nnkit.Model, Path]) -> None:
    model, path = trained
    tensors = safetensors_numpy.load_file(str(path))
    assert set(tensors) == set(model.network.params) | {f"{n}.grad" for n in model.network.params}
    assert np.array_equal(tensors["fc1.W"], model.network.params["fc1.W"])
    metadata = read_metadata(path)
    assert json.loads(metadata["nnkit.spec"]) == model.spec.to_dict()
    assert json.loads(metadata["nnkit.plugins"])["Affine"]["distribution"] == nnkit.version.DISTRIBUTION
    assert metadata["nnkit.version"] == nnkit.__version__


def test_a_params_only_file_loads_and_leaves_grads_alone(trained: tuple[nnkit.Model, Path], tmp_path: Path) -> None:
    model, _ = trained
    path = model.export(tmp_path / "params.safetensors")
    assert not any(k.endswith(".grad") for k in safetensors_numpy.load_file(str(path)))
    fresh = nnkit.Model.from_file(SPIRAL)
    assert nnkit.load_into(fresh, path).ok
    assert all(not g.any() for g in fresh.network.grads.values())


@pytest.mark.parametrize(("tensors", "message"), [
    ({"fc1.W": np.zeros((2, 10)), "fc1.b": np.zeros(10), "fc2.W": np.zeros((10, 3))}, "missing: params/fc2.b"),
    ({"fc1.W": np.zeros((2, 10)), "fc1.b": np.zeros(10), "fc2.W": np.zeros((10, 3)), "fc2.b": np.zeros(3),
      "fc3.W": np.zeros(1)}, "unexpected: params/fc3.W"),
    ({"fc1.W": np.zeros((3, 10)), "fc1.b": np.zeros(10), "fc2.W": np.zeros((10, 3)), "fc2.b": np.zeros(3)},
     r"mismatched: params/fc1.W: file float64 \(3, 10\) vs network float64 \(2, 10\)"),
    ({"fc1.W": np.zeros((2, 10), np.float32), "fc1.b": np.zeros(10), "fc2.W": np.zeros((10, 3)),
      "fc2.b": np.zeros(3)}, "mismatched: params/fc1.W: file float32"),
    ({"fc1.W": np.zeros((2, 10), np.int32)}, "tensor 'fc1.W' is I32; nnkit params are F64 or F32"),
])
def test_names_that_do_not_fit_are_one_clear_error_and_change_nothing(tensors: dict, message: str,
                                                                       tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    safetensors_numpy.save_file(tensors, str(path))
    model = nnkit.Model.from_file(SPIRAL)
    before = {k: v.copy() for k, v in model.network.params.items()}
    with pytest.raises(nnkit.CheckpointError, match=f"other.safetensors: .*{message}"):
        nnkit.load_into(model, path)
    assert all(np.array_equal(before[k], v) for k, v in model.network.params.items())
    with pytest.raises(nnkit.CheckpointError, match=message):
        nnkit.Model.from_file(SPIRAL, weights=path)


def test_not_strict_copies_what_fits(tmp_path: Path) -> None:
    path = tmp_path / "part.safetensors"
    safetensors_numpy.save_file({"fc1.b": np.full(10, 0.5), "extra.W": np.zeros(2)}, str(path))
    model = nnkit.Model.from_file(SPIRAL)
    report = nnkit.load_into(model, path, strict=False)
    assert report.unexpected == ["params/extra.W"] and "params/fc1.W" in report.missing
    assert np.all(model.network.params["fc1.b"] == 0.5)


@pytest.mark.parametrize("content", [b"", b"garbage that is no safetensors file", b"\xff" * 8 + b"{}"])
def test_a_damaged_file_is_a_clear_error(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(nnkit.CheckpointError, match="bad.safetensors: "):
        nnkit.load_into(nnkit.Model.from_file(SPIRAL), path)


def test_a_folder_or_missing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.safetensors").mkdir()
    model = nnkit.Model.from_file(SPIRAL)
    with pytest.raises(nnkit.CheckpointError, match="dir.safetensors: is a folder"):
        nnkit.load_into(model, tmp_path / "dir.safetensors")
    with pytest.raises(nnkit.CheckpointError, match="none.safetensors: no such file"):
        nnkit.load_into(model, tmp_path / "none.safetensors")


def test_cli_export_safetensors_with_grads(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "nnkit"]
    subprocess.run([*cli, "train", str(SPIRAL), "--epochs", "2", "-q", "-o", "s.nnk"], check=True, cwd=tmp_path,
                   capture_output=True)
    done = subprocess.run([*cli, "export", "s.nnk", "-o", "w.safetensors", "--grads", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["result"] == {"wrote": "w.safetensors", "format": "safetensors", "grads": True}
    stored = nnkit.load(tmp_path / "s.nnk")
    tensors = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))
    for name, param in stored.network.params.items():
        assert np.array_equal(tensors[name], param) and np.array_equal(tensors[name + ".grad"],
                                                                        stored.network.grads[name])
    refused = subprocess.run([*cli, "export", "s.nnk", "--format", "onnx", "--grads"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stderr.startswith("nnkit: error: an ONNX export holds the inference")
