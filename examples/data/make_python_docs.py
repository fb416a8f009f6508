"""Write the python-docs corpus: a small PTB-like text made from the reference text every
Python installation ships (`pydoc_data.topics`, what `help("if")` shows), so the language
model examples need no download. The files beside this script were made by it under
Python 3.11.7; other versions ship slightly different text.

    python examples/data/make_python_docs.py examples/data

PTB-style: one sentence per line, lower case, only words of letters (with an inner
apostrophe), every number as N, words seen fewer than 3 times as <unk>. Sentences go in
blocks of ten: blocks 0-7 of every ten to train, 8 to valid, 9 to test.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from pydoc_data.topics import topics

PARTS = {"train": range(0, 8), "valid": range(8, 9), "test": range(9, 10)}


def sentences() -> list[list[str]]:
    found = []
    for key in sorted(topics):
        paragraph = " ".join(topics[key].split())
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            words = re.findall(r"[a-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?", sentence.lower())
            if len(words) >= 3:
                found.append(["N" if w[0].isdigit() else w for w in words])
    counts = Counter(w for s in found for w in s)
    return [[w if counts[w] >= 3 else "<unk>" for w in s] for s in found]


def main(folder: Path) -> None:
    every = sentences()
    for part, blocks in PARTS.items():
        lines = [" ".join(s) for i, s in enumerate(every) if (i // 10) % 10 in blocks]
        (folder / f"python-docs.{part}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"python-docs.{part}.txt: {len(lines)} sentences, {sum(len(s.split()) for s in lines)} words")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
