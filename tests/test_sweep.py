"""`nnkit sweep`: sweep files checked up front, trials on a real Dask LocalCluster and on a
real cluster the test starts (a scheduler and two workers as processes), a killed worker,
a diverging trial, and a rerun that continues the study."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnkit
from nnkit.cli import main
from nnkit.sweeps import run_file
from nnkit.sweeps.spec import read_sweep_file, with_settings

from .conftest import EXAMPLES

optuna = pytest.importorskip("optuna")
distributed = pytest.importorskip("distributed")

SPIRAL = EXAMPLES / "spiral.toml"


def sweep_file(folder: Path, body: str, name: str = "s.toml", epochs: int = 20) -> Path:
    path = folder / name
    path.write_text(f'model = "{SPIRAL}"\n{body}\n' +
                    ("" if "train.epochs" in body else f'\n[space."train.epochs"]\nchoice = [{epochs}]\n'))
    return path


FOUR_RATES = """metric = "val_loss"
trials = 4
sampler = "grid"
[space]
"optimizer.lr" = { choice = [0.5, 1.0, 1.5, 2.0] }
"""
GRID = """metric = "val_loss"
trials = 6
sampler = "grid"
[space]
"optimizer.lr" = { choice = [0.5, 1.0, 2.0] }
"nodes.fc1.units" = { choice = [10, 20] }
"""


# -- sweep files ---------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    ('[space]\n"optimizer.lr" = { uniform = [1.0] }', r"s.toml:3:\d+: space.optimizer.lr.uniform: List should have"),
    ('[space]\n"optimizer.lr" = { uniform = [1.0, 2.0], choice = [1] }',
     "s.toml:3:1: space.optimizer.lr: give exactly one of choice, uniform, log_uniform, int"),
    ('sampler = "grid"\n[space]\n"optimizer.lr" = { log_uniform = [0.1, 1.0] }',
     "s.toml:4:1: space.optimizer.lr: the grid sampler needs choice or int"),
    ('[space]\n"nodes.fc1.units" = { int = [0, 8] }',
     r"s.toml:3:1: space.nodes.fc1.units = 0 makes an invalid model file: .*units: Input should be greater"),
    ('[space]\n"nodes.fc9.units" = { choice = [8] }', r"no item 'fc9' in nodes \(named: fc1, act1, fc2\)"),
    ('[space]\n"optimizer.lrate" = { choice = [1.0] }', "optimizer.lrate: unknown field 'lrate'; did you mean 'lr'"),
    ('metrc = "val_loss"\n[space]\n"optimizer.lr" = { choice = [1.0] }', "s.toml:2:1: metrc: Extra inputs"),
])
def test_a_bad_sweep_file_is_one_error_at_its_place(body: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'model = "{SPIRAL}"\n{body}\n')
    with pytest.raises(nnkit.ModelFileError, match=message):
        read_sweep_file(path, nnkit.get_registry())


def test_settings_go_by_dotted_path_and_node_name() -> None:
    data = {"nodes": [{"name": "fc1", "units": 10}], "optimizer": {"lr": 1.0}}
    changed = with_settings(data, {"nodes.fc1.units": 40, "optimizer.lr": 0.1, "train.seed": 3, "nodes.0.init": "he"})
    assert changed == {"nodes": [{"name": "fc1", "units": 40, "init": "he"}], "optimizer": {"lr": 0.1},
                       "train": {"seed": 3}}
    assert data["nodes"][0]["units"] == 10  # the base is not touched


def test_the_committed_sweep_schema_is_current() -> None:
    from nnkit.modelfile.schema import schema_text
    from nnkit.sweeps.spec import sweep_schema

    committed = (EXAMPLES.parent / "schemas" / "sweep.schema.json").read_text()
    assert committed == schema_text(sweep_schema()), "run: nnkit schema sweep --out schemas/sweep.schema.json"


# -- running on Dask -----------------------------------------------------------------------


def by_settings(records: list[dict[str, Any]]) -> dict[tuple, tuple[str, float | None]]:
    return {tuple(sorted(r["settings"].items())): (r["state"], r["value"]) for r in records}


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("local")
    outcome = run_file(sweep_file(folder, GRID), out=folder / "out", workers=2)
    return folder, outcome


def test_a_grid_sweep_on_a_local_cluster_of_two_workers(local_grid: tuple[Path, Any]) -> None:
    folder, outcome = local_grid
    assert len(outcome.records) == 6 and all(r["state"] == "complete" for r in outcome.records)
    assert {tuple(sorted(r["settings"].items())) for r in outcome.records} == {
        (("nodes.fc1.units", u), ("optimizer.lr", lr), ("train.epochs", 20))
        for u in (10, 20) for lr in (0.5, 1.0, 2.0)}
    best = outcome.best
    assert best["value"] == min(r["value"] for r in outcome.records)
    reloaded = nnkit.load(folder / "out" / "best.nnk")  # the best trial's checkpoint, whole
    assert reloaded.network.params["fc1.W"].shape == (2, best["settings"]["nodes.fc1.units"])
    assert reloaded.evaluate(reloaded.validation_data.x, reloaded.validation_data.t)["loss"] == \
        pytest.approx(best["value"], rel=1e-12)
    summary = json.loads((folder / "out" / "results.json").read_text())
    assert summary["best"]["number"] == best["number"] and len(summary["trials"]) == 6


def test_running_again_continues_the_study(local_grid: tuple[Path, Any]) -> None:
    folder, first = local_grid
    again = run_file(folder / "s.toml", out=folder / "out", workers=1)
    assert by_settings(again.records) == by_settings(first.records)  # nothing rerun, nothing lost


def test_a_sweep_stopped_mid_trial_reruns_that_trial(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, GRID.replace("trials = 6", "trials = 2"))
    checked = read_sweep_file(path, nnkit.get_registry())
    from nnkit.sweeps.engine import distributions, open_study

    (tmp_path / "out").mkdir()
    study = open_study(optuna, checked, f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    left = study.ask(distributions(optuna, checked))  # a driver killed while this trial ran
    outcome = run_file(path, out=tmp_path / "out", workers=1)
    states = [r["state"] for r in outcome.records]
    assert states.count("complete") == 2 and states.count("fail") == 1
    assert outcome.records[left.number]["state"] == "fail"
    assert any(r["settings"] == left.params and r["state"] == "complete" for r in outcome.records)


def test_a_diverging_trial_is_failed_with_its_reason(tmp_path: Path) -> None:
    """An absurd lr with weight decay multiplies the weights by ~ -9 a step: the NaN guard
    stops that trial; the sweep goes on."""
    body = ('metric = "val_loss"\ntrials = 2\nsampler = "grid"\n[space]\n"optimizer.lr" = { choice = [1.0, 1e3] }\n'
            '"optimizer.weight_decay" = { choice = [0.01] }')
    outcome = run_file(sweep_file(tmp_path, body, epochs=100), out=tmp_path / "out", workers=2)
    failed = [r for r in outcome.records if r["state"] == "fail"]
    assert len(failed) == 1 and failed[0]["settings"]["optimizer.lr"] == 1e3
    assert failed[0]["reason"].startswith("training diverged at step ")
    assert outcome.best is not None and outcome.best["settings"]["optimizer.lr"] == 1.0


def test_an_unknown_metric_is_refused_before_anything_runs(tmp_path: Path) -> None:
    body = 'metric = "val_acc"\ntrials = 1\n[space]\n"optimizer.lr" = { choice = [1.0] }'
    with pytest.raises(nnkit.ModelFileError, match=r"s.toml:2:1: metric: 'val_acc' is not a key of the runs' epoch "
                                                   r"records \(loss, accuracy, val_loss, val_accuracy\); did you "
                                                   r"mean 'val_accuracy'"):
        run_file(sweep_file(tmp_path, body, epochs=2), out=tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()  # nothing started, nothing written
    cbow = tmp_path / "cbow.toml"
    cbow.write_text(f'model = "{EXAMPLES / "cbow.toml"}"\n[space]\n"optimizer.lr" = {{ choice = [0.01] }}\n')
    with pytest.raises(nnkit.ModelFileError, match="val_… metrics need a \\[validation\\] section"):
        read_sweep_file(cbow, nnkit.get_registry())


def test_a_model_file_or_a_missing_one_is_named(tmp_path: Path) -> None:
    with pytest.raises(nnkit.ModelFileError, match="is a model file, not a sweep file"):
        read_sweep_file(SPIRAL, nnkit.get_registry())
    missing = tmp_path / "m.toml"
    missing.write_text('model = "nope.toml"\n[space]\n"optimizer.lr" = { choice = [1.0] }\n')
    with pytest.raises(nnkit.ModelFileError, match=r"m.toml:1:1: model: .*nope.toml: no such file \(a model path is "
                                                   r"relative to the sweep file\)"):
        read_sweep_file(missing, nnkit.get_registry())


def test_pruning_stops_lagging_trials(tmp_path: Path) -> None:
    body = ('metric = "val_loss"\ntrials = 8\nsampler = "grid"\npruning = true\nwarmup_trials = 2\n'
            'warmup_epochs = 5\n[space]\n"optimizer.lr" = { choice = [3.0, 2.0, 0.001, 0.002, 0.003, 0.004, 1.0, '
            '0.005] }')
    outcome = run_file(sweep_file(tmp_path, body, epochs=60), out=tmp_path / "out", workers=2)
    pruned = [r for r in outcome.records if r["state"] == "pruned"]
    assert pruned, "with lr 0.001-0.005 against 1-3, some trial lags the median"
    for r in pruned:  # stopped early: after the warm-up, before the recipe's 60 epochs
        history = json.loads((tmp_path / "out" / "trials" / f"trial-{r['number']:04d}.json").read_text())
        assert 5 <= len(history) < 60
    assert outcome.best is not None and outcome.best["state"] == "complete"


def test_the_cli_prints_the_table_and_speaks_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = 'trials = 2\nsampler = "random"\n[space]\n"optimizer.lr" = { log_uniform = [0.5, 2.0] }'
    path = sweep_file(tmp_path, body, epochs=5)
    assert main(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "out"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("trial  state     val_loss  optimizer.lr") and f"saved {tmp_path / 'out'}/best.nnk" in out
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--json"]) == 0
    envelope = json.loads(capsys.readouterr().out)
    assert envelope["ok"] and len(envelope["result"]["trials"]) == 2
    assert main(["plot", str(tmp_path / "out"), "--out", str(tmp_path / "sweep.png")]) == 0
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


# -- a real cluster, started here ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes on localhost, stopped at the end."""
    folder = tmp_path_factory.mktemp("cluster")
    address = f"tcp://127.0.0.1:{_free_port()}"
    cli = [sys.executable, "-m"]
    logs = open(folder / "cluster.log", "w")  # closed below
    processes = [subprocess.Popen([*cli, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                   address.rsplit(":", 1)[1], "--dashboard-address", ":0"],
                                  stdout=logs, stderr=logs, cwd=folder)]
    for _ in range(2):
        processes.append(subprocess.Popen([*cli, "distributed.cli.dask_worker", address, "--nthreads", "1",
                                           "--dashboard-address", ":0", "--local-directory", str(folder)],
                                          stdout=logs, stderr=logs, cwd=folder))
    try:
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(processes):  # workers first, then the scheduler
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        logs.close()


def test_the_same_sweep_on_a_real_cluster_gives_the_same_trials(cluster: str, local_grid: tuple[Path, Any],
                                                                  tmp_path: Path) -> None:
    folder, local = local_grid
    remote = run_file(folder / "s.toml", out=tmp_path / "out", scheduler=cluster)
    assert by_settings(remote.records) == by_settings(local.records)


def test_a_worker_killed_mid_trial_loses_no_trial(cluster: str, tmp_path: Path) -> None:
    """Each worker runs a trial of ~1.5 s; one worker process is killed while it runs one.
    Its nanny starts a new one, Dask reruns the trial, and the study holds each trial once."""
    path = sweep_file(tmp_path, FOUR_RATES, epochs=2000)
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(outcome=run_file(path, out=tmp_path / "out",
                                                                               scheduler=cluster)))
    runner.start()
    with distributed.Client(cluster) as client:
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            victim = busy[0] if busy else None
            time.sleep(0.2)
        assert victim is not None, "no trial started"
        pid = client.run(os.getpid, workers=[victim])[victim]
        time.sleep(0.3)
        assert client.processing()[victim], "the worker finished its trial before it could be killed"
        os.kill(pid, signal.SIGKILL)
    runner.join(timeout=180)
    assert not runner.is_alive()
    records = result["outcome"].records
    assert len(records) == 4 and all(r["state"] == "complete" for r in records)
    assert sorted(r["settings"]["optimizer.lr"] for r in records) == [0.5, 1.0, 1.5, 2.0]
    assert np.isfinite([r["value"] for r in records]).all()


def test_ctrl_c_stops_cleanly_and_running_again_finishes(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, FOUR_RATES, epochs=2000)
    command = [sys.executable, "-m", "nnkit", "sweep", str(path), "--workers", "2", "--out", "out", "-q"]
    sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _complete(tmp_path / "out" / "study.db") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # until the first trial is in the study; others are running
    sweep.send_signal(signal.SIGINT)
    out, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, err
    assert "interrupted; run the same command again to continue the study in out" in err
    first = json.loads((tmp_path / "out" / "results.json").read_text())
    assert first["interrupted"] and 1 <= sum(t["state"] == "complete" for t in first["trials"]) < 4
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    trials = json.loads((tmp_path / "out" / "results.json").read_text())["trials"]
    complete = [t for t in trials if t["state"] == "complete"]
    assert sorted(t["settings"]["optimizer.lr"] for t in complete) == [0.5, 1.0, 1.5, 2.0]
    assert all(t["reason"] == "interrupted" for t in trials if t["state"] == "fail")


def _complete(database: Path) -> int:
    """Complete trials in a sweep's study, read as another process would: read-only, so the
    poll never races the sweep creating its tables (Optuna's load_study would create them)."""
    if not database.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()
    except sqlite3.OperationalError:  # no tables yet, or locked for a moment
        return 0
    return int(count)


def test_the_python_api_returns_the_trials(local_grid: tuple[Path, Any]) -> None:
    pandas = pytest.importorskip("pandas")
    folder, outcome = local_grid
    frame = nnkit.sweep(folder / "s.toml", out=folder / "out", workers=1)  # the finished study, continued
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 6
    assert set(frame.columns) >= {"number", "state", "value", "settings", "seconds", "checkpoint"}
    assert frame["value"].min() == outcome.best["value"]


def test_json_and_yaml_sweep_files_point_at_their_errors(tmp_path: Path) -> None:
    good = {"model": str(SPIRAL), "trials": 2, "space": {"optimizer.lr": {"choice": [0.5, 1.0]}}}
    (tmp_path / "s.json").write_text(json.dumps(good, indent=1))
    assert read_sweep_file(tmp_path / "s.json", nnkit.get_registry()).file.trials == 2
    (tmp_path / "s.yaml").write_text(f"model: {SPIRAL}\nspace:\n  optimizer.lr:\n    log_uniform: [0.0, 1.0]\n")
    with pytest.raises(nnkit.ModelFileError, match=r"s.yaml:3:3: space.optimizer.lr: log_uniform needs 0 < low"):
        read_sweep_file(tmp_path / "s.yaml", nnkit.get_registry())


def test_without_the_extra_the_command_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    path = sweep_file(tmp_path, 'trials = 1\n[space]\n"optimizer.lr" = { choice = [1.0] }', epochs=2)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == ("nnkit: error: nnkit sweep needs Optuna and Dask distributed: "
                                       "pip install 'nnkit-numpy[sweep]'\n")


def test_the_study_may_live_in_any_storage_url(tmp_path: Path) -> None:
    """--storage takes an Optuna RDB URL (PostgreSQL or MySQL on a cluster; SQLite here)."""
    path = sweep_file(tmp_path, 'trials = 2\nsampler = "grid"\n[space]\n"optimizer.lr" = { choice = [0.5, 1.0] }',
                      epochs=3)
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    outcome = run_file(path, out=tmp_path / "out", workers=1, storage=url)
    assert len(outcome.records) == 2 and not (tmp_path / "out" / "study.db").exists()
    study = optuna.load_study(study_name="nnkit-sweep", storage=url)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2
    with pytest.raises(nnkit.NnkitError, match="cannot open the study in nosuchdb://x"):
        run_file(path, out=tmp_path / "out2", workers=1, storage="nosuchdb://x")


def test_a_decoded_metric_is_a_held_out_key_only(tmp_path: Path) -> None:
    """exact_match decodes answers: the runs report val_exact_match, never exact_match."""
    pytest.importorskip("nnkit_rnn")
    model = EXAMPLES / "ch7-seq2seq.toml"
    body = 'metric = "{}"\ndirection = "maximize"\n[space]\n"optimizer.lr" = {{ choice = [0.001] }}\n'
    (tmp_path / "s.toml").write_text(f'model = "{model}"\n' + body.format("exact_match"))
    with pytest.raises(nnkit.ModelFileError, match="did you mean 'val_exact_match'"):
        read_sweep_file(tmp_path / "s.toml", nnkit.get_registry())
    (tmp_path / "s.toml").write_text(f'model = "{model}"\n' + body.format("val_exact_match"))
    assert read_sweep_file(tmp_path / "s.toml", nnkit.get_registry()).file.metric == "val_exact_match"
