"""Reliability: plugins of every kind in the lock, inference that needs only the layers'
plugins, broken plugins named as broken, optimizer state layouts, warnings once, hostile
knobs and sizes, data paths a checkpoint may not lead out of."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

import numpy as np
import pytest

import nnkit
from nnkit.checkpoint.container import CheckpointFile
from nnkit.cli import main
from nnkit.data.builtin import Spiral, SpiralConfig
from nnkit.metrics import Accuracy, AccuracyConfig
from nnkit.optim.optimizers import SGD, SGDConfig
from nnkit.plugins import PluginWarning, load_registry
from nnkit.training.callbacks import Callback

from .conftest import EXAMPLES


class LionConfig(SGDConfig):
    type: Literal["Lion"] = "Lion"  # type: ignore[assignment]


class Lion(SGD):
    Config = LionConfig  # type: ignore[assignment]
    slots = ("m",)
    state_version: ClassVar[int] = 1

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.iterations += 1
        for param, grad, state in zip(params, grads, self._ensure_state(params)):
            state["m"] *= 0.9
            state["m"] += grad
            param -= self.config.lr * np.sign(state["m"])


class RingsConfig(SpiralConfig):
    type: Literal["rings"] = "rings"  # type: ignore[assignment]


class Rings(Spiral):
    Config = RingsConfig  # type: ignore[assignment]


class HitsConfig(AccuracyConfig):
    type: Literal["hits"] = "hits"  # type: ignore[assignment]


class Hits(Accuracy):
    Config = HitsConfig  # type: ignore[assignment]


class NoteConfig(nnkit.Config):
    type: Literal["note"] = "note"


class Note(Callback):
    Config = NoteConfig

    def __init__(self, config: Any) -> None:
        self.config = config


def extras() -> nnkit.Registry:
    plugin = SimpleNamespace(register_optimizers=nnkit.hookimpl(lambda register: register(Lion)),
                             register_datasets=nnkit.hookimpl(lambda register: register(Rings)),
                             register_metrics=nnkit.hookimpl(lambda register: register(Hits)),
                             register_callbacks=nnkit.hookimpl(lambda register: register(Note)))
    return load_registry([(nnkit.PluginInfo("extras", "nnkit-extras", "2.1.0"), plugin)], entry_points=False)


RECIPE = {"inputs": {"x": {"shape": [2]}}, "nodes": [{"type": "Affine", "units": 3}],
          "loss": {"type": "SoftmaxWithLoss"}, "optimizer": {"type": "Lion", "lr": 0.01},
          "data": {"type": "rings", "points_per_class": 10}, "metrics": ["hits"], "callbacks": [{"type": "note"}],
          "train": {"epochs": 2, "batch_size": 10}}


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    registry = extras()
    model = nnkit.Model.from_spec(RECIPE, registry=registry)
    model.fit(verbose=False)
    model.save(tmp_path / "lion.nnk")
    return tmp_path / "lion.nnk"


def test_the_lock_names_every_component_kind(saved: Path) -> None:
    with CheckpointFile(saved) as opened:
        components = opened.header.components
    lock = {"distribution": "nnkit-extras", "version": "2.1.0"}
    assert components["optimizer"]["Lion"].model_dump() == lock
    assert components["dataset"]["rings"].model_dump() == lock
    assert components["metric"]["hits"].model_dump() == lock
    assert components["callback"]["note"].model_dump() == lock


def test_inference_needs_only_the_layers_plugins(saved: Path, capsys) -> None:
    x = np.zeros((4, 2))
    model = nnkit.load(saved, registry=load_registry(entry_points=False))  # without nnkit-extras
    assert model.predict(x).shape == (4, 3)
    capsys.readouterr()
    with pytest.raises(nnkit.TrainingError, match=r"to train it, optimizer type 'Lion', which no installed plugin "
                                                  r"provides; it was provided by nnkit-extras 2.1.0: pip install"):
        model.fit(epochs=1, verbose=False)
    with pytest.raises(nnkit.TrainingError, match="to save it"):
        model.save(saved.with_name("again.nnk"))
    with pytest.raises(nnkit.DataError, match=r"its data: dataset type 'rings'.*pip install nnkit-extras"):
        model.evaluate()
    scores = model.evaluate(x, np.zeros(4, dtype=int))  # with data given, the loss scores; 'hits' is left out
    assert set(scores) == {"loss", "samples"}


def test_a_broken_plugin_is_named_as_broken(saved: Path) -> None:
    registry = load_registry(entry_points=False)
    registry.plugins.append(nnkit.PluginInfo("extras", "nnkit-extras", "2.1.0",
                                             errors=["cannot import nnkit_extras: SyntaxError: bad"]))
    model = nnkit.load(saved, registry=registry)
    with pytest.raises(nnkit.TrainingError, match="nnkit-extras 2.1.0, which is installed but failed to load "
                                                  r"\(cannot import nnkit_extras: SyntaxError: bad\)"):
        model.fit(epochs=1, verbose=False)


def test_an_optimizer_state_layout_change_names_the_versions(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Lion, "state_version", 2)
    with pytest.raises(nnkit.CheckpointError, match="optimizer 'Lion': its state was written by nnkit-extras 2.1.0 "
                                                    "in layout 1; nnkit-extras 2.1.0 uses layout 2"):
        nnkit.load(saved, registry=extras())


def test_version_warnings_come_once_per_load(tmp_path: Path) -> None:
    spec = nnkit.validate_spec({"inputs": {"x": {"shape": [2]}},
                                "nodes": [{"type": "Affine", "units": 3}, {"type": "Affine", "units": 3}]})
    nnkit.save(nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0)), tmp_path / "a.nnk")
    from nnkit.checkpoint import container

    with CheckpointFile(tmp_path / "a.nnk") as opened:
        header = opened.header.model_dump(exclude={"arrays"})
        arrays = {n: np.array(opened.array(n)) for n in opened.names()}
    header["plugins"]["Affine"] = {"distribution": "nnkit-affine", "version": "1.0"}  # provided by another
    container.write(tmp_path / "b.nnk", header, arrays)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nnkit.load(tmp_path / "b.nnk")
    assert len([w for w in caught if "layer type 'Affine'" in str(w.message)]) == 1


def test_unknown_names_in_the_plugin_variables_are_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNKIT_DISABLE_PLUGINS", "rnnn")
    with pytest.warns(PluginWarning, match="NNKIT_DISABLE_PLUGINS names 'rnnn', which is no installed plugin"):
        load_registry()


def test_unknown_types_everywhere_speak_nnkits_language() -> None:
    for section, value, kind in (("validation", {"data": {"type": "spirall"}}, "dataset"),
                                 ("callbacks", [{"type": "early_stoping"}], "callback")):
        with pytest.raises(nnkit.ModelFileError, match=f"unknown {kind} type .*did you mean"):
            nnkit.validate_spec({"nodes": [{"type": "ReLU"}], section: value})


def test_malformed_knobs_are_one_line_errors(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("NNKIT_MAX_PARAMS", "garbage")
    assert main(["validate", str(EXAMPLES / "spiral.toml")]) == 1
    assert capsys.readouterr().err == "nnkit: error: NNKIT_MAX_PARAMS='garbage': must be a whole number, e.g. " \
                                      "1000000000\n"
    monkeypatch.setenv("NNKIT_MAX_PARAMS", "-5")
    assert main(["validate", str(EXAMPLES / "spiral.toml")]) == 1
    assert "must be at least 1" in capsys.readouterr().err


def test_activations_are_estimated_before_anything_is_allocated(tmp_path: Path, monkeypatch, capsys) -> None:
    huge_batch = tmp_path / "batch.toml"
    huge_batch.write_text((EXAMPLES / "spiral.toml").read_text().replace("batch_size = 30", "batch_size = 100000000")
                          .replace("points_per_class", "points_per_class = 2000000 #"))
    chain = tmp_path / "repeat.toml"
    chain.write_text('inputs = { x = { shape = [1, 4] } }\n[[nodes]]\ntype = "Repeat"\nrepeats = 100000\n'
                     '[[nodes]]\ntype = "Repeat"\nrepeats = 100000\naxis = 1\n')
    assert main(["validate", str(chain)]) == 1
    assert "a training step with batch 32 needs about" in capsys.readouterr().err
    model = nnkit.Model.from_file(chain)
    with pytest.raises(nnkit.ModelFileError, match="NNKIT_MAX_ACTIVATION_BYTES"):
        model.predict(np.zeros((1, 1, 4)))
    monkeypatch.setenv("NNKIT_MAX_ACTIVATION_BYTES", "1000")
    spiral = nnkit.Model.from_file(EXAMPLES / "spiral.toml")
    with pytest.raises(nnkit.ModelFileError, match=r"a training step with batch 30 needs about .* the cap is"):
        spiral.fit(epochs=1, verbose=False)


def test_a_checkpoints_data_paths_stay_in_its_folder(tmp_path: Path, capsys) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    x = np.random.default_rng(0).standard_normal((30, 2))
    np.savez(outside / "data.npz", x=x, t=np.arange(30) % 3)
    model_file = outside / "m.toml"
    model_file.write_text('[[nodes]]\ntype = "Affine"\nunits = 3\n[loss]\ntype = "SoftmaxWithLoss"\n'
                          f'[data]\ntype = "file"\npath = "{outside / "data.npz"}"\n[train]\nbatch_size = 10\n'
                          "epochs = 1\n")
    run = tmp_path / "run"
    run.mkdir()
    assert main(["train", str(model_file), "--quiet", "--out", str(run / "m.nnk")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run / "m.nnk")]) == 1  # the stored absolute path leads out of run/
    assert "leads outside the checkpoint's folder" in capsys.readouterr().err
    np.savez(tmp_path / "mine.npz", x=x, t=np.arange(30) % 3)
    assert main(["evaluate", str(run / "m.nnk"), "--data", str(tmp_path / "mine.npz")]) == 0  # data given: fine
    # The model file given again is the user's choice: its paths are read.
    assert main(["train", str(model_file), "--resume", str(run / "m.nnk"), "--epochs", "2", "--quiet"]) == 0


def test_inspect_escapes_control_characters(saved: Path, tmp_path: Path, capsys) -> None:
    from nnkit.checkpoint import container

    with CheckpointFile(saved) as opened:
        header = opened.header.model_dump(exclude={"arrays"})
        arrays = {n: np.array(opened.array(n)) for n in opened.names()}
    header["created"] = "\x1b[2J\x1b[H2026\nfake line"
    container.write(tmp_path / "esc.nnk", header, arrays)
    assert main(["inspect", str(tmp_path / "esc.nnk")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J\\x1b[H2026\\nfake line" in out


def test_a_header_may_not_repeat_a_key(saved: Path, tmp_path: Path) -> None:
    import msgpack

    from nnkit.checkpoint.container import MAGIC

    raw = saved.read_bytes()
    body = raw[len(MAGIC):]
    packed_key = msgpack.packb("nnkit_version")
    forged = body.replace(packed_key, msgpack.packb("format_version"), 1)  # a second 'format_version' key
    (tmp_path / "dup.nnk").write_bytes(MAGIC + forged)
    with pytest.raises(nnkit.CheckpointError, match="duplicate key 'format_version'"):
        nnkit.inspect(tmp_path / "dup.nnk")
