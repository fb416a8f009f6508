"""Exact resume: 20 epochs straight equal 10, a save, and 10 more in a fresh process, for
every built-in optimizer (with dropout, warm-up, a schedule and clipping in play)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.checkpoint.container import CheckpointFile
from nnkit.optim.optimizers import BUILTIN_OPTIMIZERS
from nnkit.training.callbacks import Callback
from nnkit.training.runner import Runner

from .conftest import EXAMPLES

MODEL = """
[inputs]
x = {{ shape = [2] }}

[[nodes]]
name = "fc1"
type = "Affine"
units = 12

[[nodes]]
type = "Tanh"

[[nodes]]
type = "Dropout"
rate = 0.2

[[nodes]]
name = "fc2"
type = "Affine"
units = 3

[loss]
type = "SoftmaxWithLoss"

[optimizer]
type = "{optimizer}"
lr = {lr}
warmup_steps = 5
schedule = {{ type = "exponential", gamma = 0.999 }}

[data]
type = "spiral"
points_per_class = 40

[train]
epochs = 20
batch_size = 16
seed = 11
max_grad = 5.0
"""


def nnkit_cli(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "nnkit.cli", *args, "--quiet"],
                            capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, result.stderr


def arrays(path: Path) -> dict[str, np.ndarray]:
    with CheckpointFile(path) as opened:
        return {name: np.array(opened.array(name)) for name in opened.names()}


@pytest.mark.parametrize("optimizer", [c.Config.model_fields["type"].default for c in BUILTIN_OPTIMIZERS])
def test_resume_in_a_fresh_process_is_bit_identical(optimizer: str, tmp_path: Path) -> None:
    lr = 0.001 if optimizer.startswith("Adam") else 0.1
    (tmp_path / "m.toml").write_text(MODEL.format(optimizer=optimizer, lr=lr))
    nnkit_cli("train", "m.toml", "--out", "straight.nnk", cwd=tmp_path)
    nnkit_cli("train", "m.toml", "--epochs", "10", "--out", "half.nnk", cwd=tmp_path)
    nnkit_cli("train", "m.toml", "--resume", "half.nnk", "--out", "resumed.nnk", cwd=tmp_path)
    straight, resumed = arrays(tmp_path / "straight.nnk"), arrays(tmp_path / "resumed.nnk")
    assert straight.keys() == resumed.keys()
    assert any(k.startswith("optimizer/") for k in straight) == (optimizer != "SGD")
    for name in straight:
        assert np.array_equal(straight[name], resumed[name]), name
    with CheckpointFile(tmp_path / "straight.nnk") as a, CheckpointFile(tmp_path / "resumed.nnk") as b:
        assert a.header.progress == b.header.progress
        assert a.header.rng == b.header.rng
        assert a.header.optimizer == b.header.optimizer


class StopAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, runner, step, loss):  # type: ignore[no-untyped-def]
        if step == self.step:
            runner.stop_training = True


def test_a_run_stopped_mid_epoch_resumes_mid_epoch(tmp_path: Path) -> None:
    straight = Runner.from_file(EXAMPLES / "spiral.toml", epochs=4)
    straight.fit()
    first = Runner.from_file(EXAMPLES / "spiral.toml", epochs=4)
    first.fit(callbacks=[StopAtStep(15)])  # 10 steps per epoch: halfway through epoch 2
    assert first.state.progress.position == 5 and first.epoch == 1
    first.save(tmp_path / "mid.nnk")
    resumed = Runner.from_checkpoint(tmp_path / "mid.nnk")
    resumed.fit()
    assert resumed.history == straight.history
    for name, param in straight.network.params.items():
        assert np.array_equal(resumed.network.params[name], param)


def test_save_load_save_gives_the_same_bytes(tmp_path: Path) -> None:
    runner = Runner.from_file(EXAMPLES / "spiral.toml", epochs=3)
    runner.fit()
    runner.save(tmp_path / "a.nnk")
    Runner.from_checkpoint(tmp_path / "a.nnk").save(tmp_path / "b.nnk")
    assert (tmp_path / "a.nnk").read_bytes() == (tmp_path / "b.nnk").read_bytes()


def test_resume_refuses_a_different_network(tmp_path: Path) -> None:
    runner = Runner.from_file(EXAMPLES / "spiral.toml", epochs=1)
    runner.fit()
    runner.save(tmp_path / "a.nnk")
    other = nnkit.read_model_file(EXAMPLES / "spiral.toml").to_dict()
    other["nodes"][0]["units"] = 11
    with pytest.raises(nnkit.ModelFileError, match=r"differs from the checkpoint's \(nodes\)"):
        Runner.from_checkpoint(tmp_path / "a.nnk", spec=nnkit.validate_spec(other))


def cli(*args: str) -> int:
    from nnkit.cli import main

    return main([*map(str, args)])


@pytest.mark.parametrize("example", ["spiral", "cbow", "cbow-ns", "sequence", "digits", "regression"])
def test_every_example_resumes_bit_for_bit_through_the_cli(example: str, tmp_path: Path) -> None:
    path = EXAMPLES / f"{example}.toml"
    if example == "sequence" and nnkit.get_registry().find("layer", "TimeLSTM") is None:
        pytest.skip("needs nnkit-rnn")
    if example in ("digits", "regression"):
        pytest.importorskip("sklearn")
    assert cli("train", path, "--epochs", 2, "--quiet", "--out", tmp_path / "half.nnk") == 0
    assert cli("train", "--resume", tmp_path / "half.nnk", "--epochs", 3, "--quiet", "--out", tmp_path / "r.nnk") == 0
    assert cli("train", path, "--epochs", 3, "--quiet", "--out", tmp_path / "straight.nnk") == 0
    resumed, straight = nnkit.load(tmp_path / "r.nnk"), nnkit.load(tmp_path / "straight.nnk")
    assert resumed.history == straight.history
    for name, param in straight.params.items():
        assert np.array_equal(resumed.params[name], param), name


def test_a_resume_keeps_the_runs_seed_and_refuses_another_recipe(tmp_path: Path, capsys) -> None:
    path = EXAMPLES / "spiral.toml"
    assert cli("train", path, "--epochs", 2, "--seed", 3, "--quiet", "--out", tmp_path / "s3.nnk") == 0
    assert cli("train", path, "--epochs", 4, "--seed", 3, "--quiet", "--out", tmp_path / "straight.nnk") == 0
    capsys.readouterr()
    # The model file says seed 1: the stored run's seed 3 stands, and the file is refused.
    assert cli("train", path, "--resume", tmp_path / "s3.nnk", "--epochs", 4, "--quiet") == 1
    assert "changes train.seed (3 → 1); only train.epochs, train.log_every, optimizer.lr may change" in \
        capsys.readouterr().err
    assert cli("train", "--resume", tmp_path / "s3.nnk", "--seed", 1, "--quiet") == 1
    assert "--seed cannot change a resumed run" in capsys.readouterr().err
    # Without the model file the stored recipe, seed included, carries on exactly.
    assert cli("train", "--resume", tmp_path / "s3.nnk", "--epochs", 4, "--quiet", "--out", tmp_path / "r.nnk") == 0
    assert "resuming with train.epochs 2 → 4" in capsys.readouterr().out
    resumed, straight = nnkit.load(tmp_path / "r.nnk"), nnkit.load(tmp_path / "straight.nnk")
    assert resumed.spec.train.seed == 3 and resumed.history == straight.history
    # An allowed change from the model file is applied and said.
    changed = tmp_path / "lr.toml"
    changed.write_text(path.read_text().replace("lr = 1.0", "lr = 0.5").replace("seed = 1", "seed = 3"))
    assert cli("train", changed, "--resume", tmp_path / "s3.nnk", "--epochs", 3, "--quiet") == 0
    out = capsys.readouterr().out
    assert "resuming with optimizer.lr 1.0 → 0.5" in out and "resuming with train.epochs 2 → 3" in out


def test_saving_without_training_keeps_every_callbacks_state(tmp_path: Path) -> None:
    model = nnkit.Model.from_file(EXAMPLES / "digits.toml", epochs=3, checkpoint_dir=tmp_path) if _sklearn() else None
    if model is None:
        pytest.skip("needs scikit-learn")
    model.fit(verbose=False)
    model.save(tmp_path / "a.nnk")
    nnkit.load(tmp_path / "a.nnk").save(tmp_path / "b.nnk")  # loaded and saved, never trained
    with CheckpointFile(tmp_path / "a.nnk") as a, CheckpointFile(tmp_path / "b.nnk") as b:
        assert a.header.progress.callbacks == b.header.progress.callbacks
        assert a.header.progress.callbacks["early_stopping"]["best_epoch"] is not None
        stored = a.names("callbacks/")
        assert stored and stored == b.names("callbacks/")
        for name in stored:
            assert np.array_equal(a.array(name), b.array(name))


def test_keep_holds_across_resumes(tmp_path: Path) -> None:
    model_file = tmp_path / "keep.toml"
    model_file.write_text((EXAMPLES / "spiral.toml").read_text()
                          + '\n[[callbacks]]\ntype = "checkpoint"\nevery = 1\nkeep = 2\n')
    folder = tmp_path / "ckpts"
    assert cli("train", model_file, "--epochs", 3, "--quiet", "--checkpoint-dir", folder) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-000002.nnk", "epoch-000003.nnk"]
    assert cli("train", "--resume", folder / "epoch-000003.nnk", "--epochs", 6, "--quiet",
               "--checkpoint-dir", folder) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-000005.nnk", "epoch-000006.nnk"]


def _sklearn() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True
