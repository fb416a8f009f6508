"""Sequence-to-sequence text as the book's chapter 7 reads it (`dataset/sequence.py`): one
example per line, `question_answer`, split at the first `_`, which stays as the answer's
first character — the decoder's start symbol. Lines are fixed-width, space-padded; the
characters are the vocabulary, ids by first appearance (each line's question, then its
answer), kept with the network's inputs so a checkpoint speaks characters.

    x = {"question": (N, Tq) ids (reversed with reverse_question), "answer_in": (N, Ta-1)}
    t = (N, Ta-1)   the answer shifted by one: the decoder reads "_91 " and predicts "91  "

The examples need no download: `generate` makes the book's two tasks, an addition task
(`a+b` for a, b < 1000, the sum as the answer) and a date task (a date in one of many
human formats, `YYYY-MM-DD` as the answer), from the dataset's seeded stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from nnkit.config import Config
from nnkit.data import Data, Dataset
from nnkit.errors import DataError
from nnkit.paths import read_utf8

MAX_BYTES = 256 << 20
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class SequenceTextConfig(Config):
    type: Literal["sequence_text"] = "sequence_text"
    path: str | None = Field(default=None, min_length=1, max_length=4096)  # the book's format, relative to the file
    generate: Literal["addition", "dates"] | None = None  # or make the book's task's lines
    count: int = Field(default=50_000, ge=1, le=10_000_000)  # lines to generate
    reverse_question: bool = False  # feed the question backwards (the book's ch. 7 improvement)

    @model_validator(mode="after")
    def _one_source(self) -> SequenceTextConfig:
        if (self.path is None) == (self.generate is None):
            raise ValueError("give exactly one of path (a file of question_answer lines) or generate")
        return self


class SequenceText(Dataset):
    """Question-answer pairs of characters (see the module's docstring)."""

    Config = SequenceTextConfig
    config: SequenceTextConfig

    def lines(self, rng: np.random.Generator) -> list[str]:
        """The examples, one `question_answer` string each."""
        c = self.config
        if c.generate == "addition":
            return addition_lines(c.count, rng)
        if c.generate == "dates":
            return date_lines(c.count, rng)
        assert c.path is not None
        text = read_utf8((self.base_dir or Path(".")) / c.path, DataError, "sequence file", MAX_BYTES)
        return [line for line in text.split("\n") if line]

    def load(self, rng: np.random.Generator) -> Data:
        lines = self.lines(rng)
        if not lines:
            raise ValueError("no question_answer lines")
        cut = [line.find("_") for line in lines]
        for number, (line, at) in enumerate(zip(lines, cut), 1):
            if at < 1:
                raise ValueError(f"line {number}: {line!r} has no question before a '_'")
            if (at, len(line)) != (cut[0], len(lines[0])):
                raise ValueError(f"line {number}: {line!r} is not laid out as line 1 ({len(lines[0])} characters, "
                                 f"'_' at {cut[0] + 1}): pad every line with spaces to one width")
        if len(lines[0]) - cut[0] < 2:
            raise ValueError("the answers are empty: a '_' must be followed by the answer")
        vocabulary = list(dict.fromkeys("".join(lines)))  # each line's question, then its answer
        ids = {ch: i for i, ch in enumerate(vocabulary)}
        table = np.array([[ids[ch] for ch in line] for line in lines], dtype=np.int64)
        question, answer = table[:, :cut[0]], table[:, cut[0]:]
        if self.config.reverse_question:
            question = question[:, ::-1].copy()
        return Data({"question": question, "answer_in": answer[:, :-1].copy()}, answer[:, 1:].copy(),
                    vocabulary=tuple(vocabulary))


def addition_lines(count: int, rng: np.random.Generator) -> list[str]:
    """The book's addition.txt: `a+b` padded to 7 characters, `_` and the sum padded to 4."""
    a, b = rng.integers(0, 1000, size=(2, count))
    return [f"{x}+{y}".ljust(7) + "_" + str(x + y).ljust(4) for x, y in zip(a.tolist(), b.tolist())]


def date_lines(count: int, rng: np.random.Generator) -> list[str]:
    """The book's date.txt: a date between 1970 and 2029 written in one of many human
    formats, padded to 29 characters, `_` and the date as YYYY-MM-DD."""
    base = np.datetime64("1970-01-01")
    days = rng.integers(0, (np.datetime64("2030-01-01") - base).astype(np.int64), size=count)
    styles = rng.integers(0, 10, size=count)
    lines = []
    for day, style in zip(days.tolist(), styles.tolist()):
        iso = str(base + np.timedelta64(day, "D"))
        y, m, d = int(iso[:4]), int(iso[5:7]), int(iso[8:])
        month, weekday = MONTHS[m - 1], DAYS[(day + 3) % 7]  # 1970-01-01 was a Thursday
        human = [f"{month} {d}, {y}", f"{d} {month} {y}", f"{month[:3]} {d}, {y}", f"{d} {month[:3].upper()} {y}",
                 f"{m}/{d}/{y % 100:02d}", f"{m}/{d}/{y}", f"{weekday}, {month} {d}, {y}", f"{y}-{m}-{d}",
                 f"{d}.{m}.{y}", f"{weekday[:3]}, {d} {month[:3]} {y}"][style]
        lines.append(human.ljust(29) + "_" + iso)
    return lines
