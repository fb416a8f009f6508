"""Training-step speed: nnkit's runner against a hand-written NumPy loop and PyTorch CPU.

    python benchmarks/bench_train.py                   # all sizes, float64 and float32
    python benchmarks/bench_train.py --sizes spiral small --rounds 5

Every contender trains the same network (Affine → Sigmoid → Affine, Softmax-with-Loss,
SGD) on the same data for whole epochs: per step it takes the minibatch from a shuffled
order, runs forward and backward, and updates the params. Contenders run interleaved,
round after round (the machine is shared and noisy); a ratio is the median over rounds of
nnkit's time per step over the other's, so < 1 means nnkit is faster. PyTorch is measured
when it is installed, in a process of its own. The matmul peak is the best GFLOP/s of a
square matmul in each dtype, and every row is reported as a share of its dtype's.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import nnkit

SIZES = {  # name: (inputs D, hidden H, classes C, batch B)
    "spiral": (2, 10, 3, 30),
    "small": (64, 100, 10, 32),
    "medium": (784, 256, 10, 128),
    "large": (1024, 4096, 1024, 512),
}
STEPS = {"spiral": 300, "small": 300, "medium": 60, "large": 4}  # per epoch
#: Rounds per `--rounds`: an epoch at the small sizes lasts 15-30 ms, where one burst of the
#: shared machine's other work moves a round's ratio by 20%; more rounds steady the median.
ROUNDS_FACTOR = {"spiral": 5, "small": 5, "medium": 1, "large": 1}
TARGETS = {"spiral": 1.3, "small": 1.3, "medium": 1.05, "large": 1.05}  # nnkit without metrics / NumPy
METRIC_TARGETS = {"spiral": 1.15, "small": 1.15}  # nnkit with its default metric (accuracy) on / NumPy
LR = 0.1


def make_data(d: int, c: int, n: int, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, c, n)


def nnkit_trainer(d: int, h: int, c: int, b: int, dtype: str, x: np.ndarray, t: np.ndarray, *,
                  metrics: bool = False) -> Callable[[int], None]:
    """nnkit's runner; `metrics` keeps the default metric (accuracy for Softmax-with-Loss),
    which the hand-written loop does not compute."""
    spec = nnkit.validate_spec({
        "dtype": dtype, "inputs": {"x": {"shape": [d]}},
        "nodes": [{"type": "Affine", "units": h}, {"type": "Sigmoid"}, {"type": "Affine", "units": c}],
        "loss": {"type": "SoftmaxWithLoss"}, "optimizer": {"type": "SGD", "lr": LR},
        "train": {"batch_size": b, "seed": 0}, **({} if metrics else {"metrics": []}),
    })
    model = nnkit.Model.from_spec(spec)

    def train(epochs: int) -> None:
        model.fit(x, t, epochs=epochs, verbose=False)

    return train


def numpy_trainer(d: int, h: int, c: int, b: int, dtype: str, x: np.ndarray, t: np.ndarray) -> Callable[[int], None]:
    """The book's TwoLayerNet written out by hand, as a careful NumPy user would."""
    rng = np.random.default_rng(0)
    W1 = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(dtype)
    b1 = np.zeros(h, dtype)
    W2 = (rng.standard_normal((h, c)) / np.sqrt(h)).astype(dtype)
    b2 = np.zeros(c, dtype)
    shuffle = np.random.default_rng(1)
    rows = np.arange(b)

    def train(epochs: int) -> None:
        nonlocal W1, b1, W2, b2  # updated in place
        for _ in range(epochs):
            order = shuffle.permutation(len(x))
            for i in range(len(x) // b):
                idx = order[i * b:(i + 1) * b]
                xb, tb = x[idx], t[idx]
                s = 0.5 * (1 + np.tanh(0.5 * (xb @ W1 + b1)))
                scores = s @ W2 + b2
                shifted = scores - scores.max(axis=1, keepdims=True)
                e = np.exp(shifted)
                z = e.sum(axis=1, keepdims=True)
                loss = float(np.mean(np.log(z[:, 0]) - shifted[rows, tb]))  # noqa: F841 - the loss is part of the work
                dy = e / z
                dy[rows, tb] -= 1
                dy /= b
                dW2, db2 = s.T @ dy, dy.sum(axis=0)
                ds = dy @ W2.T
                dh = ds * s * (1 - s)
                dW1, db1 = xb.T @ dh, dh.sum(axis=0)
                W1 -= LR * dW1
                b1 -= LR * db1
                W2 -= LR * dW2
                b2 -= LR * db2

    return train


def torch_trainer(d: int, h: int, c: int, b: int, dtype: str, x: np.ndarray, t: np.ndarray) -> Callable[[int], None]:
    import torch

    torch.manual_seed(0)
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    model = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Sigmoid(), torch.nn.Linear(h, c)).to(tdtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ts = torch.from_numpy(x), torch.from_numpy(t)
    generator = torch.Generator().manual_seed(1)

    def train(epochs: int) -> None:
        for _ in range(epochs):
            order = torch.randperm(len(xs), generator=generator)
            for i in range(len(xs) // b):
                idx = order[i * b:(i + 1) * b]
                optimizer.zero_grad()
                loss = loss_fn(model(xs[idx]), ts[idx])
                loss.backward()
                optimizer.step()
                loss.item()

    return train


def torch_in_own_process(d: int, h: int, c: int, b: int, dtype: str, n: int) -> tuple[Callable[[int], float], Any]:
    """PyTorch's trainer in a process of its own, on the same data (same seed); the call
    returns the time the process measured. In this process its OpenMP threads would keep
    spinning after each step and slow whichever NumPy contender runs next on two cores."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    worker = context.Process(target=_torch_worker, args=(theirs, d, h, c, b, dtype, n), daemon=True)
    worker.start()

    def train(epochs: int) -> float:
        ours.send(epochs)
        return float(ours.recv())

    def stop() -> None:
        ours.send(None)
        worker.join(timeout=30)

    return train, stop


def _torch_worker(conn: Any, d: int, h: int, c: int, b: int, dtype: str, n: int) -> None:
    import torch

    torch.set_num_threads(2)
    x, t = make_data(d, c, n, dtype)
    train = torch_trainer(d, h, c, b, dtype, x, t)
    while (epochs := conn.recv()) is not None:
        start = time.perf_counter()
        train(epochs)
        conn.send(time.perf_counter() - start)


def bench_predict(rows: int, rounds: int, batch: int = 4096) -> tuple[float, float, float]:
    """(nnkit s, NumPy s, median ratio) for class probabilities of `rows` float32 rows
    through the medium network (784-256-10), both in batches of `batch` rows."""
    d, h, c, _ = SIZES["medium"]
    spec = nnkit.validate_spec({
        "dtype": "float32", "inputs": {"x": {"shape": [d]}},
        "nodes": [{"type": "Affine", "units": h}, {"type": "Sigmoid"}, {"type": "Affine", "units": c}],
        "loss": {"type": "SoftmaxWithLoss"},
    })
    net = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    W1, b1, W2, b2 = net.params.values()
    block = np.random.default_rng(0).standard_normal((8192, d)).astype(np.float32)
    x = np.empty((rows, d), dtype=np.float32)  # 3 GB for a million rows: tiled, not drawn
    for start in range(0, rows, len(block)):
        x[start:start + len(block)] = block[:rows - start]

    def by_hand() -> np.ndarray:
        out = np.empty((rows, c), dtype=np.float32)
        for start in range(0, rows, batch):
            s = 0.5 * (1 + np.tanh(0.5 * (x[start:start + batch] @ W1 + b1)))
            scores = s @ W2 + b2
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            out[start:start + batch] = e / e.sum(axis=1, keepdims=True)
        return out

    def with_nnkit() -> np.ndarray:
        return net.predict(x, batch_size=batch)

    assert np.allclose(by_hand()[:5], with_nnkit()[:5], atol=1e-6)
    times: dict[str, list[float]] = {"nnkit": [], "numpy": []}
    for r in range(rounds):
        for name, fn in ((("nnkit", with_nnkit), ("numpy", by_hand)) if r % 2 == 0
                         else (("numpy", by_hand), ("nnkit", with_nnkit))):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["nnkit"]), statistics.median(times["numpy"]), median_ratio(
        times["nnkit"], times["numpy"])


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median over rounds of ours / theirs: robust to a round the machine was busy."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def matmul_peak(dtype: str = "float32", seconds: float = 1.5) -> float:
    """Best GFLOP/s of a 2048×2048 matmul in `dtype`."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(dtype)
    out = np.empty_like(a)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        np.matmul(a, a, out=out)
        best = max(best, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return best


def bench_size(size: str, dtype: str, rounds: int, have_torch: bool, peaks: dict[str, float]) -> bool:
    """Print one row of the table: the contenders' time per step at `size`; whether the targets are met."""
    d, h, c, b = SIZES[size]
    steps, epochs = STEPS[size], 1
    x, t = make_data(d, c, steps * b, dtype)
    makers: dict[str, Callable[..., Callable[[int], None]]] = {"numpy": numpy_trainer, "nnkit": nnkit_trainer}
    if size in METRIC_TARGETS:
        makers["nnkit+acc"] = lambda *a: nnkit_trainer(*a, metrics=True)
    trainers: dict[str, Callable[[int], float | None]] = {
        name: make(d, h, c, b, dtype, x, t) for name, make in makers.items()}
    stop_torch = None
    if have_torch:
        trainers["torch"], stop_torch = torch_in_own_process(d, h, c, b, dtype, len(t))
    for train in trainers.values():
        train(1)  # warm up: allocations, caches, lazy imports
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for r in range(rounds):
        names = list(trainers)
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            measured = trainers[name](epochs)  # a process of its own measures itself
            elapsed = measured if measured is not None else time.perf_counter() - start
            times[name].append(elapsed / (epochs * steps))
    if stop_torch is not None:
        stop_torch()
    per_step = {name: statistics.median(ts) for name, ts in times.items()}
    vs_numpy = median_ratio(times["nnkit"], times["numpy"])
    vs_torch = median_ratio(times["nnkit"], times["torch"]) if have_torch else None
    # Useful work: forward (2 matmuls), then dW1, dW2 and the hidden layer's gradient;
    # the input's gradient is needed by no one, and neither the hand loop nor nnkit computes it.
    flops = 2 * b * (2 * d * h + 3 * h * c)
    share = flops / per_step["nnkit"] / 1e9 / peaks[dtype] * 100  # of this dtype's peak
    ok = vs_numpy <= TARGETS[size] and (vs_torch is None or vs_torch < 1)
    acc_us, acc_vs = f"{'-':>10}", f"{'-':>11} {'-':>7}"
    if "nnkit+acc" in times:
        with_metric = median_ratio(times["nnkit+acc"], times["numpy"])
        ok = ok and with_metric <= METRIC_TARGETS[size]
        acc_us = f"{per_step['nnkit+acc'] * 1e6:10.1f}"
        acc_vs = f"{with_metric:11.2f} {METRIC_TARGETS[size]:7.2f}"
    if size == "large" and dtype == "float32":
        ok = ok and share >= 75
    torch_us = f"{per_step['torch'] * 1e6:10.1f}" if have_torch else f"{'-':>10}"
    vs = f"{vs_torch:12.2f}" if vs_torch is not None else f"{'-':>12}"
    print(f"{size:8} {dtype:8} {per_step['numpy'] * 1e6:10.1f} {per_step['nnkit'] * 1e6:10.1f} {acc_us} "
          f"{torch_us} {vs_numpy:12.2f} {TARGETS[size]:7.2f} {acc_vs} {vs} {share:6.0f}%  "
          f"{'ok' if ok else 'MISSED'}",
          flush=True)
    d_h_c = f"{size} ({d}-{h}-{c}, {b})"
    acc = (f"{per_step['nnkit+acc'] * 1e6:,.1f} | {median_ratio(times['nnkit+acc'], times['numpy']):.2f} "
           f"(≤ {METRIC_TARGETS[size]})") if "nnkit+acc" in times else " | "
    torch_cells = f"{per_step['torch'] * 1e6:,.1f} | {vs_torch:.2f}" if vs_torch is not None else " | "
    MARKDOWN_ROWS.append(
        f"| {d_h_c} | {dtype} | {per_step['numpy'] * 1e6:,.1f} | {per_step['nnkit'] * 1e6:,.1f} | "
        f"{vs_numpy:.2f} (≤ {TARGETS[size]}) | {acc} | {torch_cells} | {share:.0f}% | {limit_of(share)} |")
    return ok


def limit_of(share: float) -> str:
    """What bounds a step, from the share of the matmul peak it reaches."""
    if share < 15:
        return "per-call overhead: Python and NumPy calls on small arrays"
    if share < 65:
        return "matmuls too small to reach the peak, and memory traffic"
    return "the matmuls themselves"


MARKDOWN_ROWS: list[str] = []
MARKDOWN_HEAD = ("| size (D-H-C, batch) | dtype | NumPy µs | nnkit µs | nnkit / NumPy (target) | + accuracy µs "
                 "| + accuracy / NumPy (target) | PyTorch µs | nnkit / PyTorch | % of peak | what limits it |\n"
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--dtypes", nargs="+", choices=("float64", "float32"), default=["float64", "float32"])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (× 5 at spiral and small: short epochs)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--predict-rows", type=int, default=1_000_000, help="rows for the inference run (0: skip)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown (README's)")
    args = parser.parse_args()
    # PyTorch is never imported here: it runs in processes of its own (see torch_in_own_process).
    have_torch = not args.no_torch and importlib.util.find_spec("torch") is not None

    peaks = {dtype: matmul_peak(dtype) for dtype in args.dtypes}
    shown = ", ".join(f"{dtype} {peak:.1f}" for dtype, peak in peaks.items())
    print(f"matmul peak (2048²): {shown} GFLOP/s; PyTorch: {'yes' if have_torch else 'not installed'}")
    print(f"{'size':8} {'dtype':8} {'numpy µs':>10} {'nnkit µs':>10} {'+acc µs':>10} {'torch µs':>10} "
          f"{'nnkit/numpy':>12} {'target':>7} {'+acc/numpy':>11} {'target':>7} {'nnkit/torch':>12} {'% peak':>7}")
    failures = 0
    for size in args.sizes:
        for dtype in args.dtypes:
            failures += not bench_size(size, dtype, args.rounds * ROUNDS_FACTOR[size], have_torch, peaks)
    if args.predict_rows:
        ours, theirs, ratio = bench_predict(args.predict_rows, rounds=3)
        ok = ratio <= 1.1
        failures += not ok
        print(f"\npredict {args.predict_rows:,} rows, medium float32: nnkit {ours:.2f} s, NumPy by hand "
              f"{theirs:.2f} s, ratio {ratio:.2f} (target ≤ 1.10)  {'ok' if ok else 'MISSED'}")
    print(f"\n{failures} target(s) missed" if failures else "\nall targets met")
    if args.markdown:
        print(f"\nmatmul peak {shown} GFLOP/s\n\n{MARKDOWN_HEAD}\n" + "\n".join(MARKDOWN_ROWS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
