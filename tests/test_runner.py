"""The runner: the book's chapter-1 result, reproducibility, resume, the Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.training.runner import Runner

from .conftest import EXAMPLES


def test_spiral_reaches_the_books_result() -> None:
    runner = Runner.from_file(EXAMPLES / "spiral.toml")
    history = runner.fit()
    assert len(history) == 300
    result = runner.evaluate()
    assert result["samples"] == 300
    assert result["loss"] <= 0.12
    assert result["accuracy"] >= 0.96
    assert runner.optimizer.iterations == 300 * 10  # 10 steps per epoch, remainder dropped


def test_same_seed_same_run_different_seed_different_run() -> None:
    def final_params(seed: int) -> np.ndarray:
        runner = Runner.from_file(EXAMPLES / "spiral.toml", epochs=3, seed=seed)
        runner.fit()
        return runner.network.params["fc1.W"].copy()

    assert np.array_equal(final_params(4), final_params(4))
    assert not np.array_equal(final_params(4), final_params(5))


def test_training_never_touches_the_global_rng() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    Runner.from_file(EXAMPLES / "spiral.toml", epochs=2).fit()
    assert np.array_equal(np.random.get_state()[1], before)


def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    straight = Runner.from_file(EXAMPLES / "spiral.toml", epochs=6)
    straight.fit()
    first = Runner.from_file(EXAMPLES / "spiral.toml", epochs=3)
    first.fit()
    first.save(tmp_path / "half.nnk")
    resumed = Runner.from_checkpoint(tmp_path / "half.nnk", epochs=6)
    resumed.fit()
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    for name, param in straight.network.params.items():
        assert np.array_equal(resumed.network.params[name], param)
        assert np.array_equal(resumed.network.grads[name], straight.network.grads[name])


def test_fit_and_evaluate_on_arrays_from_python() -> None:
    spec = nnkit.validate_spec({
        "inputs": {"x": {"shape": [2]}},
        "nodes": [{"type": "Affine", "units": 8}, {"type": "Tanh"}, {"type": "Affine", "units": 2}],
        "loss": {"type": "SoftmaxWithLoss"},
        "optimizer": {"type": "SGD", "lr": 0.5},
        "train": {"epochs": 60, "batch_size": 16, "seed": 3},
    })
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 2))
    t = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    runner = Runner.from_spec(spec)
    runner.fit(x, t)
    assert runner.evaluate(x, t)["accuracy"] > 0.9
    assert runner.predict(x).shape == (128, 2)
    with pytest.raises(nnkit.DataError, match="names no \\[data\\]"):
        runner.evaluate()


def test_inputs_may_be_inferred_from_the_data() -> None:
    spec = nnkit.read_model_file(EXAMPLES / "spiral.toml").to_dict()
    del spec["inputs"]
    runner = Runner.from_spec(nnkit.validate_spec(spec))
    assert runner.spec.inputs["x"].shape == [2]


def test_override_bounds_are_checked() -> None:
    with pytest.raises(nnkit.ModelFileError, match="--epochs 0: Input should be greater than or equal to 1"):
        Runner.from_file(EXAMPLES / "spiral.toml", epochs=0)
