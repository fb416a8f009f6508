"""Names in a network: node and param names, references to a node's param
(`"<node>.<param>"`, e.g. `fc1.W`), and "did you mean" suggestions for misspelt names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import NamedTuple

#: A node, input or param name: an identifier.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: A param reference as written in model files: "<node>.<param>".
PARAM_REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"


class ParamRef(NamedTuple):
    """One param of one node; its text form `"<node>.<param>"` is the param's stable name
    in `Network.params`, checkpoints and optimizer state."""

    node: str
    param: str

    @classmethod
    def parse(cls, text: str) -> ParamRef:
        """`"fc1.W"` → ParamRef("fc1", "W"); ValueError without a dot."""
        node, dot, param = text.rpartition(".")
        if not dot or not node or not param:
            raise ValueError(f"{text!r} is not a param reference of the form '<node>.<param>'")
        return cls(node, param)

    def __str__(self) -> str:
        return f"{self.node}.{self.param}"


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Candidates that look like `name`, best first (case-insensitive)."""
    lower: dict[str, str] = {}
    for candidate in candidates:
        lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.5)
    return [lower[m] for m in matches]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """"; did you mean 'a', 'b'?" for the closest candidates, or "" when none is close."""
    close = closest(name, candidates)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
