"""State through the graph (the book's seq2seq, ch. 7): a decoder started from the
encoder's final state, "enc.h" and "enc.c", with the chain rule across the boundary
checked by whole-network finite differences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnkit
from nnkit.network import Network
from nnkit.plugins import get_registry
from nnkit.testing import numeric_gradient, relative_error


def seq2seq(layer: str = "TimeLSTM", **changes: Any) -> dict[str, Any]:
    """An encoder-decoder model file as a dict: the decoder starts from the encoder's state."""
    states = ["enc.h", "enc.c"] if layer == "TimeLSTM" else ["enc.h"]
    spec: dict[str, Any] = {
        "format_version": 1,
        "inputs": {"question": {"shape": [5], "dtype": "int"}, "answer_in": {"shape": [4], "dtype": "int"}},
        "nodes": [
            {"name": "enc_embed", "type": "TimeEmbedding", "vocab_size": 7, "units": 4, "inputs": ["question"],
             "init_scale": 0.5},
            {"name": "enc", "type": layer, "units": 6, "return_sequences": False},
            {"name": "dec_embed", "type": "TimeEmbedding", "vocab_size": 7, "units": 4, "inputs": ["answer_in"],
             "init_scale": 0.5},
            {"name": "dec", "type": layer, "units": 6, "inputs": ["dec_embed", *states]},
            {"name": "out", "type": "TimeAffine", "units": 7},
        ],
        "loss": {"type": "TimeSoftmaxWithLoss"},
        "optimizer": {"type": "Adam", "lr": 0.01},
    }
    spec.update(changes)
    return spec


def build(spec: dict[str, Any]) -> Network:
    return Network.from_spec(nnkit.validate_spec(spec), get_registry(), rng=np.random.default_rng(0))


@pytest.mark.parametrize("layer", ["TimeLSTM", "TimeGRU", "TimeRNN"])
def test_the_gradient_crosses_from_decoder_to_encoder(layer: str) -> None:
    network = build(seq2seq(layer))
    rng = np.random.default_rng(1)
    x = {"question": rng.integers(0, 7, (3, 5)), "answer_in": rng.integers(0, 7, (3, 4))}
    t = rng.integers(0, 7, (3, 4))
    network.loss(x, t)
    network.backward()
    analytic = {name: grad.copy() for name, grad in network.grads.items()}
    assert np.abs(analytic["enc.Wx"]).max() > 1e-6  # the encoder learns only through its state

    def loss() -> float:
        return network.loss(x, t, train=False).loss

    for name, param in network.params.items():
        err = relative_error(analytic[name], numeric_gradient(loss, param))
        assert err < 1e-6, f"{name}: relative error {err:.1e}"


def test_a_port_the_layer_lacks_or_a_stateful_layer_given_a_state_is_one_clear_error() -> None:
    spec = seq2seq("TimeGRU")
    spec["nodes"][3]["inputs"] = ["dec_embed", "enc.c"]
    with pytest.raises(nnkit.ModelFileError, match=r"node 'dec' takes input 'enc.c', but node 'enc' has no output "
                                                   r"'c' \(its further outputs: h\)"):
        build(spec)
    spec["nodes"][3]["inputs"] = ["dec_embed", "nowhere.h"]
    with pytest.raises(nnkit.ModelFileError, match="'nowhere.h', which is no node or network input"):
        build(spec)
    spec = seq2seq()
    spec["nodes"][3]["stateful"] = True
    with pytest.raises(nnkit.ModelFileError, match="a stateful layer starts from the state it carries"):
        build(spec)


def test_a_seq2seq_trains_and_round_trips(tmp_path: Path) -> None:
    """Learn to echo the question's first 4 symbols: only through the encoder's state."""
    rng = np.random.default_rng(0)
    question = rng.integers(1, 7, (400, 5))
    answer_in = np.concatenate([np.zeros((400, 1), np.int64), question[:, :3]], axis=1)  # start symbol 0
    spec = seq2seq(train={"epochs": 100, "batch_size": 40, "seed": 0}, optimizer={"type": "Adam", "lr": 0.02})
    (tmp_path / "s.json").write_text(json.dumps(spec))
    model = nnkit.Model.from_file(tmp_path / "s.json")
    x = {"question": question, "answer_in": answer_in}
    model.fit(x, question[:, :4], verbose=False)
    assert model.evaluate(x, question[:, :4])["accuracy"] > 0.95  # 0.975 measured
    model.save(tmp_path / "s.nnk")
    loaded = nnkit.load(tmp_path / "s.nnk")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_seq2seq_exports_to_onnx(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from nnkit.interop.onnx import to_onnx

    network = build(seq2seq())
    rng = np.random.default_rng(1)
    x = {"question": rng.integers(0, 7, (3, 5)), "answer_in": rng.integers(0, 7, (3, 4))}
    session = ort.InferenceSession(to_onnx(network, get_registry()).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (got,) = session.run(None, x)
    np.testing.assert_allclose(got, network.predict(x), rtol=1e-10, atol=1e-12)


def test_greedy_decoding_feeds_back_its_own_answers(tmp_path: Path) -> None:
    spec = nnkit.read_model_file(Path(__file__).parents[3] / "examples" / "ch7-peeky.toml").to_dict()
    spec["data"]["count"] = 1500
    spec["train"].update(epochs=2, batch_size=50)
    (tmp_path / "p.json").write_text(json.dumps(spec))
    model = nnkit.Model.from_file(tmp_path / "p.json")
    model.fit(verbose=False)
    held = model.validation_data
    assert held is not None and isinstance(held.x, dict)
    answers = model.decode(held.x)
    assert answers.shape == held.t.shape
    start = held.x["answer_in"][0, 0]
    for row in range(8):  # the slow way: one question, the answer so far padded with anything
        sequence = [start]
        for k in range(4):
            feed = np.array([sequence + [0] * (4 - len(sequence))])
            scores = model.network.forward({"question": held.x["question"][row:row + 1], "answer_in": feed})
            sequence.append(int(scores[0, k].argmax()))
        assert sequence[1:] == answers[row].tolist()
    encoder, calls = model.network.layers["enc"], []
    encode = encoder.forward
    encoder.forward = lambda *a, **k: (calls.append(1), encode(*a, **k))[1]  # type: ignore[method-assign]
    np.testing.assert_array_equal(model.decode(held.x), answers)
    assert len(calls) == 1  # the encoder runs once; the decoder once per answer step
    forced = model.predict(held.x).argmax(axis=-1)  # the true answer fed in: step 0 sees the same
    np.testing.assert_array_equal(forced[:, 0], answers[:, 0])
    with pytest.raises(nnkit.DataError, match="decoding feeds the network input 'answer'"):
        model.decode(held.x, feed="answer")
    scores = model.evaluate(held.x, held.t)  # the book's measure beside the teacher-forced ones
    assert scores["exact_match"] == np.mean(np.all(answers == held.t, axis=1))
    assert [set(r) >= {"val_exact_match", "val_accuracy"} and "exact_match" not in r for r in model.history] == \
        [True, True]
    assert model.history[-1]["val_exact_match"] == scores["exact_match"]


def test_plot_attention_draws_the_books_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from nnkit.cli import main

    spec = nnkit.read_model_file(Path(__file__).parents[3] / "examples" / "ch8-attention.toml").to_dict()
    spec["data"]["count"] = 300
    spec["train"].update(epochs=1, batch_size=50)
    for node in spec["nodes"]:
        if node["type"] == "TimeLSTM":
            node["units"] = 8
    (tmp_path / "a.json").write_text(json.dumps(spec))
    assert main(["train", str(tmp_path / "a.json"), "-q", "--out", str(tmp_path / "a.nnk")]) == 0
    map_png = tmp_path / "map.png"
    assert main(["plot", str(tmp_path / "a.nnk"), "--attention", "september 27, 1994", "--out", str(map_png)]) == 0
    assert map_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "a.nnk"), "--attention", "septémbre 27", "--out", str(tmp_path / "x.png")]) == 1
    assert capsys.readouterr().err == ("nnkit: error: question 'septémbre 27': 'é' is not among the model's "
                                       "characters\n")
    assert not (tmp_path / "x.png").exists()
    assert main(["generate", str(tmp_path / "a.nnk"), "--input", "may 1, 1999", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert result["questions"] == ["may 1, 1999"] and len(result["answers"][0]) <= 10
    assert main(["generate", str(tmp_path / "a.nnk")]) == 1
    assert capsys.readouterr().err.endswith("an encoder-decoder answers questions: give --input \"16+75\" or "
                                            "--questions FILE\n")


def test_an_encoder_decoder_reports_exact_match_by_default() -> None:
    assert [m.type for m in nnkit.validate_spec(seq2seq()).metrics] == ["perplexity", "accuracy", "exact_match"]
