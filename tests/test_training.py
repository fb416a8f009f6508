"""The runner's features: validation, callbacks (checkpoints, early stopping), the NaN guard,
progress output, plots, file data and streaming inference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.cli import main
from nnkit.training.callbacks import EarlyStopping
from nnkit.training.runner import Runner

from .conftest import EXAMPLES

SMALL = {
    "inputs": {"x": {"shape": [2]}},
    "nodes": [{"name": "fc1", "type": "Affine", "units": 8}, {"type": "Tanh"},
              {"name": "fc2", "type": "Affine", "units": 3}],
    "loss": {"type": "SoftmaxWithLoss"},
    "optimizer": {"type": "SGD", "lr": 1.0},
    "data": {"type": "spiral", "points_per_class": 30},
    "train": {"epochs": 6, "batch_size": 10, "seed": 2},
}


def runner(**changes) -> Runner:  # type: ignore[no-untyped-def]
    return Runner.from_spec(nnkit.validate_spec({**SMALL, **changes}), checkpoint_dir=changes.pop("_dir", None))


def test_a_validation_split_is_held_out_and_scored() -> None:
    r = runner(validation={"split": 0.2})
    assert len(r.train_data) == 72 and len(r.validation_data) == 18
    both = np.concatenate([r.train_data.x, r.validation_data.x])
    assert np.array_equal(np.sort(both, axis=0), np.sort(r.data.x, axis=0))  # a partition: nothing lost
    history = r.fit()
    assert {"val_loss", "val_accuracy"} <= set(history[-1])
    assert history[-1]["val_loss"] == pytest.approx(r.evaluate(r.validation_data.x, r.validation_data.t)["loss"])


def test_a_validation_dataset_of_its_own() -> None:
    r = runner(validation={"data": {"type": "spiral", "points_per_class": 10}})
    assert len(r.validation_data) == 30 and len(r.train_data) == 90
    assert not np.array_equal(r.validation_data.x, r.data.x[:30])  # a fresh draw
    assert "val_accuracy" in r.fit()[-1]


def test_validation_needs_exactly_one_source() -> None:
    with pytest.raises(nnkit.ModelFileError, match="exactly one of split"):
        runner(validation={"split": 0.2, "data": {"type": "spiral"}})


def test_checkpoints_every_n_epochs_keep_k_and_the_best(tmp_path: Path) -> None:
    r = Runner.from_spec(nnkit.validate_spec({**SMALL, "train": {**SMALL["train"], "epochs": 7},
                                          "validation": {"split": 0.2},
                                          "callbacks": [{"type": "checkpoint", "every": 2, "keep": 2,
                                                         "best": "val_accuracy"}]}),
                     checkpoint_dir=tmp_path / "ckpts")
    r.fit()
    names = sorted(p.name for p in (tmp_path / "ckpts").iterdir())
    assert names == ["best.nnk", "epoch-000004.nnk", "epoch-000006.nnk"]
    best = nnkit.inspect(tmp_path / "ckpts" / "best.nnk")["progress"]
    best_epoch = max(r.history, key=lambda h: h["val_accuracy"])["epoch"]
    assert best["epoch"] == best_epoch  # the first epoch with the highest val_accuracy
    assert nnkit.inspect(tmp_path / "ckpts" / "epoch-000006.nnk")["progress"]["epoch"] == 6


def test_early_stopping_restores_the_best_and_survives_a_resume(tmp_path: Path) -> None:
    spec = {**SMALL, "optimizer": {"type": "SGD", "lr": 3.0}, "train": {**SMALL["train"], "epochs": 200},
            "validation": {"split": 0.3},
            "callbacks": [{"type": "early_stopping", "metric": "val_loss", "patience": 3}]}
    r = Runner.from_spec(nnkit.validate_spec(spec))
    r.fit()
    stop = next(cb for cb in r.callbacks if isinstance(cb, EarlyStopping))
    assert r.epoch < 200 and stop.stopped_epoch == r.epoch and r.epoch - stop.best_epoch == 3
    held = r.validation_data
    assert r.evaluate(held.x, held.t)["loss"] == pytest.approx(stop.best_value)  # best params back
    assert any("restored epoch" in note for note in r.notes)

    half = Runner.from_spec(nnkit.validate_spec(spec))
    half.fit(epochs=stop.best_epoch + 1)  # stop within the patience window, save, resume
    half.save(tmp_path / "half.nnk")
    resumed = Runner.from_checkpoint(tmp_path / "half.nnk")
    resumed.fit()
    assert resumed.epoch == r.epoch
    assert np.array_equal(resumed.network.params["fc1.W"], r.network.params["fc1.W"])


def test_an_absurd_learning_rate_stops_with_the_step_and_the_layer(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.json"
    model.write_text(json.dumps(SMALL))
    out = tmp_path / "m.nnk"
    assert main(["train", str(model), "--out", str(out), "--quiet"]) == 0
    good = out.read_bytes()
    capsys.readouterr()
    # An absurd lr with an ordinary weight decay: every step multiplies the weights by ~ -9.
    model.write_text(json.dumps({**SMALL, "optimizer": {"type": "SGD", "lr": 1e3, "weight_decay": 0.01},
                                 "train": {**SMALL["train"], "epochs": 100},
                                 "callbacks": [{"type": "checkpoint", "every": 1}]}))
    assert main(["train", str(model), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnkit: error: training diverged at step ") and err.count("\n") == 1
    assert "first non-finite values are in the output of node 'fc1' (Affine), whose param 'fc1.W'" in err
    assert out.read_bytes() == good  # the last good checkpoint is untouched
    periodic = sorted((tmp_path / "m-checkpoints").glob("*.nnk"))
    assert periodic  # epochs before the blow-up were saved, and every one of them is sound
    for path in periodic:
        assert all(np.all(np.isfinite(p)) for p in nnkit.load(path).params.values())


def test_stable_softmax_with_loss_in_float32() -> None:
    spec = nnkit.validate_spec({"dtype": "float32", "inputs": {"x": {"shape": [3]}},
                                "nodes": [{"type": "Add"}], "loss": {"type": "SoftmaxWithLoss"}})
    net = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss = net.loss(x, np.array([1, 0])).loss
    net.backward()
    dx = net.loss_layer.backward()
    assert np.isfinite(loss) and loss > 1e3  # log-sum-exp: huge but exact, not inf
    assert dx.dtype == np.float32 and np.all(np.isfinite(dx))


def nnkit_cli(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "nnkit.cli", *args], capture_output=True, text=True,
                          cwd=cwd, check=False, **kwargs)


def test_a_pipe_gets_plain_lines_and_quiet_only_the_result(tmp_path: Path) -> None:
    lines = nnkit_cli("train", str(EXAMPLES / "spiral.toml"), "--epochs", "20", cwd=tmp_path).stdout.splitlines()
    assert lines[0].startswith("epoch  2/20  loss ") and "val_accuracy" in lines[0] and "\r" not in "".join(lines)
    quiet = nnkit_cli("train", str(EXAMPLES / "spiral.toml"), "--epochs", "20", "--quiet", cwd=tmp_path)
    assert quiet.stdout.splitlines()[0].startswith("final: ")


def test_a_terminal_gets_a_live_bar(tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    text = run_in_terminal(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "3"], 100, tmp_path)
    assert "30/30" in text and "epoch 3/3" in text and "\r" in text  # one bar for the run, redrawn in place
    assert "final: loss" in text


def test_plots_are_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "5", "--out", str(tmp_path / "s.nnk"),
                 "--quiet"]) == 0
    assert main(["plot", str(tmp_path / "s.nnk"), "--out", str(tmp_path / "curves.png")]) == 0
    assert main(["plot", str(tmp_path / "s.nnk"), "--boundary", "--out", str(tmp_path / "regions.png")]) == 0
    for name in ("curves.png", "regions.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from nnkit.plot import plot_history

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(nnkit.NnkitError, match=r"pip install 'nnkit-numpy\[plot\]'"):
        plot_history([{"epoch": 1, "loss": 1.0}], "x.png")


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".csv"])
def test_file_datasets(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((60, 2)), rng.integers(0, 3, 60)
    if suffix == ".npz":
        np.savez(tmp_path / "d.npz", x=x, t=t)
    elif suffix == ".npy":
        np.save(tmp_path / "d.npy", np.column_stack([x, t]))
    else:
        np.savetxt(tmp_path / "d.csv", np.column_stack([x, t]), delimiter=",", header="a,b,label")
    spec = {**SMALL, "data": {"type": "file", "path": f"d{suffix}", **({"skip_rows": 1} if suffix == ".csv" else {})}}
    model = tmp_path / "m.json"
    model.write_text(json.dumps(spec))
    r = Runner.from_file(model)  # the path is relative to the model file
    assert np.allclose(r.data.x, x) and np.array_equal(r.data.t, t)
    r.fit(epochs=1)


def test_data_of_the_wrong_width_is_explained(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 5)), t=np.zeros(10, dtype=int))
    model = tmp_path / "m.json"
    model.write_text(json.dumps({**SMALL, "data": {"type": "file", "path": "d.npz"}}))
    with pytest.raises(nnkit.DataError, match=r"input 'x' has shape \(10, 5\); the network expects \(N, 2\)"):
        Runner.from_file(model).fit()
    with pytest.raises(nnkit.DataError, match="no such file"):
        model.write_text(json.dumps({**SMALL, "data": {"type": "file", "path": "missing.npz"}}))
        Runner.from_file(model).fit()


def test_predict_streams_a_million_rows_in_flat_memory(tmp_path: Path) -> None:
    r = runner()
    r.fit(epochs=1)
    r.save(tmp_path / "s.nnk")
    rows = np.random.default_rng(0).standard_normal((1_000_000, 2))
    np.save(tmp_path / "x.npy", rows)
    net = nnkit.load(tmp_path / "s.nnk").network
    from nnkit.inference import predict_file

    tracemalloc.start()
    predict_file(net, tmp_path / "x.npy", tmp_path / "y.npy", batch_size=4096)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 2**20  # the inputs (16 MB) and outputs (24 MB) never sit in memory whole
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert y.shape == (1_000_000, 3)
    assert np.allclose(y[-5:], net.predict(rows[-5:]))


def test_predict_to_stdout_and_evaluate_any_data(tmp_path: Path, capsys) -> None:
    r = runner()
    r.fit(epochs=2)
    r.save(tmp_path / "s.nnk")
    x, t = r.data.x[:5], r.data.t[:5]
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    assert main(["predict", str(tmp_path / "s.nnk"), "--input", str(tmp_path / "x.csv"), "--format", "json",
                 "--batch-size", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert np.allclose(rows, r.predict(x), atol=1e-12)
    np.savez(tmp_path / "d.npz", x=x, t=t)
    assert main(["evaluate", str(tmp_path / "s.nnk"), "--data", str(tmp_path / "d.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["result"]["data"]
    assert result["samples"] == 5 and np.sum(result["confusion"]) == 5
    assert np.trace(result["confusion"]) == round(result["accuracy"] * 5)


def test_the_digits_example_reaches_097_on_held_out_images(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    r = Runner.from_file(EXAMPLES / "digits.toml", checkpoint_dir=tmp_path)
    r.fit()
    held = r.validation_data
    assert len(held) == 359
    assert r.evaluate(held.x, held.t)["accuracy"] >= 0.97


def test_predict_feeds_a_several_input_network_from_columns(tmp_path: Path, capsys) -> None:
    r = Runner.from_file(EXAMPLES / "cbow.toml", epochs=1)
    r.fit()
    r.save(tmp_path / "cbow.nnk")
    contexts = np.column_stack([r.data.x["c0"][:4], r.data.x["c1"][:4]])
    np.savetxt(tmp_path / "ids.csv", contexts, delimiter=",", fmt="%d")
    assert main(["predict", str(tmp_path / "cbow.nnk"), "--input", str(tmp_path / "ids.csv"), "--classes"]) == 0
    labels = [int(v) for v in capsys.readouterr().out.split()]
    expected = r.predict({"c0": contexts[:, 0], "c1": contexts[:, 1]}).argmax(axis=1)
    assert labels == list(expected)
    np.savetxt(tmp_path / "bad.csv", np.ones((2, 3)), delimiter=",")
    assert main(["predict", str(tmp_path / "cbow.nnk"), "--input", str(tmp_path / "bad.csv")]) == 1
    assert r"take 2 columns (c0 () + c1 ())" in capsys.readouterr().err


def test_the_bar_without_tqdm_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from nnkit.training.progress import reporter

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "tqdm":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with pytest.raises(nnkit.NnkitError, match=r"pip install 'nnkit-numpy\[progress\]'"):
        reporter("bar")
    assert type(reporter("auto")).__name__ == "LogLines"  # auto falls back to plain lines


def test_boundary_plots_need_one_two_feature_input(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    r = Runner.from_file(EXAMPLES / "cbow.toml", epochs=1)
    r.fit()
    r.save(tmp_path / "cbow.nnk")
    assert main(["plot", str(tmp_path / "cbow.nnk"), "--boundary", "--out", str(tmp_path / "b.png")]) == 1
    assert "one input of 2 features; this one has several" in capsys.readouterr().err


def run_in_terminal(argv: list[str], columns: int, cwd: Path) -> str:
    """Run `nnkit` with a pseudo-terminal of `columns` × 24 (0 × 0: one that reports no size)
    as its standard output and error; everything it drew, escape sequences removed."""
    import fcntl
    import pty
    import re
    import struct
    import termios

    master, slave = pty.openpty()
    rows = 24 if columns else 0
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "COLUMNS": "", "LINES": ""}
    env.pop("COLUMNS"), env.pop("LINES")
    proc = subprocess.Popen([sys.executable, "-m", "nnkit", *argv], stdin=slave, stdout=slave, stderr=slave,
                            cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))


def test_the_bar_at_80_columns_shows_every_metric(tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    pytest.importorskip("sklearn")
    out = run_in_terminal(["train", str(EXAMPLES / "digits.toml"), "--epochs", "3", "--progress", "bar",
                           "-o", "d.nnk"], 80, tmp_path)
    kept = [line for line in out.replace("\r", "\n").splitlines() if line.startswith("epoch 3/3  ")]
    assert kept, out
    assert all(name in kept[0] for name in ("loss", "accuracy", "val_loss", "val_accuracy"))
    assert "run" in out or "epoch" in out  # the bar itself was drawn


def test_a_terminal_without_a_size_gets_plain_lines(tmp_path: Path) -> None:
    out = run_in_terminal(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "2", "-o", "s.nnk"], 0, tmp_path)
    assert "epoch 2/2  loss" in out and "it/s" not in out and "step/s" not in out


def test_plots_of_binary_classifiers_and_early_stopping(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from nnkit.plot import plot_history, predicted_classes

    assert list(predicted_classes(np.array([[0.2], [0.7]]))) == [0, 1]  # a sigmoid output has two regions
    assert list(predicted_classes(np.array([[0.2, 0.8], [0.9, 0.1]]))) == [1, 0]
    history = [{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "accuracy": 0.5} for e in range(1, 6)]
    figure = plot_history(history, tmp_path / "curves", restored_epoch=3, logy=True)
    assert (tmp_path / "curves").read_bytes().startswith(b"\x89PNG")  # the name as written, a PNG inside
    loss_axis, metric_axis = figure.axes
    assert loss_axis.get_yscale() == "log" and metric_axis.get_ylabel() == "accuracy"
    assert any("restored (epoch 3)" in line.get_label() for line in loss_axis.get_lines())
    import matplotlib

    assert matplotlib.get_backend() is not None  # untouched: nnkit never calls matplotlib.use
