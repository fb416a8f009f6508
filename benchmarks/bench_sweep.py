"""What `nnkit sweep` buys on this machine: 8 spiral trials (4 learning rates × 2 widths,
about 2 s of training each) run as a serial loop of `nnkit train` commands — what a user
does without sweeps — against `nnkit sweep --workers 2`, in one run, interleaved round by
round. Target: a speed-up of at least 1.7× on 2 cores. Also reported: the trials' own
training time (as the workers measured it) and the engine's overhead per trial, i.e. the
sweep's wall time × workers less the training time, over the trials.

    python benchmarks/bench_sweep.py [--epochs 2800] [--rounds 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATES = (0.5, 1.0, 1.5, 2.0)
WIDTHS = (10, 20)
TARGET = 1.7


def cli() -> list[str]:
    nnkit = shutil.which("nnkit")
    return [nnkit] if nnkit else [sys.executable, "-m", "nnkit"]


def model_file(folder: Path, epochs: int, lr: float | None = None, units: int | None = None) -> Path:
    """The spiral example with this trial's settings (for the serial loop)."""
    text = (ROOT / "examples" / "spiral.toml").read_text()
    text = text.replace("epochs = 300", f"epochs = {epochs}")
    if lr is not None:
        text = text.replace("lr = 1.0", f"lr = {lr}")
    if units is not None:
        text = text.replace("units = 10\n", f"units = {units}\n", 1)
    path = folder / f"spiral-{lr}-{units}.toml"
    path.write_text(text)
    return path


def serial(folder: Path, epochs: int) -> float:
    start = time.perf_counter()
    for lr in RATES:
        for units in WIDTHS:
            path = model_file(folder, epochs, lr, units)
            subprocess.run([*cli(), "train", str(path), "-q", "-o", str(folder / f"{path.stem}.nnk")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    return time.perf_counter() - start


def sweep(folder: Path, epochs: int, workers: int, round_: int) -> tuple[float, float]:
    """(wall seconds, the trials' summed training seconds)."""
    base = model_file(folder, epochs)
    sweep_file = folder / "bench-sweep.toml"
    sweep_file.write_text(f'model = "{base.name}"\ntrials = 8\nsampler = "grid"\n[space]\n'
                          f'"optimizer.lr" = {{ choice = {list(RATES)} }}\n'
                          f'"nodes.fc1.units" = {{ choice = {list(WIDTHS)} }}\n')
    out = folder / f"sweep-{round_}"
    start = time.perf_counter()
    subprocess.run([*cli(), "sweep", str(sweep_file), "--workers", str(workers), "--out", str(out), "-q"],
                   check=True, stdout=subprocess.DEVNULL, cwd=folder)
    wall = time.perf_counter() - start
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert len(trials) == 8 and all(t["state"] == "complete" for t in trials), trials
    return wall, sum(t["seconds"] for t in trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2800, help="epochs per trial (2800: about 2 s here)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for round_ in range(args.rounds):
            loop = serial(folder, args.epochs)
            wall, training = sweep(folder, args.epochs, args.workers, round_)
            rows.append((loop, wall, training))
            print(f"round {round_ + 1}: serial nnkit train loop {loop:.1f} s, nnkit sweep --workers {args.workers} "
                  f"{wall:.1f} s (training {training:.1f} s in all), speed-up {loop / wall:.2f}x", flush=True)
    speedup = statistics.median(loop / wall for loop, wall, _ in rows)
    overhead = statistics.median((wall * args.workers - training) / 8 for _, wall, training in rows)
    per_trial = statistics.median(training / 8 for _, _, training in rows)
    print(f"\n8 trials of ~{per_trial:.1f} s: speed-up {speedup:.2f}x (target ≥ {TARGET}x); engine overhead "
          f"{overhead:.2f} s per trial (cluster start-up, study, scheduling, checkpoints)")


if __name__ == "__main__":
    main()
