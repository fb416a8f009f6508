"""Plugin loading: built-ins through the same hooks, fault isolation, provenance."""

from __future__ import annotations

from importlib import metadata
from types import SimpleNamespace
from typing import Literal

import numpy as np
import pytest

import nnkit
from nnkit import plugins
from nnkit.layers.activations import Tanh, TanhConfig
from nnkit.plugins import PluginWarning, load_registry


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
    assert names == ["nnkit.layers", "nnkit.optimizers", "nnkit.datasets"]
    layers = registry.plugins[0]
    assert layers.distribution == "nnkit" and "Affine" in layers.provides["layer"]
    assert registry.get("layer", "Affine").plugin is layers


def test_a_third_party_layer_is_usable_from_a_model_file(use_plugins) -> None:
    use_plugins((info(), plugin(register_layers=lambda register: register(ScaledTanh))))
    spec = nnkit.validate_spec({"inputs": {"x": {"shape": [3]}}, "nodes": [{"type": "ScaledTanh"}]})
    net = nnkit.Network(spec, rng=np.random.default_rng(0))
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
    assert registry.get("layer", "Affine").plugin.distribution == "nnkit"


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
    assert [p.name for p in load_registry().plugins][3:] == []
    monkeypatch.delenv("NNKIT_DISABLE_PLUGINS")
    monkeypatch.setenv("NNKIT_LOAD_PLUGINS", "b")
    with pytest.warns(PluginWarning):
        assert [p.name for p in load_registry().plugins][3:] == ["b"]
