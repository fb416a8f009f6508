"""The book's sequence files (ch. 7-8): question_answer lines, the '_' the decoder's start
symbol, characters as the vocabulary; and the generated addition and date tasks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from nnkit.data.sequences import SequenceText, SequenceTextConfig, addition_lines, date_lines

BOOK_LINES = "16+75  _91  \n52+607 _659 \n75+22  _97  \n"


def dataset(tmp_path: Path, text: str = BOOK_LINES, **config: object) -> SequenceText:
    (tmp_path / "s.txt").write_text(text)
    data = SequenceText(SequenceTextConfig(path="s.txt", **config))
    data.base_dir = tmp_path
    return data


def test_lines_split_at_the_first_underscore_which_starts_the_answer(tmp_path: Path) -> None:
    data = dataset(tmp_path).load(np.random.default_rng(0))
    chars = data.vocabulary
    assert chars is not None and chars[:7] == ("1", "6", "+", "7", "5", " ", "_")  # question, then answer, by line
    text = ["".join(chars[i] for i in row) for row in data.x["question"]]
    assert text == ["16+75  ", "52+607 ", "75+22  "]
    assert ["".join(chars[i] for i in row) for row in data.x["answer_in"]] == ["_91 ", "_659", "_97 "]
    assert ["".join(chars[i] for i in row) for row in data.t] == ["91  ", "659 ", "97  "]  # shifted by one
    reversed_ = dataset(tmp_path, reverse_question=True).load(np.random.default_rng(0))
    np.testing.assert_array_equal(reversed_.x["question"], data.x["question"][:, ::-1])


@pytest.mark.parametrize(("text", "message"), [
    ("16+75  91  \n", "line 1: '16\\+75  91  ' has no question before a '_'"),
    ("16+75  _91  \n5+6 _11\n", "line 2: '5\\+6 _11' is not laid out as line 1 \\(12 characters, '_' at 8\\)"),
    ("16+75_\n", "the answers are empty"),
    ("", "no question_answer lines"),
])
def test_a_malformed_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataset(tmp_path, text).load(np.random.default_rng(0))


def test_the_generated_tasks_are_the_books_and_seeded() -> None:
    lines = addition_lines(2000, np.random.default_rng(0))
    assert len({len(line) for line in lines}) == 1 and all(line[7] == "_" for line in lines)
    for line in lines:
        a, b = line[:7].split("+")
        assert int(line[8:]) == int(a) + int(b) < 1999
    assert lines == addition_lines(2000, np.random.default_rng(0)) != addition_lines(2000, np.random.default_rng(1))
    dates = date_lines(2000, np.random.default_rng(0))
    assert len({len(line) for line in dates}) == 1 and all(line[29] == "_" for line in dates)
    for line in dates[:200]:
        day = dt.date.fromisoformat(line[30:])
        human = line[:29].strip()
        assert str(day.year) in human or f"/{day.year % 100:02d}" in human
        if "," in human and human.split(",")[0].isalpha() and len(human.split(",")[0]) > 3:
            assert human.split(",")[0] == day.strftime("%A").lower()  # the weekday is that date's
    assert len({line[:29].strip().split(" ")[0].isdigit() for line in dates}) == 2  # several formats


def test_generate_or_path_not_both() -> None:
    with pytest.raises(ValueError, match="give exactly one of path"):
        SequenceTextConfig(path="a.txt", generate="addition")
