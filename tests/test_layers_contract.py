"""The contract, gradient and round-trip checks over every registered layer, built-in or plugin."""

from __future__ import annotations

import pytest

import nnkit
from nnkit.testing import check_layer

REGISTRY = nnkit.get_registry()
CASES = [
    pytest.param(REGISTRY.get("layer", name).cls, config, shapes, id=f"{name}-{i}")
    for name in REGISTRY.names("layer")
    for i, (config, shapes) in enumerate(REGISTRY.get("layer", name).cls.examples or [(None, None)])
]


@pytest.mark.parametrize(("layer_cls", "config", "shapes"), CASES)
def test_every_registered_layer_passes_the_contract(layer_cls, config, shapes) -> None:
    assert config is not None, f"{layer_cls.__name__} declares no `examples` for the contract tests"
    check_layer(layer_cls, config, shapes)


def test_registry_has_the_built_in_layers() -> None:
    expected = {"MatMul", "Affine", "Sigmoid", "ReLU", "Tanh", "Softmax", "SoftmaxWithLoss",
                "SigmoidWithLoss", "Repeat", "Sum", "Dropout", "Embedding"}
    assert expected <= set(REGISTRY.names("layer"))
