"""Language models the book's way (ch. 5-6): stateful recurrent layers, truncated BPTT over
one ordered stream, stateful evaluation, exact resume mid-epoch, and text generation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nnkit_rnn import TimeGRU, TimeLSTM, TimeRNN

import nnkit
from nnkit.cli import main
from nnkit.training.bptt import Windows
from nnkit.training.callbacks import Callback
from nnkit.training.runner import Runner

SENTENCES = ["the cat sat on the mat", "a dog sat on a log", "the dog saw the cat", "a cat saw a dog on the mat"]


def lm_file(tmp_path: Path, *, continuous: bool = False, epochs: int = 3, layer: str = "TimeLSTM") -> Path:
    """A small stateful language model on a text file of `SENTENCES`, with a held-out part."""
    rng = np.random.default_rng(0)
    (tmp_path / "train.txt").write_text("\n".join(SENTENCES[i] for i in rng.integers(4, size=300)) + "\n")
    (tmp_path / "valid.txt").write_text("the cat sat on a log\na dog saw the mat\n" * 10)
    path = tmp_path / "lm.toml"
    path.write_text(f"""format_version = 1
[[nodes]]
name = "embed"
type = "TimeEmbedding"
vocab_size = 12
units = 8
[[nodes]]
name = "rnn"
type = "{layer}"
units = 8
stateful = true
[[nodes]]
name = "out"
type = "TimeAffine"
units = 12
[loss]
type = "TimeSoftmaxWithLoss"
[optimizer]
type = "SGD"
lr = 1.0
[data]
type = "text"
path = "train.txt"
[validation]
data = {{ type = "text", path = "valid.txt" }}
[train]
epochs = {epochs}
batch_size = 4
seed = 3
max_grad = 5.0
bptt = {{ time_size = 6, eval_batch_size = 2, continuous = {str(continuous).lower()} }}
""")
    return path


def test_windows_are_the_books_batches() -> None:
    """RnnlmTrainer.get_batch: `rows` positions len // rows apart, time_size steps from each
    at time_idx, wrapping past the end; time_idx grows by time_size per window."""
    xs, ts = np.arange(23), np.arange(23) + 100
    windows = Windows(xs, ts, rows=3, time_size=4, what="test")
    assert windows.steps == 23 // 12
    time_idx = 0
    for k in range(4):
        x, t = windows.window(k)
        for r in range(3):
            for step in range(4):
                assert x[r, step] == xs[(r * (23 // 3) + time_idx + step) % 23]
                assert t[r, step] == ts[(r * (23 // 3) + time_idx + step) % 23]
        time_idx += 4


@pytest.mark.parametrize("layer_cls", [TimeRNN, TimeLSTM, TimeGRU])
def test_a_stateful_layer_fed_window_after_window_equals_one_pass(layer_cls: Any) -> None:
    rng = np.random.default_rng(0)
    config = layer_cls.Config(type=layer_cls.__name__, units=5, stateful=True)
    layer = layer_cls(config, [(9, 3)], rng=np.random.default_rng(1))
    xs = rng.standard_normal((2, 9, 3))
    whole = layer.forward(xs)
    layer.reset_state()
    parts = [layer.forward(xs[:, :4]), layer.forward(xs[:, 4:])]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=1e-12, atol=1e-14)
    assert set(layer.state()) == set(layer_cls.state_names)
    layer.reset_state()
    np.testing.assert_array_equal(layer.forward(xs[:, :4]), parts[0])  # from zero again
    with pytest.raises(ValueError, match="carries state for batches of 2, given 3; reset its state first"):
        layer.forward(rng.standard_normal((3, 4, 3)))
    stateless = layer_cls(layer_cls.Config(type=layer_cls.__name__, units=5), [(9, 3)], rng=np.random.default_rng(1))
    stateless.forward(xs)
    assert stateless.state() == {}


class StopAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, runner: Any, step: int, loss: float) -> None:
        if step == self.step:
            runner.stop_training = True


@pytest.mark.parametrize("continuous", [False, True])
def test_a_bptt_run_resumed_mid_epoch_is_bit_identical(tmp_path: Path, continuous: bool) -> None:
    path = lm_file(tmp_path, continuous=continuous)
    straight = Runner.from_file(path)
    straight.fit()
    steps = straight.steps_per_epoch
    first = Runner.from_file(path)
    first.fit(callbacks=[StopAtStep(steps + steps // 2)])  # halfway through epoch 2
    assert first.state.progress.position == steps // 2 and first.epoch == 1
    assert first.network.states()["rnn.h"].shape == (4, 8)
    first.save(tmp_path / "mid.nnk")
    resumed = Runner.from_checkpoint(tmp_path / "mid.nnk")
    np.testing.assert_array_equal(resumed.network.states()["rnn.c"], first.network.states()["rnn.c"])
    resumed.fit()
    assert resumed.history == straight.history
    for name, param in straight.network.params.items():
        assert np.array_equal(resumed.network.params[name], param), name
    assert resumed.history[-1]["val_perplexity"] == pytest.approx(np.exp(resumed.history[-1]["val_loss"]))


def test_the_cli_resumes_a_bptt_run_bit_for_bit(tmp_path: Path) -> None:
    path = lm_file(tmp_path, continuous=True, epochs=4)
    assert main(["train", str(path), "-q", "--out", str(tmp_path / "straight.nnk")]) == 0
    assert main(["train", str(path), "-q", "--epochs", "2", "--out", str(tmp_path / "half.nnk")]) == 0
    assert main(["train", "--resume", str(tmp_path / "half.nnk"), "--epochs", "4", "-q",
                 "--out", str(tmp_path / "resumed.nnk")]) == 0
    straight, resumed = nnkit.load(tmp_path / "straight.nnk"), nnkit.load(tmp_path / "resumed.nnk")
    for name, param in straight.network.params.items():
        assert np.array_equal(resumed.network.params[name], param), name


def test_evaluation_is_the_books_eval_perplexity_and_leaves_training_alone(tmp_path: Path) -> None:
    runner = Runner.from_file(lm_file(tmp_path), epochs=1)
    runner.fit(callbacks=[StopAtStep(5)])
    carried = {k: v.copy() for k, v in runner.network.states().items()}
    held = runner.validation_data
    assert held is not None
    scores = runner.evaluate(held.x, held.t)
    for key, value in runner.network.states().items():  # training's state is back as it was
        np.testing.assert_array_equal(value, carried[key])
    # The book's eval_perplexity, written out: 2 rows (len - 1) // 2 apart, windows of 6
    # from the start, the state carried from zero, perplexity = exp(mean window loss).
    ids = np.append(held.x.reshape(-1)[held.t.reshape(-1) >= 0], held.t.reshape(-1)[held.t.reshape(-1) >= 0][-1])
    jump, losses = (len(ids) - 1) // 2, []
    with runner.network.streaming(carry=True):
        for k in range((len(ids) - 1) // 12):
            at = np.arange(2)[:, None] * jump + k * 6 + np.arange(6)
            losses.append(runner.network.loss(ids[at], ids[at + 1], train=False).loss)
    assert scores["loss"] == pytest.approx(np.mean(losses), rel=1e-12)
    assert scores["perplexity"] == pytest.approx(np.exp(np.mean(losses)), rel=1e-12)


def test_held_out_words_unknown_to_training_become_unk_or_one_clear_error(tmp_path: Path) -> None:
    path = lm_file(tmp_path, epochs=1)
    (tmp_path / "valid.txt").write_text("the cat sat on a zebra\na dog saw the mat\n" * 10)
    with pytest.raises(nnkit.DataError, match="1 words the training text lacks \\(first 'zebra'\\) and no <unk>"):
        Runner.from_file(path).fit()
    (tmp_path / "train.txt").write_text((tmp_path / "train.txt").read_text() + "<unk> sat\n")
    runner = Runner.from_file(path)
    held = runner.validation_data
    assert held is not None and runner.data.vocabulary is not None
    unk = runner.data.vocabulary.index("<unk>")
    assert held.x[0, 5] == unk  # "the cat sat on a zebra": zebra is <unk>


def test_generation_carries_the_state_and_never_reruns_the_prefix(tmp_path: Path) -> None:
    model = nnkit.Model.from_file(lm_file(tmp_path, epochs=3))
    model.fit(verbose=False)
    words = model.generate("the cat", length=12, greedy=True)
    # Greedy decoding, the slow way: the whole sequence again from zero state at every step.
    network, vocabulary = model.network, model.spec.inputs["x"].vocabulary
    sequence = [vocabulary.index(w) for w in ["the", "cat"]]
    with network.streaming(carry=False):
        for _ in range(12):
            scores = network.forward(np.array([sequence]), any_length=True)
            sequence.append(int(np.argmax(scores[0, -1])))
    assert words == [vocabulary[i] for i in sequence[2:]]
    assert model.generate("the", length=20, seed=5) == model.generate("the", length=20, seed=5)
    assert model.generate("the", length=30, seed=5) != model.generate("the", length=30, seed=6)
    assert "cat" not in model.generate("the", length=40, seed=1, skip=["cat"])
    with pytest.raises(nnkit.DataError,
                       match="'kat' is not in the model's vocabulary of 10 words; did you mean 'sat', 'mat', 'cat'"):
        model.generate("the kat")


def test_generate_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = lm_file(tmp_path, epochs=2)
    assert main(["train", str(path), "-q", "--out", str(tmp_path / "lm.nnk")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "lm.nnk"), "--start", "a dog", "--length", "15", "--seed", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("a dog ") and text.count(" ") >= 10
    assert main(["generate", str(tmp_path / "lm.nnk"), "--json", "--greedy", "--length", "3"]) == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert result["start"] == ["<eos>"] and len(result["words"]) == 3
    assert main(["generate", str(tmp_path / "lm.nnk"), "--start", "the zebra"]) == 1
    assert capsys.readouterr().err == "nnkit: error: 'zebra' is not in the model's vocabulary of 10 words\n"


def test_evaluate_scores_held_out_text_in_the_models_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = lm_file(tmp_path, epochs=2)
    assert main(["train", str(path), "-q", "--out", str(tmp_path / "lm.nnk")]) == 0
    capsys.readouterr()
    (tmp_path / "test.txt").write_text("the cat saw a dog on the log\n" * 5)
    assert main(["evaluate", str(tmp_path / "lm.nnk"), "--data", str(tmp_path / "test.txt"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["result"]["data"]
    model = nnkit.load(tmp_path / "lm.nnk")
    ids = [model.spec.inputs["x"].vocabulary.index(w) for w in ("the cat saw a dog on the log <eos> " * 5).split()]
    x, t = np.array(ids[:-1]), np.array(ids[1:])
    assert scores["perplexity"] == pytest.approx(model.evaluate(x[None], t[None])["perplexity"], rel=1e-12)
    (tmp_path / "odd.txt").write_text("the cat ate a zebra\n")
    assert main(["evaluate", str(tmp_path / "lm.nnk"), "--data", str(tmp_path / "odd.txt")]) == 1
    assert "words the training text lacks (first 'ate')" in capsys.readouterr().err


def test_generate_refuses_a_model_that_is_no_language_model(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import EXAMPLES

    assert main(["train", str(EXAMPLES / "spiral.toml"), "-q", "--epochs", "1", "--out", str(tmp_path / "s.nnk")]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "s.nnk")]) == 1
    assert capsys.readouterr().err.startswith("nnkit: error: the network knows no words: text is for a network of "
                                              "one input of word ids")
    assert main(["evaluate", str(tmp_path / "s.nnk"), "--data", str(tmp_path / "any.txt")]) == 1
    assert capsys.readouterr().err.startswith("nnkit: error: the network knows no words")


def test_bptt_needs_one_stream_of_ids(tmp_path: Path) -> None:
    from tests.conftest import EXAMPLES

    spec = nnkit.read_model_file(EXAMPLES / "spiral.toml").to_dict()
    spec["train"]["bptt"] = {"time_size": 5}
    (tmp_path / "m.json").write_text(json.dumps(spec))
    with pytest.raises(nnkit.DataError, match="train.bptt needs word ids and their next words of one shape"):
        Runner.from_file(tmp_path / "m.json").fit()
