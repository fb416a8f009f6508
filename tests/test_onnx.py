"""ONNX export: every example, every registered layer and randomised graphs run in ONNX
Runtime and give what nnkit's predict gives, in float32 and float64."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnkit
from nnkit.config import type_name_of
from nnkit.interop.onnx import OPSET, to_onnx
from nnkit.layer import Layer
from nnkit.plugins import PluginWarning

from .conftest import EXAMPLES
from .test_plugins import ScaledTanh, info, plugin

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

#: "within 1e-5 (float32) / 1e-10 (float64)" of nnkit predict
TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
GRAPHS = 30  # random graphs; together they use every built-in layer (checked below)
EXAMPLE_FILES = ["spiral", "digits", "cbow", "sequence", "regression"]


def run_onnx(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def feeds_for(network: nnkit.Network, inputs: Any) -> dict[str, np.ndarray]:
    """ONNX Runtime's inputs: float inputs in the network's dtype, ids as int64."""
    named = inputs if isinstance(inputs, dict) else {network.input_names[0]: inputs}
    assert network.spec.inputs is not None
    return {name: np.asarray(named[name]).astype(np.int64 if network.spec.inputs[name].dtype == "int"
                                                 else network.dtype) for name in network.input_names}


def assert_matches(network: nnkit.Network, inputs: Any, registry: nnkit.Registry | None = None) -> None:
    model = to_onnx(network, registry or nnkit.get_registry())
    onnx.checker.check_model(model, full_check=True)
    feeds = feeds_for(network, inputs)
    got = run_onnx(model, feeds)[0]
    want = network.predict(feeds)
    assert got.dtype == want.dtype and got.shape == want.shape
    tolerance = TOLERANCE[str(network.dtype)]
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * max(1.0, float(np.abs(want).max())))


def needs(name: str) -> None:
    if name in ("digits", "regression"):
        pytest.importorskip("sklearn")
    if name == "sequence" and nnkit.get_registry().find("layer", "TimeLSTM") is None:
        pytest.skip("sequence needs nnkit-rnn")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_exports_and_onnx_runtime_reproduces_predict(name: str, dtype: str, tmp_path: Path) -> None:
    needs(name)
    spec = nnkit.read_model_file(EXAMPLES / f"{name}.toml").with_train(epochs=1)
    model = nnkit.Model.from_spec(spec.replace(dtype=dtype), checkpoint_dir=tmp_path)
    model.fit(verbose=False)
    assert_matches(model.network, _first_rows(model.data.x, 64))
    exported = onnx.load(str(model.export(tmp_path / f"{name}.onnx")))
    assert exported.opset_import[0].version == OPSET
    assert [i.name for i in exported.graph.input] == model.network.input_names
    assert [o.name for o in exported.graph.output] == model.network.outputs
    assert {t.name for t in exported.graph.initializer} >= set(model.network.params)


def _first_rows(x: Any, n: int) -> Any:
    return {k: v[:n] for k, v in x.items()} if isinstance(x, dict) else x[:n]


def _layer_cases() -> list[tuple[str, type[Layer], dict[str, Any], list[tuple[int, ...]]]]:
    registry = nnkit.get_registry()
    cases = []
    for name in registry.names("layer"):
        cls = registry.get("layer", name).cls
        for i, (config, shapes) in enumerate(cls.examples):
            cases.append((f"{name}-{i}", cls, config, shapes))
    return cases


def test_every_registered_layer_has_a_converter() -> None:
    registry = nnkit.get_registry()
    assert set(registry.names("layer")) <= set(registry.onnx_converters)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("case", "cls", "config", "shapes"), _layer_cases(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_every_registered_layer_converts(case: str, cls: type[Layer], config: dict[str, Any],
                                         shapes: list[tuple[int, ...]], dtype: str) -> None:
    """A network of the layer alone (a loss layer behind an identity Dropout): ONNX Runtime
    gives what predict gives, on the layer's own example inputs."""
    rng = np.random.default_rng(7)
    layer_type = type_name_of(cls)
    cfg = cls.Config.model_validate({"type": layer_type, **config})
    xs = cls.example_inputs(cfg, [tuple(s) for s in shapes], 5, rng, np.dtype(dtype))
    inputs = {f"x{k}": {"shape": list(s), "dtype": "int" if x.dtype.kind in "iu" else "float"}
              for k, (s, x) in enumerate(zip(shapes, xs))}
    if cls.is_loss:
        nodes = [{"name": "scores", "type": "Dropout", "inputs": ["x0"]}]
        loss: dict[str, Any] | None = {"type": layer_type, **config}
    else:
        nodes, loss = [{"name": "node", **config, "type": layer_type, "inputs": list(inputs)}], None
    spec = nnkit.validate_spec({"format_version": 1, "dtype": dtype, "inputs": inputs, "nodes": nodes,
                                **({"loss": loss} if loss else {})})
    network = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=rng)
    assert_matches(network, {f"x{k}": x for k, x in enumerate(xs)})


def _random_graph(rng: np.random.Generator) -> dict[str, Any]:
    """A DAG over (D,) features from a float input and an embedded id: affine maps,
    activations, joins of earlier nodes, Repeat/Sum pairs, dropout; every node not used
    later concatenated into the output; a classifier's, binary or regression loss."""
    width = int(rng.integers(2, 6))
    nodes: list[dict[str, Any]] = [{"name": "n0", "type": "Affine", "units": width, "inputs": ["x"]},
                                   {"name": "e0", "type": "Embedding", "vocab_size": 7, "units": width,
                                    "inputs": ["ids"]},  # one id per sample → (width,)
                                   {"name": "d0", "type": "EmbeddingDot", "vocab_size": 7,
                                    "inputs": ["n0", "pair"]}]  # n0 against two words' rows → (2,)
    shapes = {"x": 3, "n0": width, "e0": width, "d0": 2}
    for k in range(1, int(rng.integers(3, 9))):
        name, earlier = f"n{k}", list(shapes)
        kind = rng.choice(["Affine", "MatMul", "act", "join", "Concat", "RepeatSum", "Dropout"])
        src = str(rng.choice(earlier))
        if kind in ("Affine", "MatMul"):
            shapes[name] = int(rng.integers(2, 6))
            nodes.append({"name": name, "type": kind, "units": shapes[name], "inputs": [src]})
        elif kind == "act":
            nodes.append({"name": name, "type": str(rng.choice(["Sigmoid", "ReLU", "Tanh", "Softmax"])),
                          "inputs": [src]})
            shapes[name] = shapes[src]
        elif kind == "join":
            same = [n for n in earlier if shapes[n] == shapes[src]]
            others = [str(n) for n in rng.choice(same, size=int(rng.integers(1, 3)))]
            nodes.append({"name": name, "type": str(rng.choice(["Add", "Mean"])), "inputs": [src, *others]})
            shapes[name] = shapes[src]
        elif kind == "Concat":
            other = str(rng.choice(earlier))
            nodes.append({"name": name, "type": "Concat", "inputs": [src, other]})
            shapes[name] = shapes[src] + shapes[other]
        elif kind == "RepeatSum":
            r = int(rng.integers(2, 4))
            nodes.append({"name": name + "r", "type": "Repeat", "repeats": r, "inputs": [src]})
            nodes.append({"name": name, "type": "Sum", "inputs": [name + "r"]})  # (D*r,) → (1,)
            shapes[name + "r"], shapes[name] = shapes[src] * r, 1
        else:
            nodes.append({"name": name, "type": "Dropout", "rate": 0.3, "inputs": [src]})
            shapes[name] = shapes[src]
    used = {i for node in nodes for i in node["inputs"]}
    dangling = [n["name"] for n in nodes if n["name"] not in used]  # every node must reach the output
    nodes.append({"name": "all", "type": "Concat", "inputs": dangling})
    nodes.append({"name": "out", "type": "Affine", "units": 3, "inputs": ["all"]})
    loss = str(rng.choice(["SoftmaxWithLoss", "SigmoidWithLoss", "MeanSquaredError", "MeanAbsoluteError", "Huber",
                           "NegativeSamplingLoss"]))
    options = {"vocab_size": 6, "sample_size": 2} if loss == "NegativeSamplingLoss" else {}
    return {"format_version": 1, "dtype": str(rng.choice(["float64", "float32"])),
            "inputs": {"x": {"shape": [3]}, "ids": {"shape": [], "dtype": "int"},
                       "pair": {"shape": [2], "dtype": "int"}},
            "nodes": nodes, "loss": {"type": loss, **options}}


@pytest.mark.parametrize("seed", range(GRAPHS))
def test_randomised_graphs_of_builtin_layers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spec = nnkit.validate_spec(_random_graph(rng))
    network = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=rng)
    assert_matches(network, {"x": rng.standard_normal((17, 3)), "ids": rng.integers(0, 7, size=17),
                             "pair": rng.integers(0, 7, size=(17, 2))})


def _scaled_tanh_network(registry: nnkit.Registry) -> nnkit.Network:
    spec = nnkit.validate_spec({"format_version": 1, "inputs": {"x": {"shape": [3]}},
                                "nodes": [{"name": "s", "type": "ScaledTanh"}]}, registry=registry)
    return nnkit.Network.from_spec(spec, registry, rng=np.random.default_rng(0))


def test_a_layer_without_converter_is_named_with_its_distribution(use_plugins: Any) -> None:
    registry = use_plugins((info(), plugin(register_layers=lambda register: register(ScaledTanh))))
    with pytest.raises(nnkit.ExportError, match=r"node 's': layer type 'ScaledTanh' \(from nnkit-scaled 1.2.3\) "
                                                r"has no ONNX converter.*register_onnx_converters"):
        to_onnx(_scaled_tanh_network(registry), registry)


def test_a_plugin_supplies_its_layers_converter_through_the_hook(use_plugins: Any) -> None:
    def convert(layer: Any, node: Any) -> None:  # 2 * tanh(x), as a plugin author writes it
        node.add("Mul", [node.constant(2.0), node.add("Tanh", node.inputs)], node.output)

    def converters(register: Any) -> None:
        register("ScaledTanh", convert)

    registry = use_plugins((info(), plugin(register_layers=lambda register: register(ScaledTanh),
                                           register_onnx_converters=converters)))
    assert registry.onnx_converters["ScaledTanh"].plugin.distribution == "nnkit-scaled"
    assert_matches(_scaled_tanh_network(registry), np.random.default_rng(1).standard_normal((6, 3)), registry)


def test_a_plugin_may_not_replace_a_builtin_converter(use_plugins: Any) -> None:
    def converters(register: Any) -> None:
        register("Tanh", lambda layer, node: None)

    with pytest.warns(PluginWarning, match="the ONNX converter of 'Tanh' is already provided by nnkit-numpy"):
        registry = use_plugins((info(), plugin(register_onnx_converters=converters)))
    assert registry.onnx_converters["Tanh"].plugin.distribution == "nnkit-numpy"


def test_a_converter_that_writes_no_output_is_named(use_plugins: Any) -> None:
    def converters(register: Any) -> None:
        register("ScaledTanh", lambda layer, node: node.add("Tanh", node.inputs))

    registry = use_plugins((info(), plugin(register_layers=lambda register: register(ScaledTanh),
                                           register_onnx_converters=converters)))
    with pytest.raises(nnkit.ExportError, match="converter of 'ScaledTanh' \\(nnkit-scaled\\) did not write"):
        to_onnx(_scaled_tanh_network(registry), registry)


def test_cli_export_then_onnx_runtime_reproduces_nnkit_predict(tmp_path: Path) -> None:
    nnkit_cli = [sys.executable, "-m", "nnkit"]
    subprocess.run([*nnkit_cli, "train", str(EXAMPLES / "spiral.toml"), "--epochs", "3", "-q", "-o", "s.nnk"],
                   check=True, cwd=tmp_path, capture_output=True)
    x = np.random.default_rng(0).standard_normal((40, 2))
    np.save(tmp_path / "x.npy", x)
    subprocess.run([*nnkit_cli, "predict", "s.nnk", "--input", "x.npy", "--output", "y.npy"], check=True,
                   cwd=tmp_path, capture_output=True)
    done = subprocess.run([*nnkit_cli, "export", "s.nnk", "--format", "onnx"], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "wrote s.onnx (onnx)"
    again = subprocess.run([*nnkit_cli, "export", "s.nnk", "--format", "onnx"], cwd=tmp_path, capture_output=True,
                           text=True, check=True)
    assert again.stdout.strip() == "wrote s-2.onnx (onnx)"  # the default name never replaces a file
    got = run_onnx(onnx.load(str(tmp_path / "s.onnx")), {"x": x})[0]
    np.testing.assert_allclose(got, np.load(tmp_path / "y.npy"), rtol=0, atol=1e-10)


def test_the_random_graphs_use_every_builtin_layer() -> None:
    from nnkit.layers import BUILTIN_LAYERS

    used: set[str] = set()
    for seed in range(GRAPHS):
        graph = _random_graph(np.random.default_rng(seed))
        used |= {n["type"] for n in graph["nodes"]} | {graph["loss"]["type"]}
    assert {type_name_of(c) for c in BUILTIN_LAYERS} <= used
