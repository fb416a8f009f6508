"""Recurrent layers: nnkit-rnn's TimeLSTM, TimeGRU and TimeRNN against PyTorch CPU's nn.LSTM,
nn.GRU and nn.RNN (same threads, float32), and for the LSTM the book's loop (one cell per
step, its backward step by step) written out here, all measured in the same run.

    pip install ./plugins/nnkit-rnn torch
    python benchmarks/bench_rnn.py [--rounds 7] [--sizes book small]

Each contender runs forward and backward on the same (N, T, D) input with the same dL/dy,
in a process of its own (see `interleaved`), interleaved round after round; a ratio is the
median over rounds of nnkit's time over the other's (< 1: nnkit is faster). PyTorch's
nn.LSTM runs on oneDNN's fused LSTM; its GRU and RNN on ATen's own kernels. Target:
nnkit / PyTorch ≤ 1.1 at both sizes. The last column is the stateful layer (truncated
BPTT, state carried between windows) over the plain one: carrying the state should cost
nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
from bench_train import limit_of, matmul_peak  # this folder: the same peak and the same reading of it

SIZES = {"book": (20, 35, 650, 650), "small": (32, 20, 64, 128)}  # N, T, D, H
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def matmul_flops(kind: str, size: str) -> int:
    """The matmuls of one forward + backward: x Wx and h Wh forward; dWx, dx, dWh and dh
    back, each as many as one forward product: 6 N T (D + H) G H."""
    n, t, d, h = SIZES[size]
    return 6 * n * t * (d + h) * GATES[kind] * h


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def book_lstm(x: np.ndarray, dy: np.ndarray, h_units: int, rng: np.random.Generator) -> Callable[[], None]:
    """The book's TimeLSTM: an LSTM cell per step (x Wx + h Wh + b, gates f g i o), its
    backward step by step, weight grads summed over the steps."""
    d = x.shape[2]
    Wx = (rng.standard_normal((d, 4 * h_units)) / np.sqrt(d)).astype(np.float32)
    Wh = (rng.standard_normal((h_units, 4 * h_units)) / np.sqrt(h_units)).astype(np.float32)
    b = np.zeros(4 * h_units, np.float32)
    H = h_units

    def run() -> None:
        n, t, _ = x.shape
        h, c = np.zeros((n, H), np.float32), np.zeros((n, H), np.float32)
        caches = []
        for k in range(t):
            a = x[:, k] @ Wx + h @ Wh + b
            f, g, i, o = sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
            c_next = f * c + g * i
            h_next = o * np.tanh(c_next)
            caches.append((x[:, k], h, c, i, f, g, o, c_next))
            h, c = h_next, c_next
        dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
        dh, dc = np.zeros((n, H), np.float32), np.zeros((n, H), np.float32)
        for k in reversed(range(t)):
            xk, h_prev, c_prev, i, f, g, o, c_next = caches[k]
            tanh_c = np.tanh(c_next)
            dh_k = dy[:, k] + dh
            ds = dc + dh_k * o * (1 - tanh_c**2)
            dc = ds * f
            da = np.hstack((ds * c_prev * f * (1 - f), ds * i * (1 - g**2), ds * g * i * (1 - i),
                            dh_k * tanh_c * o * (1 - o)))
            dWh += h_prev.T @ da
            dWx += xk.T @ da
            db += da.sum(axis=0)
            dh = da @ Wh.T

    return run


def nnkit_layer(kind: str, x: np.ndarray, dy: np.ndarray, h_units: int, stateful: bool = False) -> Callable[[], None]:
    """nnkit-rnn's layer; `stateful`: each forward starts from the state the last one left."""
    import nnkit_rnn

    cls = {"LSTM": nnkit_rnn.TimeLSTM, "GRU": nnkit_rnn.TimeGRU, "RNN": nnkit_rnn.TimeRNN}[kind]
    layer = cls(cls.Config(units=h_units, stateful=stateful), [x.shape[1:]], dtype="float32",
                rng=np.random.default_rng(0))

    def run() -> None:
        layer.forward(x, train=True)
        layer.backward(dy)

    return run


def torch_layer(kind: str, x: np.ndarray, dy: np.ndarray, h_units: int) -> Callable[[], None]:
    import torch

    module = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind](
        x.shape[2], h_units, batch_first=True)
    xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)

    def run() -> None:
        module.zero_grad(set_to_none=True)
        out, _ = module(xt)
        out.backward(dyt)

    return run


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def one_contender(kind: str, size: str, name: str, repeat: int) -> float:
    """Median seconds of `repeat` runs of one contender, after a warm-up, in this process."""
    n, t, d, h = SIZES[size]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, t, d)).astype(np.float32)
    dy = rng.standard_normal((n, t, h)).astype(np.float32)
    if name == "torch":
        import torch

        torch.set_num_threads(2)  # the machine's cores, as NumPy's BLAS uses them
        run = torch_layer(kind, x, dy, h)
    elif name == "book":
        run = book_lstm(x, dy, h, rng)
    else:
        run = nnkit_layer(kind, x, dy, h, stateful=name == "stateful")
    # Warm up for 0.3 s (first-touch pages, the allocator, thread pools: a fresh process's
    # first runs are up to 2x slower), then time at least `repeat` runs and 0.5 s of them.
    start = time.perf_counter()
    while time.perf_counter() - start < 0.3:
        run()
    times: list[float] = []
    while len(times) < repeat or sum(times) < 0.5:
        times.append(timed(run))
    return statistics.median(times)


def interleaved(kind: str, size: str, names: list[str], rounds: int, repeat: int) -> dict[str, list[float]]:
    """Seconds per run of each contender, each measured in a fresh process, a different
    one first in each round.

    Apart because they disturb each other in one process: PyTorch's OpenMP threads and
    NumPy's OpenBLAS threads both spin for a while after their last task, and on two
    cores each pool then slows the other's next calls (up to 2x, measured).
    """
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            done = subprocess.run([sys.executable, __file__, "--one", kind, size, name, str(repeat)],
                                  capture_output=True, text=True, check=True)
            times[name].append(float(done.stdout.split()[-1]))
    return times


def report(kind: str, size: str, times: dict[str, list[float]], peak: float, markdown: bool = False) -> str:
    def ms(name: str) -> str:
        return f"{statistics.median(times[name]) * 1e3:10.1f}" if name in times else f"{'-':>10}"

    def ratio(name: str) -> str:
        if name not in times:
            return "-"
        return f"{statistics.median(a / b for a, b in zip(times['nnkit'], times[name])):.2f}"

    stateful = f"{statistics.median(a / b for a, b in zip(times['stateful'], times['nnkit'])):.2f}"
    share = matmul_flops(kind, size) / statistics.median(times["nnkit"]) / 1e9 / peak * 100
    if markdown:
        n, t, d, h = SIZES[size]
        return (f"| {kind} | {size} ({n} × {t} × {d} → {h}) | {ms('nnkit').strip()} | {ms('torch').strip()} | "
                f"{ms('book').strip()} | {ratio('torch')} | {ratio('book')} | {stateful} | {share:.0f}% | "
                f"{limit_of(share)} |").replace("| - ", "|  ")
    return (f"{kind:6}{size:8}{ms('nnkit')}{ms('torch')}{ms('book')}{ratio('torch'):>13}{ratio('book'):>12}"
            f"{stateful:>16}{share:>7.0f}%")


MARKDOWN_HEAD = ("| layer | size (N × T × D → H) | nnkit ms | PyTorch ms | book ms | nnkit / PyTorch (target ≤ 1.1) "
                 "| nnkit / book | stateful / nnkit | % of peak | what limits it |\n"
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|---|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=5, help="least timed runs per process (their median counts)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out (it may not be installed)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown (README's)")
    parser.add_argument("--one", nargs=4, metavar=("KIND", "SIZE", "CONTENDER", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, size, name, repeat = args.one
        print(one_contender(kind, size, name, int(repeat)))
        return 0
    try:
        import nnkit_rnn  # noqa: F401
    except ImportError:
        print("this benchmark needs nnkit-rnn: pip install ./plugins/nnkit-rnn", file=sys.stderr)
        return 2
    use_torch = not args.no_torch and importlib.util.find_spec("torch") is not None  # imported by contenders only
    peak = matmul_peak("float32")
    print(f"{args.rounds} interleaved rounds, each contender in its own process (median of {args.repeat} runs), "
          f"float32, forward + backward; PyTorch: {'yes' if use_torch else 'not measured'}; matmul peak "
          f"(2048², float32) {peak:.1f} GFLOP/s; % peak: nnkit's matmul FLOPs per second\n")
    print(f"{'layer':6}{'size':8}{'nnkit ms':>10}{'torch ms':>10}{'book ms':>10}{'nnkit/torch':>13}{'nnkit/book':>12}"
          f"{'stateful/nnkit':>16}{'% peak':>8}")
    results = []
    for size in args.sizes:
        for kind in ("LSTM", "GRU", "RNN"):
            names = ["nnkit", "stateful", *(["torch"] if use_torch else []), *(["book"] if kind == "LSTM" else [])]
            results.append((kind, size, interleaved(kind, size, names, args.rounds, args.repeat)))
            print(report(*results[-1], peak), flush=True)
    if args.markdown:
        print("\n" + MARKDOWN_HEAD)
        for result in results:
            print(report(*result, peak, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
