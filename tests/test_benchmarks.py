"""The benchmark scripts still run (tiny sizes). Nothing here asserts on time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bench_train_runs() -> None:
    out = run("bench_train.py", "--sizes", "spiral", "--dtypes", "float32", "--rounds", "1", "--no-torch",
              "--predict-rows", "5000", "--markdown")
    assert "spiral   float32" in out and "predict 5,000 rows" in out
    assert "| spiral (2-10-3, 30) | float32 |" in out and "| what limits it |" in out  # README's table


def test_bench_checkpoint_runs() -> None:
    pytest.importorskip("safetensors")
    out = run("bench_checkpoint.py", "--mib", "2", "--rounds", "1", "--inspect-gib", "0.01")
    assert "ratios" in out and "peak extra memory" in out and "inspect on a" in out
    out = run("bench_checkpoint.py", "--many", "50", "--rounds", "1", "--markdown")
    assert "| load params + grads |" in out and "µs per array" in out and "| what limits it |" in out


def test_bench_startup_runs() -> None:
    out = run("bench_startup.py", "--rounds", "1")
    assert "nnkit --version" in out and "import nnkit" in out and "target" in out


def test_bench_rnn_runs() -> None:
    pytest.importorskip("nnkit_rnn")
    out = run("bench_rnn.py", "--sizes", "small", "--rounds", "1", "--no-torch", "--markdown")
    assert "LSTM  small" in out and "GRU   small" in out and "RNN   small" in out
    assert "| LSTM | small (32 × 20 × 64 → 128) |" in out and "| % of peak | what limits it |" in out


def test_bench_sweep_runs() -> None:
    pytest.importorskip("optuna")
    pytest.importorskip("distributed")
    out = run("bench_sweep.py", "--epochs", "5", "--rounds", "1")
    assert "serial nnkit train loop" in out and "speed-up" in out and "engine overhead" in out
