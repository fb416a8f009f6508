"""`nnkit.Model` as a user coming from Keras meets it: one object that fits (more epochs
per call, continuing bit for bit), evaluates, predicts, saves, loads and describes itself;
DataFrames and Series in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnkit

from .conftest import EXAMPLES

#: Dropout, Adam with a cosine schedule, a validation split and early stopping: every
#: piece of state an exact continuation has to carry.
RECIPE = {
    "name": "spiral-dropout",
    "inputs": {"x": {"shape": [2]}},
    "nodes": [{"name": "fc1", "type": "Affine", "units": 16}, {"type": "Tanh"}, {"type": "Dropout", "rate": 0.2},
              {"name": "fc2", "type": "Affine", "units": 3}],
    "loss": {"type": "SoftmaxWithLoss"},
    "optimizer": {"type": "Adam", "lr": 0.02, "schedule": {"type": "cosine", "min_factor": 0.1}},
    "data": {"type": "spiral"},
    "validation": {"split": 0.2},
    "callbacks": [{"type": "early_stopping", "patience": 50}],
    "train": {"epochs": 6, "batch_size": 30, "seed": 3},
}


def same_params(a: nnkit.Model, b: nnkit.Model) -> bool:
    return list(a.params) == list(b.params) and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_fit_trains_more_epochs_per_call_bit_for_bit() -> None:
    once = nnkit.Model.from_spec(RECIPE)
    once.fit(epochs=5, verbose=False)
    twice = nnkit.Model.from_spec(RECIPE)
    first = twice.fit(epochs=3, verbose=False)
    second = twice.fit(epochs=2, verbose=False)
    assert (len(first), len(second), twice.epoch) == (3, 2, 5)  # the second call did train
    assert same_params(once, twice) and once.history == twice.history
    assert once.history.epoch == [1, 2, 3, 4, 5]
    assert set(once.history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(once.history.history["val_loss"]) == 5


def test_save_load_fit_continues_bit_for_bit(tmp_path: Path) -> None:
    straight = nnkit.Model.from_spec(RECIPE)
    straight.fit(epochs=5, verbose=False)
    model = nnkit.Model.from_spec(RECIPE)
    model.fit(epochs=2, verbose=False)
    nnkit.save(model, tmp_path / "m.nnk")
    loaded = nnkit.load(tmp_path / "m.nnk")
    assert loaded.epoch == 2 and loaded.history == model.history
    loaded.fit(epochs=3, verbose=False)
    assert same_params(straight, loaded) and straight.history == loaded.history


def test_arrays_keras_keywords_and_validation(capsys) -> None:
    data = nnkit.Model.from_file(EXAMPLES / "spiral.toml").data
    model = nnkit.Model.from_spec({k: v for k, v in RECIPE.items() if k not in ("data", "validation", "callbacks")})
    history = model.fit(data.x, y=data.t, epochs=2, batch_size=20, validation_split=0.25, verbose=False)
    assert model.spec.train.batch_size == 20 and "val_accuracy" in history.history
    history = model.fit(data.x, data.t, epochs=1, validation_data=(data.x[:50], data.t[:50]), verbose=False)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    scores = model.evaluate(data.x, data.t)
    assert set(scores) == {"loss", "accuracy", "samples"} and scores["samples"] == 300
    assert model.predict(data.x).shape == (300, 3)
    assert capsys.readouterr().out == ""  # verbose=False prints nothing
    model.fit(data.x, data.t, epochs=2, verbose=True)
    out = capsys.readouterr().out
    assert "epoch 5/" in out and "loss" in out  # the CLI's progress lines


def test_a_model_built_from_the_first_fit(capsys) -> None:
    spec = {k: v for k, v in RECIPE.items() if k not in ("inputs", "data", "validation", "callbacks")}
    model = nnkit.Model.from_spec(spec)
    assert "not built" in repr(model)
    with pytest.raises(nnkit.DataError, match="not built yet"):
        model.predict(np.zeros((2, 2)))
    x = np.random.default_rng(0).standard_normal((60, 5))
    model.fit(x, (x[:, 0] > 0).astype(int), epochs=1, verbose=False)
    assert model.network.shapes["x"] == (5,)


def test_mistakes_get_clear_errors() -> None:
    model = nnkit.Model.from_spec(RECIPE)
    with pytest.raises(TypeError, match=r"nnkit.save\(model, path\): the model comes first"):
        nnkit.save("m.nnk", model)  # type: ignore[arg-type]
    x = np.zeros((30, 2))
    with pytest.raises(nnkit.DataError, match="y must hold numbers.*NNKitClassifier"):
        model.fit(x, np.array(["a", "b"] * 15), verbose=False)
    with pytest.raises(nnkit.DataError, match="pass both x and y"):
        model.fit(x, verbose=False)
    with pytest.raises(nnkit.DataError, match="epochs .* or until .*, not both"):
        model.fit(epochs=1, until=3)


def test_repr_and_summary(capsys) -> None:
    model = nnkit.Model.from_file(EXAMPLES / "spiral.toml")
    assert repr(model) == ("<nnkit.Model 'spiral': 3 nodes, 63 params, output (3,), loss SoftmaxWithLoss, SGD, "
                           "0 epochs trained>")
    model.summary()
    assert capsys.readouterr().out == (
        "Model: spiral\n"
        "---------------------------------------------\n"
        "node  type             inputs  output  params\n"
        "---------------------------------------------\n"
        "fc1   Affine           x       (10,)       30\n"
        "act1  Sigmoid          fc1     (10,)        0\n"
        "fc2   Affine           act1    (3,)        33\n"
        "loss  SoftmaxWithLoss  fc2     ()           0\n"
        "---------------------------------------------\n"
        "params: 63 (each shared array once)   optimizer: SGD   epochs trained: 0\n")


def test_summary_names_shared_params(capsys) -> None:
    nnkit.Model.from_file(EXAMPLES / "cbow.toml").summary()
    out = capsys.readouterr().out
    assert "emb1  Embedding        c1          (8,)    0 (+ emb0.W)" in out


def test_an_inference_load_refuses_to_train(tmp_path: Path) -> None:
    model = nnkit.Model.from_spec(RECIPE)
    model.fit(epochs=1, verbose=False)
    model.save(tmp_path / "m.nnk")
    light = nnkit.load(tmp_path / "m.nnk", grads=False)
    assert np.array_equal(light.predict(model.data.x), model.predict(model.data.x))
    with pytest.raises(nnkit.TrainingError, match="grads=True"):
        light.fit(epochs=1, verbose=False)


def test_dataframes_and_series(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.standard_normal(90), "b": rng.standard_normal(90)})
    y = pd.Series((frame["a"] + frame["b"] > 0).astype(int), name="label")
    spec = {k: v for k, v in RECIPE.items() if k not in ("inputs", "data", "validation", "callbacks")}
    model = nnkit.Model.from_spec(spec)
    model.fit(frame, y, epochs=2, verbose=False)
    assert model.columns == ["a", "b"]
    expected = model.predict(frame)
    assert np.array_equal(model.predict(frame[["b", "a"]]), expected)  # realigned by name
    assert np.array_equal(model.predict(frame.to_numpy()), expected)  # arrays go by position
    with pytest.raises(nnkit.DataError, match=r"missing \['b'\]; unknown \['c'\]"):
        model.predict(frame.rename(columns={"b": "c"}))
    model.save(tmp_path / "m.nnk")
    loaded = nnkit.load(tmp_path / "m.nnk")
    assert loaded.columns == ["a", "b"]
    assert np.array_equal(loaded.predict(frame[["b", "a"]]), expected)
    assert set(loaded.evaluate(frame, y)) == {"loss", "accuracy", "samples"}

    one = nnkit.Model.from_spec(spec)
    one.fit(frame["a"], y, epochs=1, verbose=False)  # a Series is one feature
    assert one.predict(frame["a"]).shape == (90, 3)


def test_regression_example_learns(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    model = nnkit.Model.from_file(EXAMPLES / "regression.toml", epochs=40)
    model.fit(verbose=False)
    held = model.validation_data
    assert held is not None
    scores = model.evaluate(held.x, held.t)
    assert set(scores) == {"loss", "mae", "r2", "samples"}
    assert scores["r2"] > 0.3, scores  # linear regression reaches 0.51 on this split
    assert model.predict(held.x).shape == (len(held), 1)


def test_verbose_fit_says_when_early_stopping_ends_it(capsys) -> None:
    recipe = {**RECIPE, "callbacks": [{"type": "early_stopping", "metric": "loss", "patience": 1, "min_delta": 10.0}]}
    model = nnkit.Model.from_spec(recipe)
    history = model.fit(epochs=5, verbose=True)
    assert len(history) == 2  # no epoch improves by 10: stopped after the second
    assert "early stopping: loss did not improve for 1 epochs; stopped after epoch 2" in capsys.readouterr().out
