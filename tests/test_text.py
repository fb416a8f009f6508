"""Text files as word corpora, read as the book reads PTB: `<eos>` per line, the book's
tokens, ids by first appearance; cut into CBOW windows or next-word sequences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.data.text import TextConfig, TextCorpus

from .conftest import EXAMPLES

PTB_LIKE = "the <unk> rose $ N million\nthe company said .\n\nit rose\n"


def corpus(tmp_path: Path, text: str = PTB_LIKE, **config: object) -> TextCorpus:
    (tmp_path / "c.txt").write_text(text)
    dataset = TextCorpus(TextConfig(path="c.txt", **config))
    dataset.base_dir = tmp_path
    return dataset


def test_words_end_each_line_with_eos_and_keep_ptbs_tokens(tmp_path: Path) -> None:
    words = corpus(tmp_path).words()
    assert words == ["the", "<unk>", "rose", "$", "N", "million", "<eos>", "the", "company", "said", ".", "<eos>",
                     "it", "rose", "<eos>"]
    assert corpus(tmp_path, eos=False).words()[:7] == ["the", "<unk>", "rose", "$", "N", "million", "the"]
    assert corpus(tmp_path, max_words=4).words() == ["the", "<unk>", "rose", "$"]
    assert corpus(tmp_path).vocabulary()[:4] == ["the", "<unk>", "rose", "$"]  # first appearance


def test_next_word_sequences_and_their_padding(tmp_path: Path) -> None:
    dataset = corpus(tmp_path, mode="next_word", length=4)
    data = dataset.load(np.random.default_rng(0))
    ids = {w: i for i, w in enumerate(dataset.vocabulary())}
    words = [ids[w] for w in dataset.words()]
    assert data.x.shape == data.t.shape == (4, 4)  # 14 (x, next) pairs in sequences of 4
    assert data.x.reshape(-1)[:14].tolist() == words[:-1] and data.t.reshape(-1)[:14].tolist() == words[1:]
    assert data.t.reshape(-1)[14:].tolist() == [-1, -1]  # past the end: ignored by TimeSoftmaxWithLoss


def test_cbow_windows(tmp_path: Path) -> None:
    data = corpus(tmp_path, mode="cbow", window=2).load(np.random.default_rng(0))
    assert set(data.x) == {"c0", "c1", "c2", "c3"} and len(data.t) == 15 - 4
    assert data.x["c1"][0] == 1 and data.t[0] == 2 and data.x["c2"][0] == 3  # <unk> [rose] $


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe not text", "not UTF-8 text"),
    (b"one\n", "the corpus has 2 words; a window of 2 needs more than 4"),
])
def test_bad_text_is_one_clear_error(content: bytes, message: str, tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_bytes(content)
    dataset = TextCorpus(TextConfig(path="c.txt", mode="cbow", window=2))
    dataset.base_dir = tmp_path
    with pytest.raises((nnkit.DataError, ValueError), match=message):
        dataset.load(np.random.default_rng(0))


def test_a_windowed_language_model_learns_a_text_file(tmp_path: Path) -> None:
    pytest.importorskip("nnkit_rnn")
    rng = np.random.default_rng(0)
    lines = [" ".join(["the", "cat", "sat", "on", "the", "mat", "."][: 3 + rng.integers(5)]) for _ in range(200)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    model_file = tmp_path / "lm.toml"
    model_file.write_text("""format_version = 1
[[nodes]]
type = "TimeEmbedding"
vocab_size = 8
units = 16
[[nodes]]
type = "TimeLSTM"
units = 16
[[nodes]]
type = "TimeAffine"
units = 8
[loss]
type = "TimeSoftmaxWithLoss"
[optimizer]
type = "Adam"
lr = 0.02
[data]
type = "text"
path = "c.txt"
length = 10
[train]
epochs = 15
batch_size = 10
""")
    history = nnkit.Model.from_file(model_file).fit(verbose=False).records
    assert history[-1]["perplexity"] < 0.5 * history[0]["perplexity"]
    assert history[-1]["perplexity"] == pytest.approx(np.exp(history[-1]["loss"]), rel=1e-12)


def test_a_checkpoint_keeps_its_corpus_words(tmp_path: Path) -> None:
    """Trained on a word corpus, the network's integer inputs keep the vocabulary (id =
    position), in the checkpoint too: ids map to words without the text file."""
    (tmp_path / "c.txt").write_text(PTB_LIKE * 20)
    spec = nnkit.read_model_file(EXAMPLES / "cbow.toml").to_dict()
    spec["data"] = {"type": "text", "path": "c.txt", "mode": "cbow"}
    for node in spec["nodes"]:
        if "vocab_size" in node:
            node["vocab_size"] = 11
    spec["nodes"][-1]["units"] = 11
    (tmp_path / "m.json").write_text(json.dumps(spec))
    model = nnkit.Model.from_file(tmp_path / "m.json", epochs=1)
    model.fit(verbose=False)
    model.save(tmp_path / "m.nnk")
    (tmp_path / "c.txt").unlink()  # the checkpoint needs the text no more to speak words
    loaded = nnkit.load(tmp_path / "m.nnk", grads=False)
    words = ["the", "<unk>", "rose", "$", "N", "million", "<eos>", "company", "said", ".", "it"]
    assert loaded.spec.inputs["c0"].vocabulary == loaded.spec.inputs["c1"].vocabulary == words


def test_only_integer_inputs_have_a_vocabulary() -> None:
    from nnkit.spec import InputSpec

    with pytest.raises(ValueError, match='a vocabulary names the ids of an "int" input'):
        InputSpec.model_validate({"shape": [3], "vocabulary": ["a"]})
