"""A structure-aware fuzzer of checkpoints: decode a real one, mutate fields of the header
and the training state, re-encode with correct checksums (so every byte-level check
passes), and call every entry point. Nothing may escape but an nnkit error, nothing may
hang, and a mutation that makes the training state inconsistent must never be accepted by
a resume.

    python -m pytest -q tests/test_fuzz_state.py            # a short run (CI)
    python -m pytest -q -m slow tests/test_fuzz_state.py    # 10,000 cases
"""

from __future__ import annotations

import copy
import random
import signal
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

import nnkit
from nnkit.checkpoint import PluginVersionWarning, container
from nnkit.training.callbacks import Callback

RECIPE = {
    "inputs": {"x": {"shape": [2]}},
    "nodes": [{"name": "fc1", "type": "Affine", "units": 6}, {"type": "Tanh"}, {"type": "Dropout", "rate": 0.1},
              {"name": "fc2", "type": "Affine", "units": 3}],
    "loss": {"type": "SoftmaxWithLoss"},
    "optimizer": {"type": "Adam", "lr": 0.01},
    "data": {"type": "spiral", "points_per_class": 20},
    "validation": {"split": 0.25},
    "callbacks": [{"type": "early_stopping", "patience": 30}],
    "train": {"epochs": 3, "batch_size": 9, "seed": 4},
}
STEPS = 45 // 9  # 60 samples less the split of 15, in batches of 9


class Hang(Exception):
    pass


class StopAt(Callback):
    def on_step_end(self, runner, step, loss):  # type: ignore[no-untyped-def]
        if step == 2 * STEPS + 2:
            runner.stop_training = True


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A checkpoint with every part of a training state: optimizer slots, both streams, an
    unfinished epoch's order and sums, history, early stopping's state and best params."""
    path = tmp_path_factory.mktemp("fuzz") / "run.nnk"
    model = nnkit.Model.from_spec(RECIPE)
    model.fit(callbacks=[StopAt()], verbose=False)
    model.save(path)
    raw = path.read_bytes()
    header = msgpack.Unpacker(raw=False)
    header.feed(raw[len(container.MAGIC):])
    data = header.unpack()
    with container.CheckpointFile(path) as opened:
        arrays = {name: np.array(opened.array(name)) for name in opened.names()}
    data.pop("arrays")
    return data, arrays


def write(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    container.write(path, header, arrays)  # fresh, correct checksums and layout


# -- mutations that make the training state inconsistent: a resume must refuse each -------------

def _slot(arrays: dict[str, np.ndarray], rng: random.Random) -> str:
    return rng.choice(sorted(n for n in arrays if n.startswith("optimizer/")))


def slot_dtype(h: dict, a: dict, rng: random.Random) -> None:
    name = _slot(a, rng)
    a[name] = a[name].astype(rng.choice([np.float32, np.int64, np.float16]))


def slot_shape(h: dict, a: dict, rng: random.Random) -> None:
    name = _slot(a, rng)
    a[name] = a[name].reshape(-1)[:1].copy() if rng.random() < 0.5 else np.concatenate([a[name].reshape(-1)] * 2)


def slot_missing(h: dict, a: dict, rng: random.Random) -> None:
    del a[_slot(a, rng)]


def slot_unknown(h: dict, a: dict, rng: random.Random) -> None:
    a["optimizer/fc9.W/m"] = np.zeros(3)


def position_past(h: dict, a: dict, rng: random.Random) -> None:
    h["progress"]["position"] = rng.choice([STEPS, STEPS + 1, 10**6, 2**62])


def order_not_permutation(h: dict, a: dict, rng: random.Random) -> None:
    order = a["progress/order"].copy()
    order[rng.randrange(1, len(order))] = order[0]  # one sample twice, another never
    a["progress/order"] = order


def order_length(h: dict, a: dict, rng: random.Random) -> None:
    n = len(a["progress/order"]) + rng.choice([-3, -1, 1, 7])
    a["progress/order"] = np.arange(n)


def order_dtype(h: dict, a: dict, rng: random.Random) -> None:
    a["progress/order"] = a["progress/order"].astype(rng.choice([np.float64, np.float32]))


def order_gone(h: dict, a: dict, rng: random.Random) -> None:
    del a["progress/order"]


def stream_missing(h: dict, a: dict, rng: random.Random) -> None:
    del h["rng"][rng.choice(["network", "shuffle"])]


def stream_unknown(h: dict, a: dict, rng: random.Random) -> None:
    h["rng"]["data"] = dict(h["rng"]["shuffle"])


def bad_name(h: dict, a: dict, rng: random.Random) -> None:
    a[rng.choice(["../../x", "/abs", "", "params/../fc1.W", "callbacks/early_stopping/../../x", "grads/fc1"])] = \
        np.zeros(1)


def best_params_dtype(h: dict, a: dict, rng: random.Random) -> None:
    name = rng.choice(sorted(n for n in a if n.startswith("callbacks/")))
    a[name] = a[name].astype(rng.choice([np.float32, np.int32]))


def best_params_shape(h: dict, a: dict, rng: random.Random) -> None:
    name = rng.choice(sorted(n for n in a if n.startswith("callbacks/")))
    a[name] = a[name].reshape(1, -1)


def best_params_missing(h: dict, a: dict, rng: random.Random) -> None:
    del a[rng.choice(sorted(n for n in a if n.startswith("callbacks/")))]


def callback_state(h: dict, a: dict, rng: random.Random) -> None:
    state = h["progress"]["callbacks"]["early_stopping"]
    key = rng.choice(["wait", "best_epoch", "stopped_epoch", "best_value", "unknown"])
    state[key] = rng.choice(["x", [1], {"a": 1}] + ([-1, 10**30] if key != "best_value" else []))


def optimizer_kind(h: dict, a: dict, rng: random.Random) -> None:
    h["optimizer"]["type"] = rng.choice(["Momentum", "SGD", "RMSprop", "Lion"])


def optimizer_count(h: dict, a: dict, rng: random.Random) -> None:
    h["optimizer"]["iterations"] += rng.choice([-1, 1, 100])


def optimizer_layout(h: dict, a: dict, rng: random.Random) -> None:
    h["optimizer"]["state_version"] = rng.choice([2, 7])


def history_gap(h: dict, a: dict, rng: random.Random) -> None:
    history = h["progress"]["history"]
    if rng.random() < 0.5:
        history.pop(rng.randrange(len(history)))
    else:
        history[rng.randrange(len(history))]["epoch"] = 9


def running_keys(h: dict, a: dict, rng: random.Random) -> None:
    running = h["progress"]["running"]
    if rng.random() < 0.5:
        running.pop(rng.choice(sorted(running)))
    else:
        running["top5_accuracy"] = 0.5


def timestamp(h: dict, a: dict, rng: random.Random) -> None:
    h["progress"]["callbacks"]["early_stopping"]["best_value"] = msgpack.Timestamp(1, 2)


INCONSISTENT: list[Callable[[dict, dict, random.Random], None]] = [
    slot_dtype, slot_shape, slot_missing, slot_unknown, position_past, order_not_permutation, order_length,
    order_dtype, order_gone, stream_missing, stream_unknown, bad_name, best_params_dtype, best_params_shape,
    best_params_missing, callback_state, optimizer_kind, optimizer_count, optimizer_layout, history_gap,
    running_keys, timestamp,
]

# -- wild mutations: anything may happen, but only as an nnkit error ---------------------------

JUNK: list[Any] = [None, -1, 0, 2**63, -(2**70), 1.5, float("inf"), float("nan"), "", "x" * 300, "\x1b[2J",
                   [], [1, "a"], {}, {"type": "Affine"}, True, b"\x00\xff"]


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def wild(h: dict, a: dict, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in _paths(h) if p])
        parent = h
        for key in path[:-1]:
            parent = parent[key]
        if rng.random() < 0.25 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(JUNK))


def wild_array(h: dict, a: dict, rng: random.Random) -> None:
    name = rng.choice(sorted(a))
    a[name] = rng.choice([np.zeros(0), np.zeros((2, 2, 2)), a[name].astype(np.int8), np.full(a[name].shape, np.nan),
                          np.zeros(a[name].shape, dtype=bool)])


# -- the entry points ------------------------------------------------------------------------

def entry_points(path: Path) -> dict[str, Callable[[], object]]:
    x = np.zeros((4, 2))
    return {
        "load": lambda: nnkit.load(path),
        "load mmap": lambda: nnkit.load(path, mmap=True),
        "load unverified": lambda: nnkit.load(path, mmap=True, verify=False),
        "verify": lambda: nnkit.verify(path),
        "inspect": lambda: nnkit.inspect(path),
        "evaluate": lambda: nnkit.load(path, grads=False).evaluate(),
        "predict": lambda: nnkit.load(path, grads=False).predict(x),
        "resume": lambda: nnkit.load(path).fit(epochs=1, verbose=False),
    }


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fuzz(original: tuple[dict, dict], folder: Path, cases: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    operators = [*INCONSISTENT, *INCONSISTENT, wild, wild_array]
    counts = {"cases": 0, "refused": 0, "escapes": 0, "hangs": 0, "accepted inconsistent": 0}
    failures: list[str] = []
    for case in range(cases):
        header, arrays = copy.deepcopy(original[0]), {k: v.copy() for k, v in original[1].items()}
        operator = rng.choice(operators)
        try:
            operator(header, arrays, rng)
            path = folder / f"case{case % 4}.nnk"
            write(path, header, arrays)
        except (nnkit.CheckpointError, TypeError, ValueError, OverflowError):
            continue  # the writer itself refused what it was given: nothing to read
        counts["cases"] += 1
        for name, call in entry_points(path).items():
            try:
                with deadline(20), np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", PluginVersionWarning)  # a changed lock is worth a warning
                    call()
            except nnkit.NnkitError:
                counts["refused"] += 1
                continue
            except Hang:
                counts["hangs"] += 1
                failures.append(f"case {case} {operator.__name__}: {name} hung")
                continue
            except Exception as exc:
                counts["escapes"] += 1
                failures.append(f"case {case} {operator.__name__}: {name}: {type(exc).__name__}: {exc}")
                continue
            if name == "resume" and operator in INCONSISTENT:
                counts["accepted inconsistent"] += 1
                failures.append(f"case {case} {operator.__name__}: resume accepted it")
    assert not failures, f"{counts}\n" + "\n".join(failures[:20])
    return counts


def test_every_mutation_operator_is_refused_by_a_resume(original, tmp_path: Path) -> None:
    for operator in INCONSISTENT:
        header, arrays = copy.deepcopy(original[0]), {k: v.copy() for k, v in original[1].items()}
        operator(header, arrays, random.Random(0))
        write(tmp_path / "c.nnk", header, arrays)
        with pytest.raises(nnkit.NnkitError):
            nnkit.load(tmp_path / "c.nnk").fit(epochs=1, verbose=False)
    write(tmp_path / "same.nnk", *copy.deepcopy(original))  # the unmutated file resumes
    nnkit.load(tmp_path / "same.nnk").fit(epochs=1, verbose=False)


def test_fuzzed_checkpoints_short(original, tmp_path: Path) -> None:
    counts = fuzz(original, tmp_path, cases=150, seed=1)
    assert counts["cases"] > 100 and counts["refused"] > 0


@pytest.mark.slow
def test_fuzzed_checkpoints_ten_thousand(original, tmp_path: Path) -> None:
    counts = fuzz(original, tmp_path, cases=10_500, seed=2)
    print(counts)  # shown with -s: cases, refusals, and the zeros that matter
    assert counts["cases"] >= 10_000
