"""Print the nearest words (cosine similarity of CBOW input vectors) from a checkpoint.

    nnkit train examples/cbow.toml --out cbow.nnk
    python examples/cbow_nearest.py cbow.nnk cats you say
"""

from __future__ import annotations

import sys

import nnkit
from nnkit.data.corpus import Corpus, nearest


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    model = nnkit.load(argv[1], grads=False)
    # The checkpoint keeps its corpus's words with its integer inputs (id = position);
    # one saved before that recomputes them from the stored recipe.
    vocabulary = model.spec.inputs["c0"].vocabulary or Corpus(model.spec.data).vocabulary()
    vectors = model.params["emb0.W"]  # the one embedding both context words share
    for word in argv[2:] or ["cats", "you", "say"]:
        if word not in vocabulary:
            print(f"{word}: not in the vocabulary ({' '.join(vocabulary)})")
            continue
        print(f"{word}: " + ", ".join(f"{w} {s:.2f}" for w, s in nearest(vectors, vocabulary, word)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
