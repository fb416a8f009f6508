"""Optimizers against the book's formulas, written out naively here; schedules; dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnkit
from nnkit.optim.clipping import clip_grads
from nnkit.optim.optimizers import BUILTIN_OPTIMIZERS

EPS = 1e-7


def reference(kind: str, config: dict, steps: list[np.ndarray], p0: np.ndarray) -> np.ndarray:
    """The book's update rules (plus AdamW's decoupled decay), one param, naive NumPy."""
    p = p0.copy()
    lr = config.get("lr", 0.001 if kind in ("Adam", "AdamW") else 0.01)
    m_ = config.get("momentum", 0.9)
    v = np.zeros_like(p)
    h = np.zeros_like(p)
    mo = np.zeros_like(p)
    for t, g in enumerate(steps, start=1):
        if kind == "SGD":
            p -= lr * g
        elif kind == "Momentum":
            v = m_ * v - lr * g
            p += v
        elif kind == "Nesterov":
            v *= m_
            v -= lr * g
            p += m_ * m_ * v
            p -= (1 + m_) * lr * g
        elif kind == "AdaGrad":
            h += g * g
            p -= lr * g / (np.sqrt(h) + EPS)
        elif kind == "RMSprop":
            d = config.get("decay_rate", 0.99)
            h = d * h + (1 - d) * g * g
            p -= lr * g / (np.sqrt(h) + EPS)
        elif kind in ("Adam", "AdamW"):
            b1, b2 = 0.9, 0.999
            if kind == "AdamW":
                p -= lr * config.get("weight_decay", 0.01) * p
            lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            mo += (1 - b1) * (g - mo)
            h += (1 - b2) * (g**2 - h)
            p -= lr_t * mo / (np.sqrt(h) + EPS)
    return p


@pytest.mark.parametrize("cls", BUILTIN_OPTIMIZERS, ids=lambda c: c.__name__)
def test_updates_match_the_books_formulas(cls) -> None:
    kind = cls.Config.model_fields["type"].default
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 4))
    steps = [rng.standard_normal((3, 4)) for _ in range(5)]
    optimizer = cls(cls.Config())
    param, grad = p0.copy(), np.zeros_like(p0)
    for g in steps:
        grad[...] = g
        optimizer.update([param], [grad])
    assert np.allclose(param, reference(kind, {}, steps, p0), rtol=1e-12, atol=1e-14)
    assert optimizer.iterations == 5


def test_book_defaults() -> None:
    reg = nnkit.get_registry()
    config = {n: reg.get("optimizer", n).cls.Config() for n in reg.names("optimizer")}
    assert config["SGD"].lr == config["Momentum"].lr == config["AdaGrad"].lr == 0.01
    assert config["Momentum"].momentum == config["Nesterov"].momentum == 0.9
    assert config["RMSprop"].decay_rate == 0.99
    assert (config["Adam"].lr, config["Adam"].beta1, config["Adam"].beta2) == (0.001, 0.9, 0.999)


@pytest.mark.parametrize("cls", BUILTIN_OPTIMIZERS, ids=lambda c: c.__name__)
def test_float32_stays_float32(cls) -> None:
    optimizer = cls(cls.Config(weight_decay=0.1))
    param = np.ones((2, 2), dtype=np.float32)
    grad = np.full((2, 2), 0.5, dtype=np.float32)
    optimizer.update([param], [grad])
    assert param.dtype == np.float32
    assert all(a.dtype == np.float32 for a in optimizer.state_arrays(["w"]).values())


def test_l2_weight_decay_adds_to_the_gradient_without_touching_it() -> None:
    sgd = nnkit.get_registry().get("optimizer", "SGD").cls
    optimizer = sgd(sgd.Config(lr=0.1, weight_decay=0.5))
    param, grad = np.array([2.0]), np.array([1.0])
    optimizer.update([param], [grad])
    assert param[0] == pytest.approx(2.0 - 0.1 * (1.0 + 0.5 * 2.0))
    assert grad[0] == 1.0


def test_schedules_and_warmup() -> None:
    sgd = nnkit.get_registry().get("optimizer", "SGD").cls

    def lrs(schedule: dict, warmup: int = 0, total: int = 10) -> list[float]:
        config = nnkit.validate_spec({
            "inputs": {"x": {"shape": [1]}}, "nodes": [{"type": "ReLU"}],
            "optimizer": {"type": "SGD", "lr": 1.0, "schedule": schedule, "warmup_steps": warmup},
        }).optimizer
        optimizer = sgd(config)
        optimizer.total_steps = total
        return [optimizer.lr_at(k) for k in range(total)]

    assert lrs({"type": "constant"}) == [1.0] * 10
    assert lrs({"type": "step", "every": 4, "gamma": 0.5})[:9] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]
    assert lrs({"type": "exponential", "gamma": 0.9})[3] == pytest.approx(0.9**3)
    cosine = lrs({"type": "cosine", "min_factor": 0.1})
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lrs({"type": "constant"}, warmup=4)[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_state_round_trips_by_param_name() -> None:
    adam = nnkit.get_registry().get("optimizer", "Adam").cls
    first = adam(adam.Config())
    params, grads = [np.ones(3), np.ones(2)], [np.full(3, 0.1), np.full(2, -0.2)]
    first.update(params, grads)
    saved = first.state_arrays(["a.W", "a.b"])
    assert set(saved) == {"a.W/m", "a.W/v", "a.b/m", "a.b/v"}
    second = adam(adam.Config())
    second.load_state_arrays(["a.W", "a.b"], saved, params)
    for key, value in second.state_arrays(["a.W", "a.b"]).items():
        assert np.array_equal(value, saved[key])


def test_clip_grads_follows_the_books_rule() -> None:
    grads = [np.array([3.0, 0.0]), np.array([4.0])]
    norm = clip_grads(grads, 1.0)
    assert norm == 5.0
    assert np.allclose(grads[0], [3.0 / (5 + 1e-6), 0.0]) and np.allclose(grads[1], [4.0 / (5 + 1e-6)])
    small = [np.array([0.1])]
    clip_grads(small, 1.0)
    assert small[0][0] == 0.1
