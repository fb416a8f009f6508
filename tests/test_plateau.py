"""Perplexity as the book reports it, and the learning-rate cut on a plateau (the book's
chapter-6 rule), its state in checkpoints and a resume that goes on at the same rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.metrics import Perplexity, PerplexityConfig

from .conftest import EXAMPLES


def test_perplexity_is_exp_of_the_mean_log_loss() -> None:
    metric = Perplexity(PerplexityConfig())
    uniform = np.full((4, 6, 5), 0.2)
    t = np.array([[0, 1, 2, 3, 4, -1]] * 4)
    assert metric.finish(metric(uniform, t)) == pytest.approx(5.0)  # a uniform guess over 5 words
    sure = np.eye(5)[t.clip(0)]
    assert metric.finish(metric(sure, t)) == pytest.approx(1.0)
    mixed = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert metric.finish(metric(mixed, np.array([0, 1]))) == pytest.approx(np.exp(-(np.log(0.5) + np.log(0.75)) / 2))
    assert np.isnan(metric(uniform, np.full((4, 6), -1)))  # nothing scored


def test_epoch_perplexity_is_exp_of_the_epoch_loss() -> None:
    spec = nnkit.read_model_file(EXAMPLES / "spiral.toml").with_train(epochs=3)
    data = spec.to_dict() | {"metrics": ["perplexity", "accuracy"]}
    model = nnkit.Model.from_spec(data, source=str(EXAMPLES / "spiral.toml"))
    for record in model.fit(verbose=False).records:
        assert record["perplexity"] == pytest.approx(np.exp(record["loss"]), rel=1e-12)
        assert record["val_perplexity"] == pytest.approx(np.exp(record["val_loss"]), rel=1e-12)


def with_plateau(epochs: int, **callback: object) -> nnkit.Model:
    spec = nnkit.read_model_file(EXAMPLES / "spiral.toml").with_train(epochs=epochs)
    data = spec.to_dict() | {"callbacks": [{"type": "reduce_on_plateau", **callback}]}
    return nnkit.Model.from_spec(data, source=str(EXAMPLES / "spiral.toml"))


def cuts_by_the_rule(values: list[float], lower: bool, patience: int) -> int:
    """The book's rule, written out: a cut after more than `patience` epochs in a row
    that are not better than the best so far."""
    best, wait, cuts = None, 0, 0
    for v in values:
        if best is None or (v < best if lower else v > best):
            best, wait = v, 0
            continue
        wait += 1
        if wait > patience:
            cuts, wait = cuts + 1, 0
    return cuts


@pytest.mark.parametrize(("mode", "patience"), [("min", 0), ("max", 0), ("max", 1), ("min", 2)])
def test_the_learning_rate_is_cut_when_the_metric_stops_improving(mode: str, patience: int) -> None:
    model = with_plateau(8, metric="val_loss", mode=mode, factor=0.5, patience=patience)
    history = model.fit(verbose=False).records
    cuts = cuts_by_the_rule([r["val_loss"] for r in history], mode == "min", patience)
    optimizer = model.runner.optimizer
    assert optimizer.lr_scale == 0.5**cuts
    assert optimizer.lr_at(optimizer.iterations) == 1.0 * 0.5**cuts  # spiral's SGD lr is 1.0
    if cuts:
        assert any(f"reduce_on_plateau: {cuts} cut(s)" in note for note in model.runner.notes)
    if mode == "max":  # the spiral's val_loss falls overall: most epochs are "not better"
        assert cuts >= 2


def test_a_resumed_run_goes_on_at_the_cut_rate_bit_for_bit(tmp_path: Path) -> None:
    whole = with_plateau(6, metric="loss", mode="max", factor=0.5, patience=0)
    whole.fit(verbose=False)
    half = with_plateau(6, metric="loss", mode="max", factor=0.5, patience=0)
    half.fit(epochs=3, verbose=False)
    half.save(tmp_path / "half.nnk")
    resumed = nnkit.load(tmp_path / "half.nnk")
    resumed.fit(until=6, verbose=False)
    cuts = cuts_by_the_rule([r["loss"] for r in whole.history.records], False, 0)
    assert cuts >= 3 and resumed.runner.optimizer.lr_scale == whole.runner.optimizer.lr_scale == 0.5**cuts
    for name, param in whole.params.items():
        assert np.array_equal(resumed.params[name], param)


def test_a_stored_state_past_the_patience_is_refused(tmp_path: Path) -> None:
    model = with_plateau(2, metric="loss", factor=0.5, patience=0)
    model.fit(verbose=False)
    from nnkit.training.plateau import ReduceOnPlateau, ReduceOnPlateauConfig

    callback = ReduceOnPlateau(ReduceOnPlateauConfig(patience=0))
    with pytest.raises(ValueError, match="wait 1 is past the patience of 0"):
        callback.load_state({"best_value": 1.0, "wait": 1, "scale": 0.5, "cuts": 1})
    with pytest.raises(ValueError):
        callback.load_state({"best_value": 1.0, "wait": 0, "scale": 2.0, "cuts": 1})  # a scale above 1
