"""Checkpoint speed and memory against safetensors and np.savez, measured in one run.

    python benchmarks/bench_checkpoint.py            # 256 MiB float32 params, 11 rounds
    python benchmarks/bench_checkpoint.py --mib 64 --rounds 3 --inspect-gib 0
    python benchmarks/bench_checkpoint.py --many 2000   # 2,000 Affine(16): 4,000 small arrays

Rounds interleave the contenders (the machine is shared and noisy); the printed ratios are
medians of per-round ratios nnkit / safetensors, so < 1 means nnkit is faster. nnkit's
save fsyncs the file and its folder (a crash cannot lose the previous checkpoint);
safetensors and np.savez do not. nnkit checks an XXH3 checksum per array on every load
unless told `verify=False`; safetensors has no checksums. Needs `pip install safetensors`.

Loads are timed two ways, because what a load costs depends mostly on the state of the
memory it copies into: "fresh process" starts a new Python for each load (imports done
before the clock starts; nnkit's first call still builds its plugin registry), as when a
program loads a checkpoint once; "repeated" loads again and again in this process, each
reusing memory an earlier load freed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

import nnkit


def network_of(mib: int) -> nnkit.Network:
    """A float32 chain of Affine(1024) layers holding about `mib` MiB of params."""
    layers = max(1, round(mib * 2**20 / (4 * 1024 * 1025)))
    spec = nnkit.validate_spec({
        "dtype": "float32", "inputs": {"x": {"shape": [1024]}},
        "nodes": [{"type": "Affine", "units": 1024} for _ in range(layers)],
    })
    net = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    for grad in net.grads.values():
        grad[...] = 0.5
    return net


def chain_of(layers: int) -> nnkit.Network:
    """A float32 chain of `layers` Affine(16) layers: 2 × `layers` small params (and grads)."""
    spec = nnkit.validate_spec({
        "dtype": "float32", "inputs": {"x": {"shape": [16]}},
        "nodes": [{"type": "Affine", "units": 16} for _ in range(layers)],
    })
    net = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    for grad in net.grads.values():
        grad[...] = 0.5
    return net


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def peak_extra(fn) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    """Peak traced allocation above what the call leaves allocated (its result)."""
    tracemalloc.start()
    result = fn()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - current, result


_ONE_LOAD = """
import sys, time
import importlib
import nnkit
import nnkit.api
from nnkit.plugins import BUILTINS
for _, module in BUILTINS:  # `import nnkit` is lazy: import what a load runs here, so imports stay untimed
    importlib.import_module(module)
from safetensors.numpy import load_file
kind, ours, st = sys.argv[1:]
load = {"nnkit load (copy, verified)": lambda: nnkit.load(ours, grads=False),
        "nnkit load (mmap, verified)": lambda: nnkit.load(ours, grads=False, mmap=True),
        "safetensors load_file": lambda: load_file(st)}[kind]
start = time.perf_counter()
loaded = load()
print(time.perf_counter() - start)
"""


def load_in_fresh_process(kind: str, ours: Path, st: Path) -> float:
    """Seconds that one load takes in a new Python process (imports not counted)."""
    done = subprocess.run([sys.executable, "-c", _ONE_LOAD, kind, str(ours), str(st)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def rotate(names: list[str], r: int) -> list[str]:
    """A different contender goes first in each round."""
    k = r % len(names)
    return names[k:] + names[:k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--inspect-gib", type=float, default=1.0, help="size of the file for `inspect` (0: skip)")
    parser.add_argument("--many", type=int, default=0, metavar="LAYERS",
                        help="instead: a chain of LAYERS Affine(16) layers, many small arrays")
    parser.add_argument("--markdown", action="store_true", help="with --many: also print the table as Markdown")
    args = parser.parse_args()
    try:
        from safetensors.numpy import load_file, save_file
    except ImportError:
        print("this benchmark needs safetensors: pip install safetensors", file=sys.stderr)
        return 2
    if args.many:
        many_arrays(args.many, args.rounds, args.markdown)
        return 0

    net = network_of(args.mib)
    params = {k: v for k, v in net.params.items()}
    size = sum(a.nbytes for a in params.values())
    print(f"{len(params)} float32 arrays, {size / 2**20:.0f} MiB; {args.rounds} interleaved rounds")
    folder = Path(tempfile.mkdtemp(prefix="nnkit-bench-"))
    ours, st, npz = folder / "p.nnk", folder / "p.safetensors", folder / "p.npz"

    saves = {
        "nnkit save (params)": lambda: nnkit.save(net, ours, grads=False),
        "safetensors save_file": lambda: save_file(params, str(st)),
        "np.savez": lambda: np.savez(npz, **params),
    }
    loads = {
        "nnkit load (copy, verified)": lambda: nnkit.load(ours, grads=False),
        "nnkit load (mmap, verified)": lambda: nnkit.load(ours, grads=False, mmap=True),
        "nnkit load (copy, unverified)": lambda: nnkit.load(ours, grads=False, verify=False),
        "nnkit load (mmap, unverified)": lambda: nnkit.load(ours, grads=False, mmap=True, verify=False),
        "safetensors load_file": lambda: load_file(str(st)),
        "np.load (npz)": lambda: dict(np.load(npz)),
    }
    fresh = ("nnkit load (copy, verified)", "nnkit load (mmap, verified)", "safetensors load_file")
    times: dict[str, list[float]] = {name: [] for name in saves}
    times.update({f"{name}, repeated": [] for name in loads})
    times.update({f"{name}, fresh process": [] for name in fresh})
    for r in range(args.rounds):
        for name in rotate(list(saves), r):
            times[name].append(timed(saves[name])[0])
        for name in rotate(list(loads), r):
            times[f"{name}, repeated"].append(timed(loads[name])[0])
        for name in rotate(list(fresh), r):
            times[f"{name}, fresh process"].append(load_in_fresh_process(name, ours, st))

    report_ratios(times)
    report_memory_and_extras(net, ours, folder, size, args.inspect_gib)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return 0


def many_arrays(layers: int, rounds: int, markdown: bool = False) -> None:
    """Save and load a network of many small arrays: what each array costs beyond its bytes.

    safetensors gets the same arrays nnkit writes: params alone, then params and grads in one
    file. Per-array overhead is (nnkit's time - safetensors' time) / arrays written.
    """
    from safetensors.numpy import load_file, save_file

    net = chain_of(layers)
    params = dict(net.params)
    both = {**params, **{f"grad:{k}": v for k, v in net.grads.items()}}
    print(f"{layers} Affine(16) layers: {len(params)} params + {len(net.grads)} grads, "
          f"{sum(a.nbytes for a in both.values()) / 2**20:.1f} MiB in all; {rounds} interleaved rounds")
    folder = Path(tempfile.mkdtemp(prefix="nnkit-bench-"))
    ours, ours_full = folder / "p.nnk", folder / "full.nnk"
    st, st_full = folder / "p.safetensors", folder / "full.safetensors"
    contenders = {
        "save params: nnkit": lambda: nnkit.save(net, ours, grads=False),
        "save params: safetensors": lambda: save_file(params, str(st)),
        "save params + grads: nnkit": lambda: nnkit.save(net, ours_full),
        "save params + grads: safetensors": lambda: save_file(both, str(st_full)),
        "load params: nnkit": lambda: nnkit.load(ours, grads=False),
        "load params: safetensors": lambda: load_file(str(st)),
        "load params + grads: nnkit": lambda: nnkit.load(ours_full),
        "load params + grads: safetensors": lambda: load_file(str(st_full)),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():  # files exist before any load; warm-up not timed
        fn()
    for r in range(rounds):
        for name in rotate(list(contenders), r):
            times[name].append(timed(contenders[name])[0])

    print(f"\n{'':36}{'nnkit ms':>10}{'safetensors ms':>16}{'ratio':>8}{'target':>8}{'µs/array':>10}")
    table = ["| | nnkit ms | safetensors ms | ratio (target) | extra µs per array | what limits it |",
             "|---|---:|---:|---:|---:|---|"]
    for what, arrays, target in (("save params", len(params), 1.5), ("save params + grads", len(both), 2.0),
                                 ("load params", len(params), 1.5), ("load params + grads", len(both), 2.0)):
        a, b = times[f"{what}: nnkit"], times[f"{what}: safetensors"]
        ratio = statistics.median(x / y for x, y in zip(a, b))
        extra = (statistics.median(a) - statistics.median(b)) / arrays * 1e6
        print(f"{what:36}{statistics.median(a) * 1e3:10.1f}{statistics.median(b) * 1e3:16.1f}"
              f"{ratio:8.2f}{'≤ ' + str(target):>8}{extra:10.1f}")
        table.append(f"| {what} | {statistics.median(a) * 1e3:.1f} | {statistics.median(b) * 1e3:.1f} | "
                     f"{ratio:.2f} (≤ {target}) | {extra:.1f} | "
                     f"{many_limit(what, 1 - statistics.median(b) / statistics.median(a))} |")
    if markdown:
        print("\n" + "\n".join(table))
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def many_limit(what: str, extra_share: float) -> str:
    """What bounds a many-array row, from the share of nnkit's time beyond safetensors'."""
    if extra_share < 0.5:
        return "what safetensors pays too: the bytes and the file (and nnkit's fsync)"
    if what.startswith("load"):
        return "Python per array and per layer: header entries, the stored spec validated, each layer built"
    return "Python per array: header entries, checksums and run bookkeeping"


def report_ratios(times: dict[str, list[float]]) -> None:
    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    print(f"\n{'':50}{'median s':>10}")
    for name, ts in times.items():
        print(f"{name:50}{statistics.median(ts):10.3f}")
    print("\nratios (median of per-round nnkit / safetensors; target ≤ 1.0):")
    print(f"  {'save':52}{ratio('nnkit save (params)', 'safetensors save_file'):.2f}")
    for state in ("fresh process", "repeated"):
        for label in ("copy, verified", "mmap, verified", "copy, unverified", "mmap, unverified"):
            ours_name = f"nnkit load ({label}), {state}"
            if ours_name in times:
                name = f"load {label}{' (the default)' if label == 'copy, verified' else ''}, {state}"
                print(f"  {name:52}{ratio(ours_name, f'safetensors load_file, {state}'):.2f}")
    print(f"  vs np.savez save {ratio('nnkit save (params)', 'np.savez'):.2f}, vs np.load load "
          f"{ratio('nnkit load (copy, verified), repeated', 'np.load (npz), repeated'):.2f}")


def report_memory_and_extras(net: nnkit.Network, ours: Path, folder: Path, size: int, inspect_gib: float) -> None:
    extra_save, _ = peak_extra(lambda: nnkit.save(net, ours, grads=False))
    extra_copy, loaded = peak_extra(lambda: nnkit.load(ours, grads=False))
    del loaded
    extra_mmap, mapped = peak_extra(lambda: nnkit.load(ours, grads=False, mmap=True))
    del mapped
    print("\npeak extra memory, as a share of the arrays' size (target ≤ 10%):")
    print(f"  save {extra_save / size:.1%}   load copy {extra_copy / size:.1%}   load mmap {extra_mmap / size:.1%}")

    full = folder / "full.nnk"
    t_full, _ = timed(lambda: nnkit.save(net, full))
    print(f"\nfull save (params + grads, {2 * size / 2**20:.0f} MiB): {t_full:.3f} s")
    partial = statistics.median(timed(lambda: nnkit.load(full, grads=False))[0] for _ in range(3))
    whole = statistics.median(timed(lambda: nnkit.load(full))[0] for _ in range(3))
    print(f"load params only from it: {partial:.3f} s; params and grads: {whole:.3f} s")

    if inspect_gib > 0:
        big = network_of(int(inspect_gib * 1024 / 2))
        nnkit.save(big, folder / "big.nnk")
        file_size = (folder / "big.nnk").stat().st_size
        t_inspect = statistics.median(timed(lambda: nnkit.inspect(folder / "big.nnk"))[0] for _ in range(5))
        print(f"inspect on a {file_size / 2**30:.2f} GiB checkpoint: {t_inspect * 1000:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
