"""Networks built from specs: shape inference, graph order, whole-network gradients."""

from __future__ import annotations

import numpy as np
import pytest

import nnkit
from nnkit.graph import Network
from nnkit.modelfile import validate_spec
from nnkit.testing import numeric_gradient, relative_error


def build(spec: dict, seed: int = 0) -> Network:
    return Network(validate_spec(spec), rng=np.random.default_rng(seed))


def test_shapes_are_inferred_from_the_inputs() -> None:
    net = build({"inputs": {"x": {"shape": [5]}},
                 "nodes": [{"name": "fc1", "type": "Affine", "units": 7}, {"type": "Tanh"},
                           {"name": "fc2", "type": "Affine", "units": 3}]})
    assert net.params["fc1.W"].shape == (5, 7)
    assert net.params["fc2.W"].shape == (7, 3)
    assert net.output_shape == (3,)
    assert net.forward(np.ones((4, 5))).shape == (4, 3)
    assert list(net.params) == list(net.grads) == ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]


def test_params_mapping_shares_the_layers_arrays() -> None:
    net = build({"inputs": {"x": {"shape": [2]}}, "nodes": [{"name": "fc", "type": "Affine", "units": 2}]})
    assert net.params["fc.W"] is net.layers["fc"].params[0]
    assert net.grads["fc.b"] is net.layers["fc"].grads[1]


def test_shape_mismatch_names_the_node_and_shapes() -> None:
    with pytest.raises(nnkit.ModelFileError, match=r"node 'sm' \(SoftmaxWithLoss\).*x \(\).*at least 2 classes"):
        build({"inputs": {"x": {"shape": []}}, "nodes": [{"type": "ReLU"}],
               "loss": {"name": "sm", "type": "SoftmaxWithLoss", "inputs": ["x"]}})


def test_wrong_input_width_is_a_data_error() -> None:
    net = build({"inputs": {"x": {"shape": [2]}}, "nodes": [{"type": "Affine", "units": 2}]})
    with pytest.raises(nnkit.DataError, match=r"expects \(N, 2\)"):
        net.forward(np.ones((3, 4)))


def test_whole_network_gradient_through_a_dag() -> None:
    """Repeat → Affine → Sum, plus a skip branch summed in at the end, through the loss."""
    spec = {
        "inputs": {"x": {"shape": [1, 3]}},
        "nodes": [
            {"name": "rep", "type": "Repeat", "repeats": 4},
            {"name": "fc", "type": "Affine", "units": 3},
            {"name": "act", "type": "Sigmoid"},
            {"name": "sum", "type": "Sum"},
            {"name": "head", "type": "Affine", "units": 3, "inputs": ["sum"]},
        ],
        "loss": {"type": "SoftmaxWithLoss"},
    }
    net = build(spec)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((5, 1, 3)), rng.integers(0, 3, size=(5, 1))
    net.loss(x, t)
    net.backward()
    for name, param in net.params.items():
        numeric = numeric_gradient(lambda: net.loss(x, t), param)
        assert relative_error(net.grads[name], numeric) < 1e-6, name


def test_a_branch_used_twice_sums_its_gradients() -> None:
    spec = {
        "inputs": {"x": {"shape": [3]}},
        "nodes": [
            {"name": "fc", "type": "Affine", "units": 4},
            {"name": "a", "type": "Tanh", "inputs": ["fc"]},
            {"name": "b", "type": "Sigmoid", "inputs": ["fc"]},
            {"name": "outa", "type": "Affine", "units": 2, "inputs": ["a"]},
        ],
        "outputs": ["outa"],
        "loss": {"type": "SoftmaxWithLoss"},
    }
    net = build(spec)
    x, t = np.random.default_rng(2).standard_normal((4, 3)), np.array([0, 1, 1, 0])
    net.loss(x, t)
    net.backward()
    for name, param in net.params.items():
        assert relative_error(net.grads[name], numeric_gradient(lambda: net.loss(x, t), param)) < 1e-6, name
