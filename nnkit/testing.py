"""Contract checks for layers, shared by nnkit's own tests and plugin authors' tests.

    from nnkit.testing import check_layer
    check_layer(MyLayer, {"units": 4}, [(3,)])

runs the layer contract (parallel params/grads, output shape and dtype, grads overwritten
in place), a central finite-difference gradient check of every float input and every
param in float64, and a save → load round trip of a one-node network.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.config import type_name_of
from nnkit.layer import Layer, LayerConfig, LossLayer, Shape

STEP = 1e-6
TOLERANCE = 1e-6


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| over the larger of max |a| and max |n| (0 when both are zero)."""
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric))) / scale


def numeric_gradient(f: Callable[[], float], x: np.ndarray, step: float = STEP) -> np.ndarray:
    """Central differences of the scalar `f()` with respect to `x`, perturbed in place."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + step
        plus = f()
        flat[i] = old - step
        minus = f()
        flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2 * step)
    return grad


def make_config(layer_cls: type[Layer], config: Mapping[str, Any] | LayerConfig) -> LayerConfig:
    if isinstance(config, LayerConfig):
        return config
    return layer_cls.Config.model_validate({"type": type_name_of(layer_cls), **config})


def check_layer(
    layer_cls: type[Layer],
    config: Mapping[str, Any] | LayerConfig,
    input_shapes: list[Shape],
    *,
    batch: int = 3,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    round_trip: bool = True,
) -> None:
    """Assert the layer contract, the gradient check and (for non-loss layers) a round trip."""
    cfg = make_config(layer_cls, config)
    rng = np.random.default_rng(seed)
    layer = layer_cls(cfg, input_shapes, rng=np.random.default_rng(seed + 1), dtype="float64")
    name = type_name_of(layer_cls)
    _check_params(layer, name)
    xs = layer_cls.example_inputs(cfg, [tuple(s) for s in input_shapes], batch, rng, np.dtype("float64"))
    assert layer_cls.accepts(len(xs)), f"{name}: example_inputs gave {len(xs)} inputs"

    # A stateful layer starts every call of the check from the same carried state: the
    # non-zero one a first pass leaves (so the gradient through a carried state is checked).
    if layer.carries_state:
        layer.forward(*xs, train=True)
        assert layer.state(), f"{name}: stateful, yet a forward left no state"
    carried = layer.state()
    # Stochastic layers (dropout) must see the same draws in every call of the check.
    rng_state = layer.rng.bit_generator.state

    if isinstance(layer, LossLayer):
        t = layer.example_targets(cfg, tuple(input_shapes[0]), batch, rng)

        def objective() -> float:
            layer.rng.bit_generator.state = rng_state
            layer.set_state(carried)
            return float(layer.forward(*xs, t, train=True))

        loss = objective()
        assert np.ndim(loss) == 0 and np.isfinite(loss), f"{name}: loss must be a finite scalar"
        dout: Any = 1.0
    else:
        layer.rng.bit_generator.state = rng_state
        layer.set_state(carried)
        y = layer.forward(*xs, train=True)
        expected = (batch, *layer.output_shape)
        assert y.shape == expected, f"{name}: forward gave shape {y.shape}, build promised {expected}"
        if np.issubdtype(y.dtype, np.floating):
            assert y.dtype == np.float64, f"{name}: float64 inputs gave a {y.dtype} output"
        weights = rng.standard_normal(y.shape)
        dout = weights
        # Further outputs (a recurrent layer's final state) count in the objective too.
        port_weights = {port: rng.standard_normal(value.shape) for port, value in layer.port_values.items()}
        assert set(port_weights) == set(layer.ports), f"{name}: forward gave ports {sorted(port_weights)}"
        layer.port_grads = port_weights

        def objective() -> float:
            layer.rng.bit_generator.state = rng_state
            layer.set_state(carried)
            y = layer.forward(*xs, train=True)
            return float(np.sum(y * weights) + sum(np.sum(layer.port_values[p] * w) for p, w in port_weights.items()))

    objective()
    grad_ids = [id(g) for g in layer.grads]
    dxs = _as_tuple(layer.backward(dout), len(xs))
    assert [id(g) for g in layer.grads] == grad_ids, f"{name}: backward replaced grad arrays"
    analytic = [g.copy() for g in layer.grads]
    objective()
    layer.backward(dout)
    for pname, first, again in zip(layer.param_names, analytic, layer.grads):
        assert np.array_equal(first, again), f"{name}.{pname}: backward accumulates instead of overwriting"

    for i, (x, dx) in enumerate(zip(xs, dxs)):
        if not np.issubdtype(x.dtype, np.floating):
            continue
        assert dx is not None and dx.shape == x.shape, f"{name}: input {i} grad has the wrong shape"
        err = relative_error(dx, numeric_gradient(objective, x))
        assert err <= tolerance, f"{name}: input {i} gradient relative error {err:.2e} > {tolerance:.0e}"
    for pname, param, grad in zip(layer.param_names, layer.params, analytic):
        err = relative_error(grad, numeric_gradient(objective, param))
        assert err <= tolerance, f"{name}.{pname}: gradient relative error {err:.2e} > {tolerance:.0e}"

    if round_trip and not isinstance(layer, LossLayer):
        check_round_trip(layer_cls, cfg, input_shapes, xs)


def _check_params(layer: Layer, name: str) -> None:
    assert len(layer.params) == len(layer.grads) == len(layer.param_names), \
        f"{name}: params, grads and param_names must be parallel lists"
    assert len(set(layer.param_names)) == len(layer.param_names), f"{name}: duplicate param names"
    for pname, p, g in zip(layer.param_names, layer.params, layer.grads):
        assert p is not g, f"{name}.{pname}: param and grad are the same array"
        assert p.shape == g.shape and p.dtype == g.dtype, f"{name}.{pname}: grad differs in shape or dtype"


def _as_tuple(dxs: Any, count: int) -> tuple[Any, ...]:
    if count == 1:
        return (dxs,)
    assert isinstance(dxs, tuple) and len(dxs) == count, f"backward must return {count} input grads"
    return dxs


def check_round_trip(
    layer_cls: type[Layer], config: LayerConfig, input_shapes: list[Shape], xs: list[np.ndarray],
) -> None:
    """Save a one-node network holding the layer, load it, and compare outputs and grads."""
    from nnkit.checkpoint import load, save
    from nnkit.modelfile import validate_spec
    from nnkit.network import Network
    from nnkit.plugins import get_registry

    registry = get_registry()  # the installed plugins, as a plugin author's test expects
    found = registry.find("layer", config.type)
    if found is None or found.cls is not layer_cls:  # a layer under test, not yet installed
        registry = _registry_with(layer_cls)
    inputs = {
        f"in{i}": {"shape": list(s), "dtype": "float" if np.issubdtype(x.dtype, np.floating) else "int"}
        for i, (s, x) in enumerate(zip(input_shapes, xs))
    }
    node = {**config.model_dump(exclude_none=True), "name": "node", "inputs": list(inputs)}
    spec = validate_spec({"inputs": inputs, "nodes": [node]}, f"<{config.type} round trip>", registry)
    network = Network.from_spec(spec, registry, rng=np.random.default_rng(7))
    for grad in network.grads.values():
        grad[...] = np.random.default_rng(8).standard_normal(grad.shape)
    feed = dict(zip(inputs, xs))
    before = network.forward(feed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layer.nnk"
        save(path, network, registry)
        loaded = load(path, registry)
    after = loaded.forward(feed)
    assert np.array_equal(before, after), f"{config.type}: outputs differ after save → load"
    for key, grad in network.grads.items():
        assert np.array_equal(grad, loaded.grads[key]), f"{config.type}: grad {key} differs after save → load"


def _registry_with(layer_cls: type[Layer]) -> Any:
    """A registry of nnkit's built-ins plus `layer_cls`, as if a plugin had registered it."""
    from types import SimpleNamespace

    from nnkit.hookspecs import hookimpl
    from nnkit.plugins import load_registry
    from nnkit.registry import PluginInfo

    plugin = SimpleNamespace(register_layers=hookimpl(lambda register: register(layer_cls)))
    return load_registry([(PluginInfo("layer-under-test", "layer-under-test", "0"), plugin)], entry_points=False)
