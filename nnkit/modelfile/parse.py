"""Model-file text: reading it (size and encoding checked), parsing TOML, JSON or YAML into
plain data (duplicate keys, aliases, non-finite constants and deep nesting refused), and
writing plain data back as text. Parsers build data only; nothing in a file runs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from nnkit.errors import ModelFileError, reading
from nnkit.paths import open_regular
from nnkit.version import install_hint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MAX_FILE_BYTES = 4 * 1024 * 1024  # model files are small; a larger one is refused unread
#: YAML parses at about 0.5 MB/s even with libyaml, so its cap is lower: refusing (or
#: reading) a hostile file stays a matter of seconds. 10,000 nodes in YAML take ~400 KB.
MAX_YAML_BYTES = 1024 * 1024
MAX_DEPTH = 32  # nesting of tables and lists; specs need about 6
FORMATS = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None and path.suffix.lower() == ".nnk":  # the most likely mix-up: say what to do instead
        raise ModelFileError(f"{path}: a checkpoint, not a model file; to train it on: nnkit train --resume {path} "
                             "(in Python: nnkit.Model.load)")
    if fmt is None:
        raise ModelFileError(f"{path}: unknown model-file extension {path.suffix!r}; use {', '.join(FORMATS)}")
    return fmt


def read_text(path: str | Path) -> str:
    """A model file's text, refusing missing, oversized and non-UTF-8 files."""
    path = Path(path)
    with open_regular(path, ModelFileError, "model file") as f, reading(path, ModelFileError, "model file"):
        raw = f.read(MAX_FILE_BYTES + 1)  # the cap holds on what is read, whatever the file claims
    if len(raw) > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: over {MAX_FILE_BYTES} bytes; model files are capped at {MAX_FILE_BYTES}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def parse_text(text: str, fmt: str, source: str) -> dict[str, Any]:
    """Parse model-file text in `fmt` ("toml", "json" or "yaml") into plain data."""
    cap = MAX_YAML_BYTES if fmt == "yaml" else MAX_FILE_BYTES
    if len(text) > cap:
        raise ModelFileError(f"{source}: {len(text):,} characters; {fmt.upper()} model files are capped at "
                             f"{cap:,} bytes")
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        elif fmt == "json":
            data = json.loads(text, object_pairs_hook=unique_keys, parse_constant=_no_constants)
        else:
            data = yaml_loader().load(text)
    except tomllib.TOMLDecodeError as exc:  # "Unclosed inline table (at line 43, column 23)"
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        prefix = f"{source}:{where[1]}:{where[2]}" if where else source
        raise ModelFileError(f"{prefix}: invalid TOML: {reason}") from None
    except YamlSyntaxError as exc:
        raise ModelFileError(f"{source}:{exc.line}:{exc.column}: invalid YAML: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ModelFileError(f"{source}: nested too deeply (the cap is {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise ModelFileError(f"{source}: invalid {fmt.upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: the top level must be a table/object, not {type(data).__name__}")
    if _depth(data) > MAX_DEPTH:
        raise ModelFileError(f"{source}: nested too deeply (the cap is {MAX_DEPTH} levels)")
    return data


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A map from a parser's pairs, refusing a repeated key (parsers keep the last one
    silently); for JSON model files and checkpoint headers alike."""
    result: dict[Any, Any] = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[Any] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {str(key)[:64]!r}")
        seen.add(key)
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number nnkit accepts")


class YamlSyntaxError(ValueError):
    """Where PyYAML stopped, and why."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.column, self.reason = line, column, reason


class _YamlModule:
    """PyYAML behind the optional extra, with a loader fit for files from strangers: safe
    construction only, no aliases, no duplicate keys. libyaml's parser is used where PyYAML
    has it (three times as fast); the checks run in the constructor, which is Python."""

    def __init__(self) -> None:
        try:
            import yaml
        except ImportError:
            raise ModelFileError(f"YAML model files need PyYAML: {install_hint('yaml')}") from None
        self.yaml = yaml

        class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
            def construct_object(self, node, deep=False):  # type: ignore[no-untyped-def]
                # An alias is the same node met a second time.
                if node in self.constructed_objects or node in self.recursive_objects:
                    raise ValueError(f"line {node.start_mark.line + 1}: YAML aliases are not allowed")
                return super().construct_object(node, deep=deep)

            def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
                seen = set()
                for key, _ in node.value:
                    if key.value in seen:
                        raise ValueError(f"line {key.start_mark.line + 1}: duplicate key {key.value!r}")
                    seen.add(key.value)
                return super().construct_mapping(node, deep=deep)

        self.Loader = Loader

    def load(self, text: str) -> Any:
        try:
            return self.yaml.load(text, Loader=self.Loader)
        except self.yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                raise YamlSyntaxError(mark.line + 1, mark.column + 1, str(getattr(exc, "problem", exc))) from None
            raise ValueError(str(exc).replace("\n", " ")) from None

    def compose(self, text: str) -> Any:
        return self.yaml.compose(text, Loader=self.Loader)

    def dump(self, data: Any) -> str:
        return self.yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def yaml_loader() -> _YamlModule:
    return _YamlModule()


def dump_text(data: dict[str, Any], fmt: str, original: str | None = None) -> str:
    """Plain data as model-file text in `fmt`. Given the file's `original` TOML text, only
    what changed is rewritten: its comments, order and layout stay (tomlkit)."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml_loader().dump(data)
    try:
        import tomlkit
    except ImportError:
        raise ModelFileError(f"writing TOML needs tomlkit: {install_hint('toml')}") from None
    if original is None:
        return tomlkit.dumps(data)
    document = tomlkit.parse(original)
    _update(document, data)
    return tomlkit.dumps(document)


def _update(target: Any, new: dict[str, Any]) -> None:
    """Make the tomlkit table `target` hold `new`, touching only what differs (so that the
    comments and layout around everything else stay)."""
    for key in [k for k in target if k not in new]:
        del target[key]
    for key, value in new.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _update(current, value)
        elif (isinstance(value, list) and isinstance(current, list) and len(value) == len(current)
              and all(isinstance(v, dict) and isinstance(c, dict) for v, c in zip(value, current))):
            for item, old in zip(value, current):
                _update(old, item)
        elif current != value:
            target[key] = value
