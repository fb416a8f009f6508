"""The `nnkit` command: each subcommand, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.cli import main

from .conftest import EXAMPLES, ROOT


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "spiral.nnk"
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "5", "--out", str(path), "--quiet"]) == 0
    return path


def test_train_prints_progress_and_the_final_result(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.nnk"
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "20", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch  2/20  loss ")
    assert lines[-3].startswith("final: loss ") and "accuracy" in lines[-3]
    assert lines[-2].startswith("validation: loss ") and "(300 held-out samples)" in lines[-2]
    assert lines[-1] == f"saved {out}"
    assert out.exists()


def test_predict_writes_probabilities_and_classes(checkpoint: Path, tmp_path: Path, capsys) -> None:
    x = np.array([[0.1, 0.2], [-0.5, 0.3], [0.0, -0.4]])
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    args = ["predict", str(checkpoint), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]
    assert main(args) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (3, 3) and np.allclose(y.sum(axis=1), 1.0)
    assert main(["predict", str(checkpoint), "--input", str(tmp_path / "x.csv"), "--classes"]) == 0
    labels = [int(v) for v in capsys.readouterr().out.split()]
    assert labels == list(y.argmax(axis=1))


def test_evaluate_json(checkpoint: Path, capsys) -> None:
    assert main(["evaluate", str(checkpoint), "--json"]) == 0
    envelope = json.loads(capsys.readouterr().out)
    assert envelope["command"] == "evaluate" and envelope["ok"] is True
    result = envelope["result"]["training"]
    assert set(result) >= {"loss", "accuracy", "confusion"} and 0 <= result["accuracy"] <= 1


def test_predict_and_evaluate_do_not_need_the_grads(checkpoint: Path, tmp_path: Path, capsys) -> None:
    from nnkit.checkpoint import container as ckptfile

    with ckptfile.CheckpointFile(checkpoint) as opened:
        entry, start = opened.index["grads/fc1.W"], opened.data_start
    data = bytearray(checkpoint.read_bytes())
    data[start + entry.offset] ^= 0x40  # a damaged grad: training cannot resume from it
    damaged = tmp_path / "damaged.nnk"
    damaged.write_bytes(bytes(data))
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    assert main(["evaluate", str(damaged), "--json"]) == 0
    assert main(["predict", str(damaged), "--input", str(tmp_path / "x.npy"), "--classes"]) == 0
    capsys.readouterr()
    resume = ["train", str(EXAMPLES / "spiral.toml"), "--resume", str(damaged), "--out", str(tmp_path / "r.nnk")]
    assert main(resume) == 1
    assert "'grads/fc1.W': checksum mismatch" in capsys.readouterr().err


def test_plugins_lists_the_built_ins(capsys) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "nnkit.layers" in out and "Affine" in out and "SoftmaxWithLoss" in out
    assert main(["plugins", "--json"]) == 0
    plugins = json.loads(capsys.readouterr().out)["result"]["plugins"]
    layers = next(p for p in plugins if p["name"] == "nnkit.layers")
    assert layers["distribution"] == "nnkit-numpy" and "Embedding" in layers["layers"] and layers["error"] is None


@pytest.mark.parametrize(("args", "message"), [
    (["train", "missing.toml"], "missing.toml: no such file"),
    (["evaluate", str(EXAMPLES / "spiral.toml")], "not an nnkit checkpoint"),
    (["predict", "missing.nnk", "--input", "x.npy"], "missing.nnk: no such file"),
])
def test_errors_are_one_line_without_traceback(args: list[str], message: str, capsys) -> None:
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_unknown_layer_error_names_the_closest(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((EXAMPLES / "spiral.toml").read_text().replace('"Sigmoid"', '"Sigmod"'))
    assert main(["train", str(bad)]) == 1
    assert "bad.toml:20:1: nodes.act1: unknown layer type 'Sigmod'; did you mean 'Sigmoid'" in capsys.readouterr().err


def test_the_console_script_runs_as_a_new_user_would(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nnkit.cli", "train", str(EXAMPLES / "spiral.toml"), "--epochs", "2", "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("final: loss ")
    bad = subprocess.run([sys.executable, "-m", "nnkit.cli", "evaluate", "nothing.nnk"],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert bad.returncode == 1 and bad.stderr == "nnkit: error: nothing.nnk: no such file\n"


def test_committed_schemas_are_up_to_date() -> None:
    from nnkit.checkpoint.header import header_schema as checkpoint_header_schema
    from nnkit.modelfile.schema import model_schema, schema_text
    from nnkit.plugins import load_registry

    committed = (ROOT / "schemas" / "model.schema.json").read_text()
    assert committed == schema_text(model_schema(load_registry(entry_points=False))), \
        "schemas/model.schema.json is stale: run NNKIT_LOAD_PLUGINS=none nnkit schema --out schemas/model.schema.json"
    committed = (ROOT / "schemas" / "checkpoint-header.schema.json").read_text()
    assert committed == schema_text(checkpoint_header_schema()), \
        "schemas/checkpoint-header.schema.json is stale: run nnkit schema checkpoint --out schemas/…"


def test_an_unwritable_out_fails_before_training(tmp_path: Path, capsys) -> None:
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--out", str(tmp_path / "missing" / "s.nnk")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "cannot write: no folder" in captured.err


def test_evaluate_prints_metrics_and_confusion_tables(checkpoint: Path, capsys) -> None:
    assert main(["evaluate", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("training: loss ") and "validation: loss " in out
    assert out.count("true\\pred") == 2 and "(300 samples)" in out


def test_validate_prints_a_summary(capsys) -> None:
    assert main(["validate", str(EXAMPLES / "spiral.toml")]) == 0
    assert capsys.readouterr().out.strip().endswith(
        "spiral.toml: ok: 3 nodes, 63 params, output 3 per sample, loss SoftmaxWithLoss")


def test_inspect_text_and_json(checkpoint: Path, capsys) -> None:
    assert main(["inspect", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "network: fc1:Affine → act1:Sigmoid → fc2:Affine + SoftmaxWithLoss; 63 params" in out
    assert "progress: epoch 5, step 50" in out and "params/fc1.W" in out and "float64" in out
    assert main(["inspect", str(checkpoint), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["result"]
    assert info["param_count"] == 63 and info["optimizer"] == {"type": "SGD", "iterations": 50, "state_version": 1}
    assert {a["name"] for a in info["arrays"]} >= {"params/fc1.W", "grads/fc1.W"}


def test_schema_to_stdout(capsys) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "nnkit model file"
    assert main(["schema", "checkpoint"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "nnkit checkpoint header"


def test_resume_from_the_cli(checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "more.nnk"
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--resume", str(checkpoint), "--epochs", "8",
                 "--out", str(out), "--quiet"]) == 0
    assert nnkit.inspect(out)["progress"]["epoch"] == 8
    assert main(["train"]) == 2
    assert "train needs a model file or --resume CKPT" in capsys.readouterr().err


def test_main_leaves_the_callers_warning_display_alone(capsys) -> None:
    import warnings

    before = warnings.showwarning
    assert main(["plugins"]) == 0
    assert warnings.showwarning is before


def test_python_dash_m_nnkit_is_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "nnkit", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("nnkit ")


def test_training_is_never_lost_and_never_overwrites(capsys) -> None:
    for expected in ("spiral.nnk", "spiral-2.nnk"):
        assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "1", "--quiet"]) == 0
        assert f"saved {expected}" in capsys.readouterr().out and Path(expected).is_file()
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "1", "--quiet", "--no-save"]) == 0
    assert "saved" not in capsys.readouterr().out and not Path("spiral-3.nnk").exists()


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path: Path) -> None:
    import signal

    # A line every epoch: the signal comes after the first, not after 10,000 (a tenth of --epochs).
    model_file = tmp_path / "spiral.toml"
    model_file.write_text((EXAMPLES / "spiral.toml").read_text().replace("[train]", "[train]\nlog_every = 1"))
    command = [sys.executable, "-m", "nnkit", "train", str(model_file), "--epochs", "100000",
               "--progress", "lines", "-o", "run.nnk"]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().startswith("epoch")  # training is under way
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopping after this step" in err and "saved run.nnk: resume with nnkit train --resume run.nnk" in err
    stopped = nnkit.load(tmp_path / "run.nnk")
    target = stopped.epoch + 2
    assert main(["train", "--resume", str(tmp_path / "run.nnk"), "--epochs", str(target), "--quiet",
                 "-o", str(tmp_path / "resumed.nnk")]) == 0
    assert main(["train", str(model_file), "--epochs", str(target), "--quiet",
                 "-o", str(tmp_path / "straight.nnk")]) == 0
    resumed, straight = nnkit.load(tmp_path / "resumed.nnk"), nnkit.load(tmp_path / "straight.nnk")
    assert resumed.history == straight.history
    assert all(np.array_equal(resumed.params[k], straight.params[k]) for k in straight.params)


def test_every_command_has_help_with_an_example(capsys) -> None:
    from nnkit.cli import COMMANDS

    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: nnkit {command}") and f"example:\n  nnkit {command}" in out
    assert main([]) == 0 and "examples:" in capsys.readouterr().out  # `nnkit` alone shows help
    assert main(["trian", "x.toml"]) == 2
    assert "unknown command 'trian'; did you mean 'train'?" in capsys.readouterr().err


def test_a_terminal_that_cannot_show_unicode_gets_escapes(checkpoint: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "nnkit", "inspect", str(checkpoint)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONIOENCODING": "ascii"}, check=False)
    assert result.returncode == 0 and "\\u2192" in result.stdout


def strict(text: str) -> dict:
    """JSON as a strict parser reads it: NaN and Infinity are not JSON."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    lines = text.splitlines()
    assert len(lines) == 1, "--json prints one object on one line"
    return json.loads(lines[0], parse_constant=refuse)


def test_every_command_speaks_one_json_contract(tmp_path: Path, capsys) -> None:
    model = str(EXAMPLES / "spiral.toml")
    ckpt, x = tmp_path / "s.nnk", tmp_path / "x.npy"
    np.save(x, np.zeros((3, 2)))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'model = "{model}"\ntrials = 1\n[space]\n"train.epochs" = {{ choice = [2] }}\n')
    runs = {
        "train": ["train", model, "--epochs", "2", "-o", str(ckpt)],
        "predict": ["predict", str(ckpt), "--input", str(x), "--output", str(tmp_path / "y.npy")],
        "evaluate": ["evaluate", str(ckpt)],
        "export": ["export", str(ckpt), "--out", str(tmp_path / "w.safetensors")],
        "sweep": ["sweep", str(sweep), "--workers", "1", "--out", str(tmp_path / "sweep")],
        "validate": ["validate", model],
        "migrate": ["migrate", model, "--out", str(tmp_path / "m.toml")],
        "inspect": ["inspect", str(ckpt), "--verify"],
        "plot": ["plot", str(ckpt), "--out", str(tmp_path / "c.png")],
        "plugins": ["plugins"],
        "schema": ["schema", "checkpoint"],
    }
    from nnkit.cli import COMMANDS

    if nnkit.get_registry().find("layer", "TimeRNN") is not None:  # a language model to write with
        lm = tmp_path / "lm.nnk"
        assert main(["train", str(EXAMPLES / "ch5-rnnlm.toml"), "--epochs", "1", "-q", "-o", str(lm)]) == 0
        capsys.readouterr()
        runs["generate"] = ["generate", str(lm), "--length", "5"]
    assert set(runs) == set(COMMANDS) - ({"generate"} - set(runs))
    for command, argv in runs.items():
        assert main([*argv, "--json"]) == 0, command
        envelope = strict(capsys.readouterr().out)
        assert envelope["command"] == command and envelope["ok"] is True and "result" in envelope
    assert strict_result("train", capsys, tmp_path)["final"]["samples"] == 300
    assert main(["validate", str(tmp_path / "nothing.toml"), "--json"]) == 1
    error = strict(capsys.readouterr().out)
    assert error == {"command": "validate", "ok": False, "error": {
        "type": "ModelFileError", "message": f"{tmp_path / 'nothing.toml'}: no such file",
        "file": str(tmp_path / "nothing.toml"), "line": None, "column": None}}
    bad = tmp_path / "bad.toml"
    bad.write_text((EXAMPLES / "spiral.toml").read_text().replace('type = "Sigmoid"', 'type = "Sigmod"'))
    assert main(["validate", str(bad), "--json"]) == 1
    located = strict(capsys.readouterr().out)["error"]
    assert located["file"] == str(bad) and located["line"] == 20 and located["column"] == 1


def strict_result(command: str, capsys, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def]
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "1", "--no-save", "--json"]) == 0
    return strict(capsys.readouterr().out)["result"]
