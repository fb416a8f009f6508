"""The book's encoder-decoders (chapter 7) side by side: nnkit's example model files and
the book's own Seq2seq / PeekySeq2seq, trained on the same generated addition lines (the
same 45,000 / 5,000 split, the question reversed) with the same sizes, epochs, batch size,
optimizer and clipping, each scored by exact-match accuracy of its greedy answers on the
held-out 5,000 (the book's eval_seq2seq).

    git clone https://github.com/oreilly-japan/deep-learning-from-scratch-2 book
    pip install ./plugins/nnkit-rnn
    python benchmarks/book_seq2seq.py --book book [--models seq2seq peeky] [--nnkit seq2seq=ckpt.nnk]

The book's code is run from the given checkout, not copied here; it seeds NumPy's global
generator, nnkit its run's seed. `--nnkit NAME=CKPT` scores a checkpoint already trained
from the example instead of training it again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import nnkit
from nnkit.training.runner import Runner

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = {"seq2seq": "ch7-seq2seq.toml", "peeky": "ch7-peeky.toml"}


def exact_match(answers: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.all(answers == t, axis=1)))


def run_nnkit(name: str, checkpoint: str | None) -> dict[str, Any]:
    start = time.perf_counter()
    if checkpoint is None:
        model = nnkit.Model.from_file(EXAMPLES / FILES[name])
        model.fit(verbose=False)
    else:
        model = nnkit.load(checkpoint, grads=False)
    held = model.validation_data
    assert held is not None and isinstance(held.x, dict)
    return {"exact_match": exact_match(model.decode(held.x), held.t), "seconds": round(time.perf_counter() - start)}


def run_book(name: str, book: Path, seed: int) -> dict[str, Any]:
    sys.path[:0] = [str(book), str(book / "ch07")]
    from common.optimizer import Adam  # the book's code, from its checkout
    from common.trainer import Trainer

    runner = Runner.from_file(EXAMPLES / FILES[name])  # the example's data: the same lines and split
    train, held, spec = runner.train_data, runner.validation_data, runner.spec
    assert held is not None and isinstance(train.x, dict) and isinstance(held.x, dict)

    def book_arrays(data: Any) -> tuple[np.ndarray, np.ndarray]:
        """The book's (question, answer with its start symbol) id arrays."""
        return data.x["question"].astype(np.int32), np.concatenate([data.x["answer_in"][:, :1], data.t], 1).astype(
            np.int32)

    x_train, t_train = book_arrays(train)
    x_test, t_test = book_arrays(held)
    nodes = {node.name: node.config for node in spec.nodes}
    vocab, wordvec, hidden = int(nodes["enc_embed"].vocab_size), int(nodes["enc_embed"].units), int(nodes["enc"].units)
    np.random.seed(seed)
    if name == "seq2seq":
        from seq2seq import Seq2seq

        model = Seq2seq(vocab, wordvec, hidden)
    else:
        from peeky_seq2seq import PeekySeq2seq

        model = PeekySeq2seq(vocab, wordvec, hidden)
    trainer = Trainer(model, Adam())
    start = time.perf_counter()
    for _ in range(spec.train.epochs):  # train_seq2seq.py: one fit per epoch
        trainer.fit(x_train, t_train, max_epoch=1, batch_size=spec.train.batch_size, max_grad=spec.train.max_grad,
                    eval_interval=10**9)
    seconds = time.perf_counter() - start
    answers = np.array([model.generate(x_test[[i]], int(t_test[i, 0]), t_test.shape[1] - 1)
                        for i in range(len(x_test))])
    return {"exact_match": exact_match(answers, t_test[:, 1:]), "seconds": round(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, required=True, help="a checkout of the book's repository")
    parser.add_argument("--models", nargs="+", choices=list(FILES), default=list(FILES))
    parser.add_argument("--nnkit", nargs="*", default=[], metavar="NAME=CKPT", help="score these checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    trained = dict(item.split("=", 1) for item in args.nnkit)
    results = {}
    for name in args.models:
        ours, theirs = run_nnkit(name, trained.get(name)), run_book(name, args.book, args.seed)
        results[name] = {"nnkit": ours, "book": theirs}
        print(f"{FILES[name]:18} exact match nnkit {ours['exact_match']:.4f}  book {theirs['exact_match']:.4f} "
              f"({theirs['seconds']} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
