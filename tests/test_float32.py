"""float32 end to end: every registered layer and optimizer keeps float32 in everything it
produces, and a float32 model file trains and saves float32 without a silent upcast."""

from __future__ import annotations

import numpy as np
import pytest

import nnkit
from nnkit.checkpoint.container import CheckpointFile
from nnkit.testing import make_config
from nnkit.training.runner import Runner

REGISTRY = nnkit.get_registry()
F32 = np.dtype("float32")
LAYER_CASES = [
    pytest.param(REGISTRY.get("layer", name).cls, config, shapes, id=f"{name}-{i}")
    for name in REGISTRY.names("layer")
    for i, (config, shapes) in enumerate(REGISTRY.get("layer", name).cls.examples)
]


def floating(a: np.ndarray | None) -> bool:
    return a is not None and np.issubdtype(np.asarray(a).dtype, np.floating)


@pytest.mark.parametrize(("layer_cls", "config", "shapes"), LAYER_CASES)
def test_every_layer_stays_float32(layer_cls, config, shapes) -> None:
    cfg = make_config(layer_cls, config)
    rng = np.random.default_rng(0)
    layer = layer_cls(cfg, shapes, rng=np.random.default_rng(1), dtype="float32")
    assert all(p.dtype == F32 for p in layer.params) and all(g.dtype == F32 for g in layer.grads)
    xs = layer_cls.example_inputs(cfg, [tuple(s) for s in shapes], 3, rng, F32)
    if layer.is_loss:
        loss = layer.forward(*xs, layer_cls.example_targets(cfg, tuple(shapes[0]), 3, rng), train=True)
        assert np.isfinite(loss)
        dxs = layer.backward()
        assert layer.predict(xs[0]).dtype == F32
    else:
        y = layer.forward(*xs, train=True)
        if floating(y):
            assert y.dtype == F32, f"forward gave {y.dtype}"
        dxs = layer.backward(np.ones(y.shape, dtype=F32))
    for dx, x in zip(dxs if isinstance(dxs, tuple) else (dxs,), xs):
        if floating(x):
            assert dx.dtype == F32, f"backward gave {dx.dtype}"
    assert all(p.dtype == F32 for p in layer.params) and all(g.dtype == F32 for g in layer.grads)


@pytest.mark.parametrize("name", REGISTRY.names("optimizer"))
def test_every_optimizer_stays_float32(name: str) -> None:
    cls = REGISTRY.get("optimizer", name).cls
    optimizer = cls(cls.Config(weight_decay=0.01, warmup_steps=2))
    params = [np.ones((3, 2), dtype=F32), np.full(2, 0.5, dtype=F32)]
    grads = [np.full((3, 2), 0.25, dtype=F32), np.full(2, -0.1, dtype=F32)]
    for _ in range(3):
        optimizer.update(params, grads)
    assert all(p.dtype == F32 for p in params)
    assert all(a.dtype == F32 for a in optimizer.state_arrays(["a", "b"]).values())


def test_a_float32_run_is_float32_to_the_checkpoint(tmp_path) -> None:
    spec = nnkit.read_model_file(nnkit_example("spiral.toml")).to_dict()
    spec["dtype"] = "float32"
    spec["optimizer"] = {"type": "Adam", "lr": 0.01}
    runner = Runner.from_spec(nnkit.validate_spec(spec))
    runner.fit(epochs=5)
    net = runner.network
    assert all(a.dtype == F32 for a in [*net.params.values(), *net.grads.values()])
    assert runner.last_step is not None
    assert all(v.dtype == F32 for v in runner.last_step.values.values() if floating(v))
    assert net.predict(runner.data.x).dtype == F32
    runner.save(tmp_path / "f32.nnk")
    with CheckpointFile(tmp_path / "f32.nnk") as opened:
        float_arrays = [e for n, e in opened.index.items() if not n.startswith("progress/")]
        assert float_arrays and all(e.dtype == "<f4" for e in float_arrays)
    loaded = nnkit.load(tmp_path / "f32.nnk")
    assert np.array_equal(loaded.predict(runner.data.x), net.predict(runner.data.x))


def nnkit_example(name: str):  # type: ignore[no-untyped-def]
    from .conftest import EXAMPLES

    return EXAMPLES / name
