"""A word corpus for word2vec-style examples: the book's sentence plus generated ones,
cut into (context, center) windows as in the book's `create_contexts_target`."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnkit.config import Config
from nnkit.data import Data, Dataset

#: A toy grammar, "subject verb object .", where each verb takes its own kind of object:
#: words of one kind share their contexts, so CBOW should give them close vectors.
SUBJECTS = ["i", "you", "we", "they"]
PHRASES = {"say": ["hello", "goodbye"], "drink": ["tea", "coffee", "water", "milk"],
           "pet": ["cats", "dogs", "birds"]}


def tokenize(text: str) -> list[str]:
    """The book's preprocess: lower case, '.' a word of its own, every other run of
    non-space characters a word as it stands (PTB's `<unk>`, `$`, `n`, `'s` included)."""
    return text.lower().replace(".", " .").split()


class CorpusConfig(Config):
    type: Literal["corpus"] = "corpus"
    text: str = Field(default="You say goodbye and I say hello.", max_length=1_000_000)  # the book's sentence
    generated_sentences: int = Field(default=300, ge=0, le=1_000_000)  # "subject verb object ." lines
    window: int = Field(default=1, ge=1, le=16)  # context words on each side


class Corpus(Dataset):
    """x: {"c0": (N,), …, "c{2w-1}": (N,)} context word ids, left to right; t: (N,) center ids.

    Ids follow the first appearance of each word in `text`, then in the grammar's lists,
    so the vocabulary does not depend on the random draw of generated sentences.
    """

    Config = CorpusConfig
    config: CorpusConfig

    def vocabulary(self) -> list[str]:
        words: dict[str, None] = {}
        grammar = [*SUBJECTS, *(w for verb, objects in PHRASES.items() for w in (verb, *objects))]
        for word in [*tokenize(self.config.text), *grammar, "."]:
            words.setdefault(word, None)
        return list(words)

    def load(self, rng: np.random.Generator) -> Data:
        c = self.config
        ids = {w: i for i, w in enumerate(self.vocabulary())}
        tokens = tokenize(c.text)
        verbs = list(PHRASES)
        for _ in range(c.generated_sentences):
            verb = verbs[rng.integers(len(verbs))]
            objects = PHRASES[verb]
            tokens += [SUBJECTS[rng.integers(len(SUBJECTS))], verb, objects[rng.integers(len(objects))], "."]
        return cbow_windows(np.array([ids[w] for w in tokens], dtype=np.int64), c.window, tuple(ids))


def cbow_windows(corpus: np.ndarray, window: int, vocabulary: tuple[str, ...]) -> Data:
    """(context, center) samples of a word-id corpus, as the book's `create_contexts_target`:
    x {"c0": (N,), …, "c{2w-1}": (N,)} the context ids left to right, t (N,) the centers."""
    if len(corpus) <= 2 * window:
        raise ValueError(f"the corpus has {len(corpus)} words; a window of {window} needs more than {2 * window}")
    centers = np.arange(window, len(corpus) - window)
    offsets = [o for o in range(-window, window + 1) if o != 0]
    x = {f"c{k}": corpus[centers + o] for k, o in enumerate(offsets)}
    return Data(x, corpus[centers], vocabulary=vocabulary)


def nearest(vectors: np.ndarray, vocabulary: list[str], word: str, top: int = 5) -> list[tuple[str, float]]:
    """The `top` words whose rows of `vectors` (V, D) have the highest cosine similarity to `word`'s."""
    v = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-8)
    i = vocabulary.index(word)
    similarity = v @ v[i]
    order = [j for j in np.argsort(-similarity) if j != i][:top]
    return [(vocabulary[j], float(similarity[j])) for j in order]
