"""How fast nnkit starts, against importing its dependencies.

Each command runs in fresh processes, interleaved round by round with the baseline
`python -c "import numpy, pydantic, msgpack, pluggy"`; the figure is the median of
per-round ratios (the machine is shared, so single times wander while ratios hold).
Targets: `nnkit --version` and `nnkit --help` ≤ 1.2× the baseline, `import nnkit` ≤ 1.3×.

    python benchmarks/bench_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

BASELINE = [sys.executable, "-c", "import numpy, pydantic, msgpack, pluggy"]
TARGETS = {"nnkit --version": 1.2, "nnkit --help": 1.2, "import nnkit": 1.3, "nnkit plugins": None}


def commands() -> dict[str, list[str]]:
    nnkit = shutil.which("nnkit")
    cli = [nnkit] if nnkit else [sys.executable, "-m", "nnkit"]
    return {
        "baseline (import numpy, pydantic, msgpack, pluggy)": BASELINE,
        "nnkit --version": [*cli, "--version"],
        "nnkit --help": [*cli, "--help"],
        "import nnkit": [sys.executable, "-c", "import nnkit"],
        "nnkit plugins": [*cli, "plugins"],
    }


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    runs = commands()
    for command in runs.values():  # warm the file cache: every round then starts alike
        wall(command)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        names = list(runs)
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(wall(runs[name]))
    base_name = next(iter(runs))
    print(f"{args.rounds} interleaved rounds of fresh processes\n")
    print(f"{'':52}{'median ms':>10}{'ratio':>8}  target")
    for name, ts in times.items():
        ratio = statistics.median(t / b for t, b in zip(ts, times[base_name]))
        target = TARGETS.get(name)
        verdict = "" if target is None else f"≤ {target} {'met' if ratio <= target else 'MISSED'}"
        print(f"{name:52}{statistics.median(ts) * 1000:10.0f}{ratio:8.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
