"""Networks built from specs: shape inference, graph order, whole-network gradients."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

import nnkit
from nnkit import validate_spec
from nnkit.network import Network
from nnkit.testing import numeric_gradient, relative_error


def build(spec: dict, seed: int = 0) -> Network:
    return Network.from_spec(validate_spec(spec), nnkit.get_registry(), rng=np.random.default_rng(seed))


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
        numeric = numeric_gradient(lambda: net.loss(x, t).loss, param)
        assert relative_error(net.grads[name], numeric) < 1e-6, name


def test_a_branch_used_twice_sums_its_gradients() -> None:
    spec = {
        "inputs": {"x": {"shape": [3]}},
        "nodes": [
            {"name": "fc", "type": "Affine", "units": 4},
            {"name": "a", "type": "Tanh", "inputs": ["fc"]},
            {"name": "b", "type": "Sigmoid", "inputs": ["fc"]},
            {"name": "ab", "type": "Concat", "inputs": ["a", "b"]},
            {"name": "outa", "type": "Affine", "units": 2, "inputs": ["ab"]},
        ],
        "outputs": ["outa"],
        "loss": {"type": "SoftmaxWithLoss"},
    }
    net = build(spec)
    x, t = np.random.default_rng(2).standard_normal((4, 3)), np.array([0, 1, 1, 0])
    net.loss(x, t)
    net.backward()
    for name, param in net.params.items():
        assert relative_error(net.grads[name], numeric_gradient(lambda: net.loss(x, t).loss, param)) < 1e-6, name


def check_network_gradients(net: Network, x, t) -> None:  # type: ignore[no-untyped-def]
    net.loss(x, t)
    net.backward()
    for name, param in net.params.items():
        numeric = numeric_gradient(lambda: net.loss(x, t).loss, param)
        assert relative_error(net.grads[name], numeric) < 1e-6, name


CBOW_LIKE = {
    "inputs": {"c0": {"shape": [], "dtype": "int"}, "c1": {"shape": [], "dtype": "int"}},
    "nodes": [
        {"name": "emb0", "type": "Embedding", "vocab_size": 7, "units": 4, "inputs": ["c0"], "init": "xavier"},
        {"name": "emb1", "type": "Embedding", "vocab_size": 7, "units": 4, "inputs": ["c1"],
         "share": {"W": "emb0.W"}},
        {"name": "h", "type": "Mean", "inputs": ["emb0", "emb1"]},
        {"name": "out", "type": "MatMul", "units": 7, "tie": {"W": "emb0.W"}},
    ],
    "loss": {"type": "SoftmaxWithLoss"},
}


def test_shared_and_tied_params_are_one_array_with_summed_grads() -> None:
    net = build(CBOW_LIKE)
    assert list(net.params) == ["emb0.W"]  # emb1.W and out.W are emb0.W
    W = net.params["emb0.W"]
    assert net.layers["emb1"].params[0] is W
    assert net.layers["out"].params[0].base is W and net.layers["out"].params[0].shape == (4, 7)
    rng = np.random.default_rng(3)
    x = {"c0": rng.integers(0, 7, size=5), "c1": rng.integers(0, 7, size=5)}
    check_network_gradients(net, x, rng.integers(0, 7, size=5))


def test_sharing_survives_a_checkpoint(tmp_path) -> None:
    net = build(CBOW_LIKE)
    net.params["emb0.W"][...] = np.arange(28.0).reshape(7, 4)
    nnkit.save(net, tmp_path / "c.nnk")
    for mmap in (False, True):
        loaded = nnkit.load(tmp_path / "c.nnk", mmap=mmap).network
        assert list(loaded.params) == ["emb0.W"]
        assert loaded.layers["emb1"].params[0] is loaded.params["emb0.W"]
        assert np.array_equal(loaded.layers["out"].params[0], np.arange(28.0).reshape(7, 4).T)
    with nnkit.Checkpoint(tmp_path / "c.nnk", nnkit.get_registry()) as ckpt:
        assert [n for n in ckpt.file.names() if n.startswith("params/")] == ["params/emb0.W"]


@pytest.mark.parametrize(("change", "message"), [
    ({"share": {"W": "emb0.V"}}, "node 'emb0' has no param 'V'"),
    ({"share": {"V": "emb0.W"}}, "node 'emb1' has no param 'V' to share"),
    ({"vocab_size": 8, "share": {"W": "emb0.W"}}, r"cannot share 'emb0.W': its W is \(8, 4\), emb0.W gives \(7, 4\)"),
    ({"share": {"W": "emb9.W"}}, "shares W with node 'emb9', which is no node"),
])
def test_bad_sharing_is_explained(change: dict, message: str) -> None:
    spec = {**CBOW_LIKE, "nodes": [CBOW_LIKE["nodes"][0], {**CBOW_LIKE["nodes"][1], **change},
                                   *CBOW_LIKE["nodes"][2:]]}
    with pytest.raises(nnkit.ModelFileError, match=message):
        build(spec)


def test_unused_and_misspelled_nodes_are_named() -> None:
    with pytest.raises(nnkit.ModelFileError, match="unused node.*'side'"):
        build({"inputs": {"x": {"shape": [2]}},
               "nodes": [{"name": "side", "type": "ReLU"}, {"name": "main", "type": "Tanh", "inputs": ["x"]}]})
    with pytest.raises(nnkit.ModelFileError, match="takes input 'fc_1', which is no node.*did you mean 'fc1'"):
        build({"inputs": {"x": {"shape": [2]}},
               "nodes": [{"name": "fc1", "type": "Affine", "units": 2}, {"type": "Tanh", "inputs": ["fc_1"]}]})


def test_several_inputs_and_outputs() -> None:
    net = build({
        "inputs": {"a": {"shape": [3]}, "b": {"shape": [2]}},
        "nodes": [{"name": "ab", "type": "Concat", "inputs": ["a", "b"]},
                  {"name": "y", "type": "Affine", "units": 2, "inputs": ["ab"]},
                  {"name": "z", "type": "Tanh", "inputs": ["y"]}],
        "outputs": ["y", "z"],
        "loss": {"type": "SoftmaxWithLoss", "inputs": ["y"]},
    })
    rng = np.random.default_rng(0)
    x = {"a": rng.standard_normal((4, 3)), "b": rng.standard_normal((4, 2))}
    assert net.forward(x).shape == (4, 2)
    both = net.forward_all(x)
    assert set(both) == {"y", "z"} and np.allclose(both["z"], np.tanh(both["y"]))
    check_network_gradients(net, x, np.array([0, 1, 1, 0]))


def test_the_param_cap_is_checked_before_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    huge = {"inputs": {"x": {"shape": [100_000]}}, "nodes": [{"type": "Affine", "units": 100_000}]}
    with pytest.raises(nnkit.ModelFileError, match="10,000,100,000 params, over the cap of 1,000,000,000"):
        build(huge)  # 80 GB in float64: refused at once, nothing allocated
    monkeypatch.setenv("NNKIT_MAX_PARAMS", "10")
    with pytest.raises(nnkit.ModelFileError, match="over the cap of 10"):
        build({"inputs": {"x": {"shape": [3]}}, "nodes": [{"type": "Affine", "units": 3}]})


def test_data_the_network_cannot_take_is_a_data_error() -> None:
    net = build({"inputs": {"x": {"shape": [], "dtype": "int"}},
                 "nodes": [{"name": "emb", "type": "Embedding", "vocab_size": 5, "units": 3},
                           {"type": "Affine", "units": 4}],
                 "loss": {"type": "SoftmaxWithLoss"}})
    with pytest.raises(nnkit.DataError, match=r"node 'emb' \(Embedding\): ids must be in \[0, 5\); got 7"):
        net.forward(np.array([1, 7]))
    with pytest.raises(nnkit.DataError, match=r"targets do not fit the loss.*whole numbers in \[0, 4\), got 0..9"):
        net.loss(np.array([1, 2]), np.array([0, 9]))


class Recording(nnkit.Layer):
    """Affine-like, recording what it sees: how often it is built, and whether it has arrays then."""

    class Config(nnkit.LayerConfig):
        type: Literal["Recording"] = "Recording"

    builds: list[int] = []

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        Recording.builds.append(len(self.params))  # arrays seen while declaring: none
        self.add_param("W", (in_shape[-1], 2), lambda rng, shape: rng.standard_normal(shape))
        return (2,)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        return x @ self.params[0]


def test_each_layer_is_built_once_and_gets_its_arrays_once(tmp_path) -> None:
    spec = validate_spec({"inputs": {"x": {"shape": [3]}}, "nodes": [{"name": "fc", "type": "Affine", "units": 2}],
                          "loss": {"type": "SoftmaxWithLoss"}})
    plan = nnkit.NetworkPlan(spec, nnkit.get_registry())
    layer = plan.layers["fc"]
    assert layer.params == [] and [d.shape for d in layer.declared] == [(3, 2), (2,)]  # declared only
    assert plan.param_count() == 8
    given = {"fc.W": np.ones((3, 2)), "fc.b": np.zeros(2)}
    net = nnkit.Network(plan, rng=np.random.default_rng(0), params=given)
    assert net.layers["fc"] is layer and layer.params[0] is given["fc.W"]  # adopted, not copied
    with pytest.raises(RuntimeError, match="attached once"):
        layer.attach(layer.params, layer.grads, np.random.default_rng(0))

    Recording.builds = []
    registry = nnkit.load_registry([(nnkit.PluginInfo("rec", "rec", "0"), _plugin(Recording))], entry_points=False)
    spec = nnkit.validate_spec({"inputs": {"x": {"shape": [3]}}, "nodes": [{"name": "r", "type": "Recording"}],
                                "loss": {"type": "SoftmaxWithLoss"}}, registry=registry)
    net = Network.from_spec(spec, registry, rng=np.random.default_rng(0))
    nnkit.save(net, tmp_path / "r.nnk", registry=registry)
    nnkit.load(tmp_path / "r.nnk", registry=registry)
    nnkit.load(tmp_path / "r.nnk", registry=registry, mmap=True)
    assert Recording.builds == [0, 0, 0]  # once per network, never with arrays in hand


def test_arrays_that_do_not_fit_the_plan_are_refused() -> None:
    spec = validate_spec({"inputs": {"x": {"shape": [3]}}, "nodes": [{"name": "fc", "type": "Affine", "units": 2}]})
    plan = nnkit.NetworkPlan(spec, nnkit.get_registry())
    with pytest.raises(ValueError, match=r"params given for \['fc.b'\] do not match"):
        nnkit.Network(plan, rng=np.random.default_rng(0), params={"fc.W": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"param 'W': arrays \(2, 2\)"):
        nnkit.Network(nnkit.NetworkPlan(spec, nnkit.get_registry()), rng=np.random.default_rng(0),
                      params={"fc.W": np.ones((2, 2)), "fc.b": np.zeros(2)})


def _plugin(layer: type) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(register_layers=nnkit.hookimpl(lambda register: register(layer)))


def test_peeky_and_attention_shapes_compose() -> None:
    """The graph tools of the book's chapters 7-8: a state (H,) repeated over T steps and
    joined to a sequence's features (peeky), and scores of one sequence against another
    (a @ bᵀ); the whole network's gradient matches finite differences."""
    from nnkit.testing import numeric_gradient, relative_error

    spec = nnkit.validate_spec({
        "format_version": 1,
        "inputs": {"state": {"shape": [4]}, "seq": {"shape": [3, 2]}, "keys": {"shape": [5, 3]}},
        "nodes": [
            {"name": "enc", "type": "Affine", "units": 4, "inputs": ["state"]},  # its grads cross all below
            {"name": "peek", "type": "Repeat", "repeats": 3, "new_axis": True, "inputs": ["enc"]},
            {"name": "joined", "type": "Concat", "inputs": ["peek", "seq"]},
            {"name": "kproj", "type": "Affine", "units": 6, "inputs": ["keys"]},
            {"name": "scores", "type": "MatMul", "transpose_b": True, "inputs": ["joined", "kproj"]},
            {"name": "out", "type": "Affine", "units": 2, "inputs": ["scores"]},
        ],
        "loss": {"type": "MeanSquaredError"}})
    network = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    assert network.shapes["peek"] == (3, 4) and network.shapes["joined"] == (3, 6)
    assert network.shapes["scores"] == (3, 5) and network.output_shape == (3, 2)
    rng = np.random.default_rng(1)
    x = {"state": rng.standard_normal((2, 4)), "seq": rng.standard_normal((2, 3, 2)),
         "keys": rng.standard_normal((2, 5, 3))}
    t = rng.standard_normal((2, 3, 2))
    network.loss(x, t)
    network.backward()
    for name, param in network.params.items():
        numeric = numeric_gradient(lambda: network.loss(x, t).loss, param)
        assert relative_error(network.grads[name], numeric) < 1e-6, name


CHAIN_WITH_TIE = {
    "inputs": {"x": {"shape": [], "dtype": "int"}},
    "nodes": [{"name": "emb", "type": "Embedding", "vocab_size": 6, "units": 4},
              {"type": "Sigmoid"}, {"name": "out", "type": "MatMul", "units": 6, "tie": {"W": "emb.W"}}],
    "loss": {"type": "SoftmaxWithLoss"},
}
SKIP = {
    "inputs": {"x": {"shape": [3]}},
    "nodes": [{"name": "a", "type": "Affine", "units": 3}, {"name": "s", "type": "Sigmoid"},
              {"name": "sum", "type": "Add", "inputs": ["a", "s"]}, {"type": "Affine", "units": 2}],
    "loss": {"type": "SoftmaxWithLoss"},
}


@pytest.mark.parametrize("spec", [CHAIN_WITH_TIE, {**CHAIN_WITH_TIE, "nodes": CHAIN_WITH_TIE["nodes"][:1] + [
    {"type": "Affine", "units": 6}]}])
def test_a_chain_backpropagates_in_a_plain_loop_to_the_same_bits(spec: dict) -> None:
    net = build(spec)
    assert net._chain_backward is not None
    rng = np.random.default_rng(5)
    x, t = rng.integers(0, 6, size=7), rng.integers(0, 6, size=7)
    net.loss(x, t)
    net.backward()
    fast = {k: g.copy() for k, g in net.grads.items()}
    net._chain_backward = None  # the graph's general walk
    net.loss(x, t)
    net.backward()
    assert all(np.array_equal(fast[k], g) for k, g in net.grads.items())
    check_network_gradients(build(spec), x, t)


def test_graphs_that_are_not_one_chain_take_the_general_walk() -> None:
    assert build(SKIP)._chain_backward is None
    loss_midway = {**SKIP, "nodes": [{"name": "a", "type": "Affine", "units": 3}, {"name": "b", "type": "Affine",
                                                                                 "units": 2}],
                   "outputs": ["b"], "loss": {"type": "SoftmaxWithLoss", "inputs": ["a"]}}
    assert build(loss_midway)._chain_backward is None  # b does not reach the loss
