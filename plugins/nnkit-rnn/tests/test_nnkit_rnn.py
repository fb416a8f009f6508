"""nnkit-rnn: contract checks through nnkit.testing, numerics against the book's per-step
formulas, and the example end to end (train, save, load, predict) from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nnkit_rnn
import numpy as np
import pytest

import nnkit
from nnkit.testing import check_layer

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sequence.toml"


def test_the_plugin_is_discovered_through_its_entry_point() -> None:
    plugin = next(p for p in nnkit.get_registry().plugins if p.name == "rnn")
    assert plugin.distribution == "nnkit-rnn" and not plugin.errors
    assert set(plugin.provides["layer"]) == {c.Config.model_fields["type"].default for c in nnkit_rnn.LAYERS}
    assert plugin.provides["dataset"] == ["arithmetic_sequences"]


@pytest.mark.parametrize("layer", nnkit_rnn.LAYERS, ids=lambda c: c.__name__)
def test_each_layer_passes_the_contract(layer) -> None:
    for config, shapes in layer.examples:
        check_layer(layer, config, shapes)


def test_float32_in_float32_out() -> None:
    for layer in (nnkit_rnn.TimeRNN, nnkit_rnn.TimeLSTM, nnkit_rnn.TimeGRU):
        lstm = layer(layer.Config(units=4), [(5, 3)], rng=np.random.default_rng(0), dtype="float32")
        y = lstm.forward(np.ones((2, 5, 3), dtype=np.float32))
        assert y.dtype == np.float32
        assert lstm.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.parametrize("layer", [nnkit_rnn.TimeRNN, nnkit_rnn.TimeLSTM, nnkit_rnn.TimeGRU],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("batch, steps", [(3, 4), (1, 4), (3, 1), (1, 1)])
def test_what_a_call_hands_out_is_not_written_by_the_next(layer, batch: int, steps: int) -> None:
    """Layers reuse their own buffers from call to call; outputs, input grads and the
    final states must stay what they were (also where a transpose of one row or one step
    would be a view), and a second call on the same data must give the same bits."""
    rng = np.random.default_rng(3)
    rnn = layer(layer.Config(units=4), [(steps, 3)], rng=rng)
    xs, dy = rng.standard_normal((batch, steps, 3)), rng.standard_normal((batch, steps, 4))
    y, dx = rnn.forward(xs), rnn.backward(dy)
    ports, grads = {k: v for k, v in rnn.port_values.items()}, [g.copy() for g in rnn.grads]
    kept = [a.copy() for a in (y, dx, *ports.values())]
    rnn.forward(xs * 2 + 1)
    rnn.backward(dy * 3)
    assert all(np.array_equal(a, b) for a, b in zip((y, dx, *ports.values()), kept))
    again_y, again_dx = rnn.forward(xs), rnn.backward(dy)
    assert np.array_equal(again_y, y) and np.array_equal(again_dx, dx)
    assert all(np.array_equal(a, b) for a, b in zip(rnn.grads, grads))


def test_lstm_matches_the_books_step() -> None:
    """One step computed by hand: c = f c0 + g i, h = o tanh(c), gates (f, g, i, o)."""
    rng = np.random.default_rng(1)
    lstm = nnkit_rnn.TimeLSTM(nnkit_rnn.TimeLSTM.Config(units=2), [(1, 3)], rng=rng)
    Wx, Wh, b = lstm.params
    x = rng.standard_normal((4, 1, 3))
    a = x[:, 0] @ Wx + b  # h0 = 0
    s = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    f, g, i, o = s(a[:, :2]), np.tanh(a[:, 2:4]), s(a[:, 4:6]), s(a[:, 6:])
    assert np.allclose(lstm.forward(x)[:, 0], o * np.tanh(g * i))
    assert f.shape == (4, 2)


def test_gru_matches_the_books_step() -> None:
    rng = np.random.default_rng(2)
    gru = nnkit_rnn.TimeGRU(nnkit_rnn.TimeGRU.Config(units=2), [(1, 3)], rng=rng)
    Wx, _, b = gru.params
    x = rng.standard_normal((4, 1, 3))
    a = x[:, 0] @ Wx + b
    z = 1 / (1 + np.exp(-a[:, :2]))
    assert np.allclose(gru.forward(x)[:, 0], z * np.tanh(a[:, 4:]))  # h0 = 0


def test_the_ignored_label_is_not_scored() -> None:
    loss = nnkit_rnn.TimeSoftmaxWithLoss(nnkit_rnn.TimeSoftmaxWithLoss.Config(), [(2, 3)],
                                         rng=np.random.default_rng(0))
    x = np.array([[[0.0, 9.0, 0.0], [5.0, 0.0, 0.0]]])
    both = loss.forward(x, np.array([[1, 0]]))
    only_second = loss.forward(x, np.array([[-1, 0]]))
    assert only_second == pytest.approx(np.log(1 + 2 * np.exp(-5.0)))
    assert both < only_second * 2
    assert np.all(loss.backward()[0, 0] == 0.0)


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnkit.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, check=False)


def test_the_example_trains_saves_loads_and_predicts(tmp_path: Path) -> None:
    trained = run("train", str(EXAMPLE), "--out", "seq.nnk", "--quiet", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    result = json.loads(run("evaluate", "seq.nnk", "--json", cwd=tmp_path).stdout)["result"]["training"]
    assert result["accuracy"] > 0.99 and np.exp(result["loss"]) < 1.1  # perplexity

    # Held-out sequences the model never saw, through the Python API.
    net = nnkit.load(tmp_path / "seq.nnk").network
    assert "out.W" not in net.params  # tied to embed.W: one matrix, stored once
    out_W, embed_W = net.layers["out"].params[0], net.params["embed.W"]
    assert np.shares_memory(out_W, embed_W) and np.array_equal(out_W, embed_W.T)  # a view, not a copy
    fresh = nnkit_rnn.ArithmeticSequences(nnkit_rnn.ArithmeticSequences.Config(count=200)).load(
        np.random.default_rng(123))
    predicted = net.predict(fresh.x).argmax(axis=-1)
    assert np.mean(predicted[:, 1:] == fresh.t[:, 1:]) > 0.99

    np.save(tmp_path / "x.npy", fresh.x[:3])
    predicted_cli = run("predict", "seq.nnk", "--input", "x.npy", "--output", "y.npy", cwd=tmp_path)
    assert predicted_cli.returncode == 0, predicted_cli.stderr
    assert np.load(tmp_path / "y.npy").shape == (3, 8, 20)


def test_without_the_plugin_the_checkpoint_names_it(tmp_path: Path) -> None:
    assert run("train", str(EXAMPLE), "--epochs", "1", "--out", "seq.nnk", "--quiet", cwd=tmp_path).returncode == 0
    missing = run("evaluate", "seq.nnk", cwd=tmp_path, env={"NNKIT_DISABLE_PLUGINS": "rnn"})
    assert missing.returncode == 1
    assert "node 'embed' uses layer type 'TimeEmbedding', which no installed plugin provides; " \
           "it was provided by nnkit-rnn 0.2.0: pip install nnkit-rnn" in missing.stderr
    assert "Traceback" not in missing.stderr
