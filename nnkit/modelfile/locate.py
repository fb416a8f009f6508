"""Where a field sits in a model file's text: (line, column), both from 1, for error messages.

The parsers nnkit uses (tomllib, json) keep no positions, so this walks the text again for
the one path an error names. It understands the forms model files use: for TOML, tables,
arrays of tables, dotted keys and inline tables; for JSON, any document. YAML positions
come from PyYAML's own nodes (see `yaml_position`). An unknown form gives None: the error
then names the field path alone.
"""

from __future__ import annotations

import json
import re
from typing import Any

Path = tuple[Any, ...]
Position = tuple[int, int]

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")


def _split_key(dotted: str) -> list[str]:
    parts = re.findall(_KEY, dotted)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def toml_position(text: str, path: Path) -> Position | None:
    """The line and column of `path` (keys and list indices) in TOML `text`."""
    best: tuple[int, Position] | None = None  # (how much of the path matched, where)
    table: list[Any] = []
    arrays: dict[tuple, int] = {}
    offset = 0  # of the current line in `text`
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        line_start, offset = offset, offset + len(line)
        line = line.rstrip("\r\n")
        header = _HEADER.match(line)
        if header:
            keys = _split_key(header.group(2))
            table = list(keys)
            if header.group(1) == "[[":
                arrays[tuple(keys)] = arrays.get(tuple(keys), -1) + 1
                table.append(arrays[tuple(keys)])
            best = _better(best, table, path, (number, line.index(header.group(2)) + 1))
            continue
        assign = _ASSIGN.match(line)
        if not assign:
            continue
        full = table + _split_key(assign.group(1))
        best = _better(best, full, path, (number, line.index(assign.group(1).strip()[:1]) + 1))
        matched = _prefix(full, path)
        if matched == len(full) and matched < len(path):
            if isinstance(path[matched], int):  # an array, maybe over several lines
                where = _in_array(text, line_start + assign.end(), path[matched:])
                if where is not None:
                    best = _better(best, path, path, where)
                continue
            column = _inline(line[assign.end():], path[matched:])  # inside an inline table
            if column is not None:
                best = _better(best, path, path, (number, assign.end() + column))
    return best[1] if best else None


def _in_array(text: str, start: int, path: Path) -> Position | None:
    """Where element path[0] of the array whose value starts at `start` is (and, inside an
    inline table, the key path[1:]), following brackets over lines; strings and comments
    are skipped."""
    i = text.find("[", start)
    if i < 0:
        return None
    i += 1
    depth, element = 0, 0
    while i < len(text):
        c = text[i]
        skipped = _skip_string_or_comment(text, i)
        if skipped != i:
            i = skipped
            continue
        if depth == 0 and not c.isspace() and c not in ",]" and element == path[0]:
            where = _line_column(text, i)
            if len(path) > 1 and c == "{":
                close = _matching(text, i)
                column = _inline(text[i:close], path[1:])
                if column is not None:
                    return _line_column(text, i + column - 1)
            return where
        if c in "[{":
            depth += 1
        elif c in "]}":
            if depth == 0:
                return None  # the array ended first
            depth -= 1
        elif c == "," and depth == 0:
            element += 1
        i += 1
    return None


def _skip_string_or_comment(text: str, i: int) -> int:
    """The index just past the string or comment starting at `i`, or `i` when none does."""
    c = text[i]
    if c in "\"'":
        end = text.find(c, i + 1)
        while end > 0 and c == '"' and text[end - 1] == "\\":
            end = text.find(c, end + 1)
        return (end if end > 0 else len(text)) + 1
    if c == "#":
        newline = text.find("\n", i)
        return newline if newline >= 0 else len(text)
    return i


def _matching(text: str, i: int) -> int:
    """The index just past the bracket that closes the one at `i` (strings not considered)."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] in "[{":
            depth += 1
        elif text[j] in "]}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def _prefix(full: list[Any], path: Path) -> int:
    if len(full) > len(path) or any(a != b for a, b in zip(full, path)):
        return 0
    return len(full)


def _better(best: tuple[int, Position] | None, full: list[Any] | Path, path: Path,
            where: Position) -> tuple[int, Position] | None:
    matched = _prefix(list(full), path)
    if matched and (best is None or matched > best[0]):
        return matched, where
    return best


def _inline(rest: str, path: Path) -> int | None:
    """Column (from 1, within `rest`) of the deepest key of `path` found in an inline value."""
    column, offset = None, 0
    for part in path:
        if isinstance(part, int):
            continue
        match = re.search(rf"(?<![\w\"'-]){re.escape(str(part))}\s*=", rest[offset:])
        if not match:
            break
        column = offset + match.start() + 1
        offset += match.end()
    return column


def json_position(text: str, path: Path) -> Position | None:
    """The line and column of `path` in JSON `text` (the key of an object member, or the
    start of an array element)."""
    decoder = json.JSONDecoder()
    index = _skip(text, 0)
    where = index
    try:
        for part in path:
            if text[index] == "{" and isinstance(part, str):
                index = _skip(text, index + 1)
                while text[index] != "}":
                    key, end = decoder.raw_decode(text, index)
                    colon = _skip(text, end)
                    value = _skip(text, colon + 1)
                    if key == part:
                        where, index = index, value
                        break
                    _, index = decoder.raw_decode(text, value)
                    index = _skip(text, index)
                    if text[index] == ",":
                        index = _skip(text, index + 1)
                else:
                    return _line_column(text, where)
            elif text[index] == "[" and isinstance(part, int):
                index = _skip(text, index + 1)
                for _ in range(part):
                    _, index = decoder.raw_decode(text, index)
                    index = _skip(text, _skip(text, index) + 1)
                where = index
            else:
                break
    except (ValueError, IndexError):
        return None
    return _line_column(text, where)


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _line_column(text: str, index: int) -> Position:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def yaml_position(node: Any, path: Path) -> Position | None:
    """The position of `path` in a PyYAML node tree (`yaml.compose`)."""
    where = node.start_mark
    for part in path:
        if node.tag.endswith(":map") and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    where, node = key.start_mark, value
                    break
            else:
                break
        elif node.tag.endswith(":seq") and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            where = node.start_mark
        else:
            break
    return where.line + 1, where.column + 1
