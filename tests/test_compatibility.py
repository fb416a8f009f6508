"""A checkpoint written by nnkit 0.1 (before the core redesign) loads, predicts and resumes
exactly as that release did: mid-epoch, Adam, dropout, a validation split, early stopping.
tests/data/spiral-v0.1-expected.npz holds what 0.1 itself computed from that file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import nnkit

DATA = Path(__file__).parent / "data"
CHECKPOINT = DATA / "spiral-v0.1.nnk"


def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "spiral-v0.1-expected.npz") as archive:
        return {k: archive[k] for k in archive.files}


def test_a_previous_release_checkpoint_loads_and_predicts_identically() -> None:
    want = expected()
    net = nnkit.load(CHECKPOINT)
    assert np.array_equal(net.predict(want["x"]), want["predictions"])
    mapped = nnkit.load(CHECKPOINT, mmap=True)
    assert np.array_equal(mapped.predict(want["x"]), want["predictions"])


def test_a_previous_release_checkpoint_resumes_identically(tmp_path: Path) -> None:
    want = expected()
    model = nnkit.load(CHECKPOINT)
    assert (model.epoch, model.runner.state.progress.position) == (2, 3)  # stopped inside epoch 3
    model.fit(until=model.spec.train.epochs, verbose=False)
    assert np.array_equal(model.history.history["loss"], want["history_loss"])
    for name, param in model.params.items():
        assert np.array_equal(param, want[f"resumed/{name}"]), name


def test_a_previous_release_checkpoint_resumes_identically_through_the_cli(tmp_path: Path) -> None:
    from nnkit.cli import main

    copy = tmp_path / "old.nnk"
    shutil.copy(CHECKPOINT, copy)
    assert main(["train", "--resume", str(copy), "--out", str(tmp_path / "new.nnk"), "--quiet"]) == 0
    resumed = nnkit.load(tmp_path / "new.nnk")
    want = expected()
    for name, param in resumed.params.items():
        assert np.array_equal(param, want[f"resumed/{name}"]), name
