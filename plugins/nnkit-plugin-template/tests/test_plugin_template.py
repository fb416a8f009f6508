"""The plugin is installed, nnkit sees it, and Swish passes nnkit's layer contract."""

from __future__ import annotations

import numpy as np
from nnkit_plugin_template import Swish

import nnkit
from nnkit.testing import check_layer


def test_nnkit_lists_the_plugin() -> None:
    plugin = next(p for p in nnkit.get_registry().plugins if p.name == "template")
    assert plugin.distribution == "nnkit-plugin-template" and plugin.provides["layer"] == ["Swish"]
    assert not plugin.errors


def test_swish_passes_the_layer_contract() -> None:
    for config, shapes in Swish.examples:
        check_layer(Swish, config, shapes)


def test_swish_from_a_model_file_spec() -> None:
    spec = nnkit.validate_spec({"inputs": {"x": {"shape": [3]}}, "nodes": [{"type": "Swish", "beta": 1.0}]})
    net = nnkit.Network(spec, rng=np.random.default_rng(0))
    x = np.array([[-1.0, 0.0, 2.0]])
    assert np.allclose(net.forward(x), x / (1 + np.exp(-x)))
