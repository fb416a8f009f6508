"""The plugin is installed, nnkit sees it, and Swish passes nnkit's layer contract."""

from __future__ import annotations

import json

import numpy as np
from nnkit_plugin_template import Swish

import nnkit
from nnkit.cli import main
from nnkit.testing import check_layer


def test_nnkit_plugins_lists_it(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["result"]["plugins"]
    plugin = next(p for p in listed if p["name"] == "template")
    assert plugin["distribution"] == "nnkit-plugin-template" and plugin["layers"] == ["Swish"]
    assert plugin["error"] is None


def test_swish_passes_the_layer_contract() -> None:
    for config, shapes in Swish.examples:
        check_layer(Swish, config, shapes)


def test_swish_from_a_model_file_spec() -> None:
    spec = nnkit.validate_spec({"inputs": {"x": {"shape": [3]}}, "nodes": [{"type": "Swish", "beta": 1.0}]})
    net = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    x = np.array([[-1.0, 0.0, 2.0]])
    assert np.allclose(net.forward(x), x / (1 + np.exp(-x)))
