"""Every example model file validates and trains; CBOW shares one embedding and learns
which words go together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.data.corpus import Corpus, nearest
from nnkit.training.runner import Runner

from .conftest import EXAMPLES

PLUGIN_EXAMPLES = {"sequence.toml": "TimeLSTM", "ch5-rnnlm.toml": "TimeRNN", "ch6-rnnlm.toml": "TimeLSTM",
                   "ch6-better-rnnlm.toml": "TimeLSTM", "ch7-seq2seq.toml": "TimeLSTM", "ch7-peeky.toml": "TimeLSTM",
                   "ch8-attention.toml": "TimeAttention"}
#: Examples that take a minute or more an epoch train here on less data: [data] changes.
SMALLER = {"ch6-rnnlm.toml": {"max_words": 5000}, "ch6-better-rnnlm.toml": {"max_words": 2000},
           "ch7-seq2seq.toml": {"count": 2000}, "ch7-peeky.toml": {"count": 2000}, "ch8-attention.toml": {"count": 500}}


MODEL_FILES = sorted(p for p in EXAMPLES.glob("*.toml") if not p.name.endswith("-sweep.toml"))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*-sweep.toml")), ids=lambda p: p.name)
def test_every_example_sweep_file_validates(path: Path) -> None:
    pytest.importorskip("optuna")
    from nnkit.sweeps.spec import read_sweep_file

    assert read_sweep_file(path, nnkit.get_registry()).file.space  # every trial it can make checked


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_every_example_validates_and_trains(path: Path, tmp_path: Path) -> None:
    needs = PLUGIN_EXAMPLES.get(path.name)
    if needs and nnkit.get_registry().find("layer", needs) is None:
        pytest.skip(f"{path.name} needs the plugin that provides {needs}")
    if path.name in ("digits.toml", "regression.toml"):
        pytest.importorskip("sklearn")
    if path.name in SMALLER:
        spec = nnkit.read_model_file(path).with_train(epochs=2)
        assert spec.data is not None
        spec = spec.replace(data=spec.data.model_copy(update=SMALLER[path.name]))
        runner = Runner.from_spec(spec, source=str(path), checkpoint_dir=tmp_path)
    else:
        runner = Runner.from_file(path, epochs=2, checkpoint_dir=tmp_path)
    history = runner.fit()
    assert len(history) == 2 and np.isfinite(history[-1]["loss"])


def test_cbow_shares_one_embedding_and_finds_neighbours(tmp_path: Path) -> None:
    runner = Runner.from_file(EXAMPLES / "cbow.toml")
    runner.fit()
    assert [k for k in runner.network.params if k.startswith("emb")] == ["emb0.W"]
    vocabulary = Corpus(runner.spec.data).vocabulary()
    vectors = runner.network.params["emb0.W"]
    assert {w for w, _ in nearest(vectors, vocabulary, "tea", top=3)} == {"coffee", "water", "milk"}
    assert {w for w, _ in nearest(vectors, vocabulary, "cats", top=2)} == {"dogs", "birds"}
    runner.save(tmp_path / "cbow.nnk")
    shown = subprocess.run([sys.executable, str(EXAMPLES / "cbow_nearest.py"), str(tmp_path / "cbow.nnk"), "you"],
                           capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("you: ") and {"we", "they"} <= set(shown.stdout.replace(",", " ").split())
