"""Plugin loading: built-ins through the same hooks, fault isolation, provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
import pytest

import nnkit
from nnkit import plugins
from nnkit.layers.activations import Tanh, TanhConfig
from nnkit.metrics import accuracy
from nnkit.plugins import PluginWarning, load_registry
from nnkit.training.runner import Runner

from .conftest import EXAMPLES


class ScaledTanhConfig(TanhConfig):
    type: Literal["ScaledTanh"] = "ScaledTanh"  # type: ignore[assignment]


class ScaledTanh(Tanh):
    """2 * tanh(x): a third-party layer for these tests."""

    Config = ScaledTanhConfig
    examples = [({}, [(3,)])]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        return 2.0 * super().forward(x, train)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return super().backward(2.0 * dy)


def plugin(**hooks) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    return SimpleNamespace(**{name: nnkit.hookimpl(fn) for name, fn in hooks.items()})


def info(name: str = "scaled") -> nnkit.PluginInfo:
    return nnkit.PluginInfo(name, "nnkit-scaled", "1.2.3")


def test_built_ins_register_through_the_hooks() -> None:
    registry = load_registry(entry_points=False)
    names = [p.name for p in registry.plugins]
    assert names == ["nnkit.layers", "nnkit.optimizers", "nnkit.datasets", "nnkit.metrics", "nnkit.callbacks"]
    layers = registry.plugins[0]
    assert layers.distribution == "nnkit-numpy" and "Affine" in layers.provides["layer"]
    assert registry.get("layer", "Affine").plugin is layers


def test_a_third_party_layer_is_usable_from_a_model_file(use_plugins) -> None:
    use_plugins((info(), plugin(register_layers=lambda register: register(ScaledTanh))))
    spec = nnkit.validate_spec({"inputs": {"x": {"shape": [3]}}, "nodes": [{"type": "ScaledTanh"}]})
    net = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    assert np.allclose(net.forward(np.ones((1, 3))), 2 * np.tanh(1.0))
    entry = nnkit.get_registry().get("layer", "ScaledTanh")
    assert (entry.plugin.distribution, entry.plugin.version) == ("nnkit-scaled", "1.2.3")


def test_a_plugin_whose_hook_raises_is_isolated() -> None:
    def broken(register):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    message = r"'broken' \(nnkit-scaled 1.2.3\): register_layers raised RuntimeError: boom"
    with pytest.warns(PluginWarning, match=message):
        registry = load_registry(extra=[(info("broken"), plugin(register_layers=broken))], entry_points=False)
    assert "Affine" in registry.names("layer")
    assert registry.plugins[-1].errors


def test_registering_something_that_is_not_a_layer_is_recorded() -> None:
    with pytest.warns(PluginWarning, match="is not a subclass of nnkit.Layer"):
        registry = load_registry(
            extra=[(info("odd"), plugin(register_layers=lambda register: register(object)))], entry_points=False)
    assert registry.plugins[-1].to_dict()["error"]


def test_a_plugin_may_not_replace_a_built_in() -> None:
    class Impostor(ScaledTanh):
        Config = type("AffineLike", (TanhConfig,), {"__annotations__": {"type": Literal["Affine"]}, "type": "Affine"})

    with pytest.warns(PluginWarning, match="'Affine' is already provided by nnkit"):
        registry = load_registry(
            extra=[(info("impostor"), plugin(register_layers=lambda register: register(Impostor)))],
            entry_points=False)
    assert registry.get("layer", "Affine").plugin.distribution == "nnkit-numpy"


def test_an_entry_point_that_fails_to_import_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = metadata.EntryPoint(name="ghost", value="nnkit_no_such_module:plugin", group="nnkit")
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [broken])
    with pytest.warns(PluginWarning, match="'ghost'.*cannot import nnkit_no_such_module:plugin"):
        registry = load_registry()
    assert registry.plugins[-1].name == "ghost"
    assert "ModuleNotFoundError" in registry.plugins[-1].to_dict()["error"]
    assert "Affine" in registry.names("layer")


def test_disable_and_load_only_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [metadata.EntryPoint(name=n, value="nnkit_no_such_module:plugin", group="nnkit") for n in ("a", "b")]
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: eps)
    monkeypatch.setenv("NNKIT_DISABLE_PLUGINS", "a,b")
    assert [p.name for p in load_registry().plugins][5:] == []
    monkeypatch.delenv("NNKIT_DISABLE_PLUGINS")
    monkeypatch.setenv("NNKIT_LOAD_PLUGINS", "b")
    with pytest.warns(PluginWarning):
        assert [p.name for p in load_registry().plugins][5:] == ["b"]


def install_fake_plugin(site: Path, dist: str, module: str, source: str) -> None:
    """A plugin 'installed' as pip would leave it: a module and a dist-info with an entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[nnkit]\n{module} = {module}\n")


def test_broken_installed_plugins_leave_every_command_working(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_plugin(site, "nnkit-broken-import", "broken_import", "raise RuntimeError('no GPU here')\n")
    install_fake_plugin(site, "nnkit-broken-hook", "broken_hook", textwrap.dedent("""
        import nnkit

        @nnkit.hookimpl
        def register_layers(register):
            raise ValueError("half-written plugin")
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    def nnkit_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nnkit.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, check=False)

    listed = nnkit_cli("plugins")
    assert listed.returncode == 0, listed.stderr
    assert "broken_import  (nnkit-broken-import 0.1.0)" in listed.stdout
    assert "error: cannot import broken_import: RuntimeError: no GPU here" in listed.stdout
    assert "error: register_layers raised ValueError: half-written plugin" in listed.stdout
    assert "nnkit: warning: nnkit plugin 'broken_import' (nnkit-broken-import 0.1.0)" in listed.stderr
    as_json = {p["name"]: p for p in json.loads(nnkit_cli("plugins", "--json").stdout)["result"]["plugins"]}
    assert as_json["broken_hook"]["error"] and as_json["nnkit.layers"]["error"] is None

    trained = nnkit_cli("train", str(EXAMPLES / "spiral.toml"), "--epochs", "1", "--quiet")
    assert trained.returncode == 0 and trained.stdout.startswith("final: loss")
    assert "Traceback" not in trained.stderr

    quiet = subprocess.run([sys.executable, "-m", "nnkit.cli", "plugins"], capture_output=True, text=True,
                           env={**env, "NNKIT_DISABLE_PLUGINS": "broken_import,broken_hook"}, check=False)
    assert "broken" not in quiet.stdout and quiet.stderr == ""


class HalfSGDConfig(nnkit.OptimizerConfig):
    type: Literal["HalfSGD"] = "HalfSGD"


class HalfSGD(nnkit.Optimizer):
    """param -= lr/2 * grad: a third-party optimizer for this test."""

    Config = HalfSGDConfig

    def step(self, param, grad, state, lr):  # type: ignore[no-untyped-def]
        param -= 0.5 * lr * grad


def test_a_plugin_optimizer_and_metric_are_usable_from_a_model_file(use_plugins) -> None:
    class ErrorRateConfig(nnkit.Config):
        type: Literal["error_rate"] = "error_rate"

    class ErrorRate(nnkit.Metric):
        Config = ErrorRateConfig
        greater_is_better = False

        def __call__(self, probabilities, t):  # type: ignore[no-untyped-def]
            return 1.0 - accuracy(probabilities, t)

    use_plugins((info(), plugin(register_optimizers=lambda register: register(HalfSGD),
                                register_metrics=lambda register: register(ErrorRate))))
    spec = nnkit.read_model_file(EXAMPLES / "spiral.toml").to_dict()
    spec["optimizer"] = {"type": "HalfSGD", "lr": 2.0}
    spec["metrics"] = ["accuracy", "error_rate"]
    runner = Runner.from_spec(nnkit.validate_spec(spec))
    runner.fit(epochs=300)
    result = runner.evaluate()
    assert result["accuracy"] >= 0.96 and result["error_rate"] == pytest.approx(1 - result["accuracy"])
    assert set(runner.history[-1]) == {"epoch", "loss", "accuracy", "error_rate",
                                       "val_loss", "val_accuracy", "val_error_rate"}
