"""A word corpus from a text file, read as the book reads PTB (chapters 4–6): one sentence
per line, `<eos>` where each line ends, a word each run of non-space characters, as they
stand (PTB's files are tokenized and lower case but for N; the `corpus` dataset's
preprocess is for raw sentences), ids in order of first appearance. Two ways to cut it
into samples:

- `cbow`: (context, center) windows, as the `corpus` dataset and the book's
  `create_contexts_target`: x {"c0": (N,), …}, t (N,) center ids;
- `next_word`: consecutive sequences of `length` words and the words that follow each,
  x (N, length) ids, t (N, length) ids (a language model's windows; positions past the
  corpus's end are labelled -1, which TimeSoftmaxWithLoss ignores).

    [data]
    type = "text"
    path = "ptb.train.txt"      # relative to the model file
    mode = "next_word"
    length = 35
    max_words = 1000            # the book's chapter 5 takes the first 1000 words

Held-out text (a `[validation]` dataset) takes the training data's vocabulary: its words
get the training ids, and words the training text lacks become `<unk>`, as in PTB.
A language model reads `next_word` sequences as one stream with `train.bptt`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from nnkit.config import Config
from nnkit.data import Data, Dataset
from nnkit.data.corpus import cbow_windows
from nnkit.errors import DataError
from nnkit.paths import read_utf8

EOS = "<eos>"
#: Text files are read whole; past this they are refused (a corpus of ~100 M words).
MAX_BYTES = 1 << 30


UNK = "<unk>"


class TextConfig(Config):
    type: Literal["text"] = "text"
    path: str = Field(min_length=1, max_length=4096)  # a UTF-8 text file, relative to the model file
    mode: Literal["cbow", "next_word"] = "next_word"  # how the corpus is cut into samples
    window: int = Field(default=1, ge=1, le=16)  # cbow: context words on each side
    length: int = Field(default=35, ge=1, le=100_000)  # next_word: words per sequence (the book's time_size)
    max_words: int | None = Field(default=None, ge=2, le=2**40)  # keep the first words only
    eos: bool = True  # append <eos> where each line ends (PTB's loader)


class TextCorpus(Dataset):
    """A text file's words as ids (see the module's docstring for the two modes)."""

    Config = TextConfig
    config: TextConfig

    def words(self) -> list[str]:
        """The corpus's words, in order."""
        text = read_utf8((self.base_dir or Path(".")) / self.config.path, DataError, "text file", MAX_BYTES)
        return self._kept(line.split() for line in text.splitlines())

    def _kept(self, lines: Iterable[list[str]]) -> list[str]:
        words: list[str] = []
        for tokens in lines:
            if tokens:
                words += [*tokens, EOS] if self.config.eos else tokens
        if self.config.max_words is not None:
            words = words[:self.config.max_words]
        return words

    def vocabulary(self) -> list[str]:
        """Every word once, in order of first appearance: position = id."""
        return list(dict.fromkeys(self.words()))

    def load(self, rng: np.random.Generator) -> Data:
        words = self.words()
        if self.known is None:
            ids = {w: i for i, w in enumerate(dict.fromkeys(words))}
        else:  # held-out text: the training ids
            ids = {w: i for i, w in enumerate(self.known)}
            unknown = sorted({w for w in words if w not in ids})
            if unknown and UNK not in ids:
                raise ValueError(f"{len(unknown)} words the training text lacks (first {unknown[0]!r}) and no "
                                 f"{UNK} among its words to stand for them")
            words = [w if w in ids else UNK for w in words]
        corpus = np.array([ids[w] for w in words], dtype=np.int64)
        c = self.config
        if c.mode == "cbow":
            return cbow_windows(corpus, c.window, tuple(ids))
        if len(corpus) < 2:
            raise ValueError(f"the corpus has {len(corpus)} words; predicting the next one needs 2 or more")
        n = -(-(len(corpus) - 1) // c.length)  # sequences, the last one padded
        x = np.zeros(n * c.length, dtype=np.int64)
        t = np.full(n * c.length, -1, dtype=np.int64)
        x[:len(corpus) - 1], t[:len(corpus) - 1] = corpus[:-1], corpus[1:]
        return Data(x.reshape(n, c.length), t.reshape(n, c.length), vocabulary=tuple(ids))

