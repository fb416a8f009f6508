"""Checkpoint speed and memory against safetensors and np.savez, measured in one run.

    python benchmarks/bench_checkpoint.py            # 256 MiB float32 params, 11 rounds
    python benchmarks/bench_checkpoint.py --mib 64 --rounds 3 --inspect-gib 0

Rounds interleave the contenders (the machine is shared and noisy); the printed ratios are
medians of per-round ratios nnkit / safetensors, so < 1 means nnkit is faster. nnkit's
save fsyncs the file and its folder (a crash cannot lose the previous checkpoint);
safetensors and np.savez do not. nnkit verifies a CRC-32 per array on load unless told
`verify=False`; safetensors has no checksums. Needs `pip install safetensors`.
"""

from __future__ import annotations

import argparse
import statistics
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
    net = nnkit.Network(spec, rng=np.random.default_rng(0))
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--inspect-gib", type=float, default=1.0, help="size of the file for `inspect` (0: skip)")
    args = parser.parse_args()
    try:
        from safetensors.numpy import load_file, save_file
    except ImportError:
        print("this benchmark needs safetensors: pip install safetensors", file=sys.stderr)
        return 2

    net = network_of(args.mib)
    params = {k: v for k, v in net.params.items()}
    size = sum(a.nbytes for a in params.values())
    print(f"{len(params)} float32 arrays, {size / 2**20:.0f} MiB; {args.rounds} interleaved rounds")
    folder = Path(tempfile.mkdtemp(prefix="nnkit-bench-"))
    ours, st, npz = folder / "p.nnk", folder / "p.safetensors", folder / "p.npz"

    contenders = {
        "nnkit save (params)": lambda: nnkit.save(ours, net, grads=False),
        "safetensors save_file": lambda: save_file(params, str(st)),
        "np.savez": lambda: np.savez(npz, **params),
        "nnkit load (copy)": lambda: nnkit.load(ours, grads=False),
        "nnkit load (mmap, crc)": lambda: nnkit.load(ours, grads=False, mmap=True, verify=True),
        "nnkit load (copy, no crc)": lambda: nnkit.load(ours, grads=False, verify=False),
        "nnkit load (mmap)": lambda: nnkit.load(ours, grads=False, mmap=True),
        "safetensors load_file": lambda: load_file(str(st)),
        "np.load (npz)": lambda: dict(np.load(npz)),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(args.rounds):
        rotation = names[r % 3:] + names[:r % 3] if r else names  # saves first in round 0
        saves = [n for n in rotation if "save" in n or "savez" in n]
        loads = [n for n in rotation if n not in saves]
        for name in saves + loads:
            times[name].append(timed(contenders[name])[0])

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    print(f"\n{'':30}{'median s':>10}")
    for name, ts in times.items():
        print(f"{name:30}{statistics.median(ts):10.3f}")
    print("\nratios (median of per-round nnkit / safetensors; target ≤ 1.0):")
    print(f"  save        {ratio('nnkit save (params)', 'safetensors save_file'):.2f}")
    for label, name in (("load mmap (lazy, the default for mmap)", "nnkit load (mmap)"),
                        ("load copy, CRC-32 verified (default)", "nnkit load (copy)"),
                        ("load mmap, CRC-32 verified", "nnkit load (mmap, crc)"),
                        ("load copy, verify=False", "nnkit load (copy, no crc)")):
        print(f"  {label:40}{ratio(name, 'safetensors load_file'):.2f}")
    print(f"  vs np.savez save {ratio('nnkit save (params)', 'np.savez'):.2f}, "
          f"vs np.load load {ratio('nnkit load (copy)', 'np.load (npz)'):.2f}")

    extra_save, _ = peak_extra(lambda: nnkit.save(ours, net, grads=False))
    extra_copy, loaded = peak_extra(lambda: nnkit.load(ours, grads=False))
    del loaded
    extra_mmap, mapped = peak_extra(lambda: nnkit.load(ours, grads=False, mmap=True))
    del mapped
    print("\npeak extra memory, as a share of the arrays' size (target ≤ 10%):")
    print(f"  save {extra_save / size:.1%}   load copy {extra_copy / size:.1%}   load mmap {extra_mmap / size:.1%}")

    full = folder / "full.nnk"
    t_full, _ = timed(lambda: nnkit.save(full, net))
    print(f"\nfull save (params + grads, {2 * size / 2**20:.0f} MiB): {t_full:.3f} s")
    partial = statistics.median(timed(lambda: nnkit.load(full, grads=False))[0] for _ in range(3))
    whole = statistics.median(timed(lambda: nnkit.load(full))[0] for _ in range(3))
    print(f"load params only from it: {partial:.3f} s; params and grads: {whole:.3f} s")

    if args.inspect_gib > 0:
        big = network_of(int(args.inspect_gib * 1024 / 2))
        nnkit.save(folder / "big.nnk", big)
        file_size = (folder / "big.nnk").stat().st_size
        t_inspect = statistics.median(timed(lambda: nnkit.inspect(folder / "big.nnk"))[0] for _ in range(5))
        print(f"inspect on a {file_size / 2**30:.2f} GiB checkpoint: {t_inspect * 1000:.1f} ms")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
