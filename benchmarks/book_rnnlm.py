"""The book's language models (chapters 5-6) side by side: nnkit's example model files and
the book's own code, trained on the same corpus with the same sizes, epochs and recipe,
each scored by test perplexity the book's way (eval_perplexity: 10 rows, windows from the
start, state carried).

    git clone https://github.com/oreilly-japan/deep-learning-from-scratch-2 book
    pip install ./plugins/nnkit-rnn
    python benchmarks/book_rnnlm.py --book book [--models ch5 ch6 better] [--seed 0]

The book's code is run from the given checkout, not copied here. Both read the same word
ids: examples/data/python-docs.train.txt and .test.txt (PTB cannot be downloaded here),
the test words in the training vocabulary, the rest <unk>. The book seeds NumPy's global
generator; nnkit its run's seed; so the two runs start from different draws of the same
distributions; with --same-init nnkit starts from the book model's first params, so the
two runs differ only by how each computes (and, with dropout, by the masks drawn).
Target: nnkit's test perplexity within 5% of the book's.
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
from nnkit.data.text import TextConfig, TextCorpus
from nnkit.modelfile import read_model_file
from nnkit.training.runner import Runner

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = {"ch5": "ch5-rnnlm.toml", "ch6": "ch6-rnnlm.toml", "better": "ch6-better-rnnlm.toml"}


def stream(spec: Any, part: str | None = None) -> np.ndarray:
    """A corpus as one array of word ids, as the book's ptb.load_data gives it: the
    example's training text, or `part` ("valid", "test") in the training text's words."""
    train = TextCorpus(spec.data)
    train.base_dir = EXAMPLES
    if part is None:
        ids = {w: i for i, w in enumerate(train.vocabulary())}
        return np.array([ids[w] for w in train.words()], dtype=np.int32)
    held_out = TextCorpus(TextConfig(path=f"data/python-docs.{part}.txt"))
    held_out.base_dir, held_out.known = EXAMPLES, tuple(train.vocabulary())
    data = held_out.load(np.random.default_rng(0))
    x, t = data.x.reshape(-1), data.t.reshape(-1)
    kept = t >= 0
    return np.append(x[kept], t[kept][-1]).astype(np.int32)


def run_nnkit(name: str, seed: int, initial: list[np.ndarray] | None = None, epochs: int | None = None
              ) -> dict[str, Any]:
    """The example trained with `seed` (and `epochs`); with `initial`, from the book model's first params."""
    runner = Runner.from_file(EXAMPLES / FILES[name], seed=seed, epochs=epochs)
    if initial is not None:
        params = runner.network.params
        for (key, param), value in zip(params.items(), initial, strict=True):
            assert param.shape == value.shape, (key, param.shape, value.shape)
            param[...] = value
    test = stream(runner.spec, "test").astype(np.int64)
    start = time.perf_counter()
    runner.fit()
    seconds = time.perf_counter() - start
    scores = runner.evaluate(test[None, :-1], test[None, 1:])  # one stream, scored as eval_perplexity
    return {"test_perplexity": float(np.exp(scores["loss"])), "seconds": round(seconds, 1)}


def run_book(name: str, seed: int, book: Path, epochs: int | None = None) -> dict[str, Any]:
    """The book's training script for `name`, with the example's sizes and recipe."""
    sys.path[:0] = [str(book), str(book / ("ch05" if name == "ch5" else "ch06"))]
    from common.optimizer import SGD  # the book's code, from its checkout
    from common.trainer import RnnlmTrainer
    from common.util import eval_perplexity

    spec = read_model_file(EXAMPLES / FILES[name], nnkit.get_registry()).with_train(epochs=epochs)
    corpus = stream(spec)
    xs, ts = corpus[:-1], corpus[1:]
    nodes = {node.name: node.config for node in spec.nodes}
    vocab_size, wordvec = int(nodes["embed"].vocab_size), int(nodes["embed"].units)
    train, lr = spec.train, float(spec.optimizer.lr)
    assert train.bptt is not None
    time_size, rows = train.bptt.time_size, train.bptt.eval_batch_size
    np.random.seed(seed)
    start = time.perf_counter()
    if name == "ch5":  # ch05/train.py
        from simple_rnnlm import SimpleRnnlm

        model = SimpleRnnlm(vocab_size, wordvec, int(nodes["rnn"].units))
        initial = _first_params(model)
        RnnlmTrainer(model, SGD(lr)).fit(xs, ts, train.epochs, train.batch_size, time_size, eval_interval=None)
    elif name == "ch6":  # ch06/train_rnnlm.py
        from rnnlm import Rnnlm

        model = Rnnlm(vocab_size, wordvec, int(nodes["lstm"].units))
        initial = _first_params(model)
        RnnlmTrainer(model, SGD(lr)).fit(xs, ts, train.epochs, train.batch_size, time_size, train.max_grad,
                                         eval_interval=None)
    else:  # ch06/train_better_rnnlm.py: one epoch at a time, lr / 4 when validation stalls
        from better_rnnlm import BetterRnnlm

        model = BetterRnnlm(vocab_size, wordvec, int(nodes["lstm1"].units), float(nodes["drop0"].rate))
        initial = _first_params(model)
        optimizer = SGD(lr)
        trainer, valid, best = RnnlmTrainer(model, optimizer), stream(spec, "valid"), float("inf")
        for _ in range(train.epochs):
            trainer.fit(xs, ts, 1, train.batch_size, time_size, train.max_grad, eval_interval=None)
            model.reset_state()
            ppl = eval_perplexity(model, valid, rows, time_size)
            if ppl < best:
                best = ppl
            else:
                optimizer.lr /= 4.0
            model.reset_state()
    seconds = time.perf_counter() - start
    model.reset_state()
    ppl = eval_perplexity(model, stream(spec, "test"), rows, time_size)
    return {"test_perplexity": float(ppl), "seconds": round(seconds, 1), "initial": initial}


def _first_params(model: Any) -> list[np.ndarray]:
    """A copy of the book model's params as it starts, each array once (a tied W.T is a
    view of the embedding's W and is left out, as nnkit keeps it once)."""
    kept: list[np.ndarray] = []
    for p in model.params:
        if not any(np.shares_memory(p, q) for q in kept):
            kept.append(p)
    return [p.copy() for p in kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, required=True, help="a checkout of the book's repository")
    parser.add_argument("--models", nargs="+", choices=list(FILES), default=list(FILES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="several seeds: perplexities compared by their geometric means")
    parser.add_argument("--epochs", type=int, help="train both this many epochs (default: the example's)")
    parser.add_argument("--same-init", action="store_true",
                        help="start nnkit from the book model's first params (same seed's draws for both)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = {}
    for name in args.models:
        theirs = [run_book(name, seed, args.book, args.epochs) for seed in args.seeds]
        initial = [run.pop("initial") for run in theirs]
        ours = [run_nnkit(name, seed, first if args.same_init else None, args.epochs)
                for seed, first in zip(args.seeds, initial)]
        mean = {who: float(np.exp(np.mean(np.log([r["test_perplexity"] for r in runs]))))
                for who, runs in (("nnkit", ours), ("book", theirs))}
        ratio = mean["nnkit"] / mean["book"]
        results[name] = {"seeds": args.seeds, "epochs": args.epochs, "same_init": args.same_init, "nnkit": ours,
                         "book": theirs,
                         "geometric_mean": mean, "ratio": round(ratio, 4)}
        print(f"{FILES[name]:24} test perplexity nnkit {mean['nnkit']:8.2f} "
              f"({sum(r['seconds'] for r in ours):.0f} s)  book {mean['book']:8.2f} "
              f"({sum(r['seconds'] for r in theirs):.0f} s)  ratio {ratio:.3f}  over seeds {args.seeds}", flush=True)
        for seed, a, b in zip(args.seeds, ours, theirs):
            print(f"    seed {seed}: nnkit {a['test_perplexity']:.2f}, book {b['test_perplexity']:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
