"""Sweep files: a base model file, a search space over dotted paths into it, and how to
search (TOML, JSON or YAML, validated by pydantic; errors as `file:line:col`).

    model = "spiral.toml"                 # relative to the sweep file
    metric = "val_loss"                   # any key of the run's epoch records
    direction = "minimize"
    trials = 12
    sampler = "tpe"                       # grid | random | tpe

    [space]
    "optimizer.lr" = { log_uniform = [0.1, 3.0] }
    "nodes.fc1.units" = { choice = [10, 20, 40] }
    "train.seed" = { int = [0, 3] }

A path walks the model file's data: section and field names, a node by its `name` (or its
index), e.g. `nodes.fc1.units`. Every trial's model file is checked before anything runs:
each path must name a field the model file has or its layer accepts, and the model file
must validate with every choice and both ends of every range.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from nnkit.config import Strict
from nnkit.errors import ModelFileError, NnkitError
from nnkit.modelfile import position, validate_spec
from nnkit.modelfile.migrations import upgrade
from nnkit.modelfile.parse import format_of, parse_text, read_text
from nnkit.names import did_you_mean
from nnkit.registry import Registry
from nnkit.spec import Spec

Scalar = int | float | str | bool
_Pair = Annotated[list[float], Field(min_length=2, max_length=2)]
KINDS = ("choice", "uniform", "log_uniform", "int")
_ATTR = {"int": "integer"}  # `int` in the file; `integer` here, so that the builtin stays in reach


class Dimension(Strict):
    """One searched setting: exactly one of `choice`, `uniform`, `log_uniform`, `int`."""

    choice: list[Scalar] | None = Field(default=None, min_length=1, max_length=10_000)  # any of these values
    uniform: _Pair | None = None  # a real number in [low, high]
    log_uniform: _Pair | None = None  # a real number in [low, high], drawn on a log scale (0 < low)
    integer: _Pair | None = Field(default=None, alias="int")  # a whole number in [low, high]

    @model_validator(mode="after")
    def _exactly_one(self) -> Dimension:
        given = [k for k in KINDS if getattr(self, _ATTR.get(k, k)) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, uniform, log_uniform, int" +
                             (f" (got {', '.join(given)})" if given else ""))
        low_high = getattr(self, _ATTR.get(given[0], given[0])) if given[0] != "choice" else None
        if low_high is not None:
            low, high = low_high
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"{given[0]} needs [low, high] with low ≤ high, got {low_high}")
            if given[0] == "log_uniform" and low <= 0:
                raise ValueError(f"log_uniform needs 0 < low, got {low}")
            if given[0] == "int" and (low != round(low) or high != round(high)):
                raise ValueError(f"int needs whole numbers, got {low_high}")
        return self

    @property
    def kind(self) -> str:
        """choice, uniform, log_uniform or int."""
        return next(k for k in KINDS if getattr(self, _ATTR.get(k, k)) is not None)

    @property
    def bounds(self) -> tuple[float, float]:
        """[low, high] of a range."""
        low, high = getattr(self, _ATTR.get(self.kind, self.kind))
        return low, high

    def extremes(self) -> list[Scalar]:
        """The values the up-front check tries: every choice, both ends of a range."""
        if self.choice is not None:
            return list(self.choice)
        low, high = self.bounds
        return [int(low), int(high)] if self.kind == "int" else [low, high]

    def grid(self) -> list[Scalar] | None:
        """Every value, for the grid sampler (None for a continuous range)."""
        if self.choice is not None:
            return list(self.choice)
        if self.integer is not None:
            return list(range(int(self.integer[0]), int(self.integer[1]) + 1))
        return None


class SweepFile(Strict):
    schema_url: str | None = Field(default=None, alias="$schema", max_length=2048)  # for editors; ignored by nnkit
    format_version: Literal[1] = 1  # the sweep file format
    model: str = Field(min_length=1, max_length=4096)  # the base model file, relative to the sweep file
    metric: str = Field(default="val_loss", min_length=1, max_length=128)  # a key of the epoch records
    direction: Literal["minimize", "maximize"] = "minimize"
    trials: int = Field(default=20, ge=1, le=1_000_000)  # how many trials the study holds when done
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)  # the sampler's seed
    pruning: bool = False  # stop trials whose metric lags (Optuna's median pruner, epoch by epoch)
    # Epochs every trial runs before the pruner may stop it (default: a quarter of the
    # recipe's epochs), and trials that finish before any is pruned.
    warmup_epochs: int | None = Field(default=None, ge=0, le=1_000_000)
    warmup_trials: int = Field(default=4, ge=0, le=1_000_000)
    parallel: int | None = Field(default=None, ge=1, le=100_000)  # trials at once (default: one per worker)
    retries: int = Field(default=2, ge=0, le=100)  # reruns of a trial whose worker died
    space: dict[Annotated[str, Field(min_length=1, max_length=512)], Dimension] = Field(min_length=1,
                                                                                        max_length=1000)


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its file, the base model file's data, and the registry."""

    file: SweepFile
    source: Path  # the sweep file
    model_path: Path  # the base model file
    model_data: dict[str, Any]


def read_sweep_file(path: str | Path, registry: Registry) -> Sweep:
    """Read and validate a sweep file and check every trial it can make; ModelFileError
    naming the file, the line and column, and the path into the space."""
    path = Path(path)
    fmt = format_of(path)
    text = read_text(path)
    data = parse_text(text, fmt, str(path))
    if "nodes" in data and "model" not in data:
        raise ModelFileError(f"{path}: is a model file, not a sweep file; a sweep file names one in `model` "
                             "and searches its settings in [space] (see examples/spiral-sweep.toml)")
    try:
        sweep = SweepFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = position(text, fmt, tuple(error["loc"])[:2])
        prefix = f"{path}:{where[0]}:{where[1]}" if where else str(path)
        field = ".".join(str(k) for k in error["loc"])
        raise ModelFileError(f"{prefix}: {field}: {error['msg'].removeprefix('Value error, ')}") from None
    model_path = path.parent / sweep.model
    if not model_path.exists():
        where = position(text, fmt, ("model",))
        prefix = f"{path}:{where[0]}:{where[1]}" if where else str(path)
        raise ModelFileError(f"{prefix}: model: {model_path}: no such file (a model path is relative to the "
                             "sweep file)")
    model_fmt = format_of(model_path)
    model_text = read_text(model_path)
    model_data = upgrade(parse_text(model_text, model_fmt, str(model_path)), str(model_path))
    spec = validate_spec(copy.deepcopy(model_data), str(model_path), registry, text=model_text, fmt=model_fmt)
    result = Sweep(sweep, path, model_path, model_data)
    check_metric(sweep.metric, spec, registry, f"{path}", text, fmt)
    check_space(result, registry, text, fmt)
    return result


def check_metric(metric: str, spec: Spec, registry: Registry, path: str, text: str, fmt: str) -> None:
    """The metric must be a key of the epoch records the model file's runs will have."""
    metrics = [registry.get("metric", m.type).cls(m) for m in spec.metrics]
    names = ["loss", *(m.name for m in metrics if not m.needs_decoding)]  # decoded ones: held-out data only
    held_out = ["loss", *(m.name for m in metrics)]
    keys = [*names, *(f"val_{n}" for n in held_out)] if spec.validation is not None else names
    if metric not in keys:
        where = position(text, fmt, ("metric",))
        prefix = f"{path}:{where[0]}:{where[1]}" if where else path
        hint = "" if spec.validation is not None or not metric.startswith("val_") else \
            "; val_… metrics need a [validation] section in the model file"
        raise ModelFileError(f"{prefix}: metric: {metric!r} is not a key of the runs' epoch records "
                             f"({', '.join(keys)}){did_you_mean(metric, keys)}{hint}")


def check_space(sweep: Sweep, registry: Registry, text: str, fmt: str) -> None:
    """Every path must exist in (or be accepted by) the model file, and the model file must
    validate with each dimension at each of its extreme values."""
    for dotted, dimension in sweep.file.space.items():
        where = position(text, fmt, ("space", dotted))
        prefix = f"{sweep.source}:{where[0]}:{where[1]}" if where else str(sweep.source)
        if sweep.file.sampler == "grid" and dimension.grid() is None:
            raise ModelFileError(f"{prefix}: space.{dotted}: the grid sampler needs choice or int, not "
                                 f"{dimension.kind}")
        for value in dimension.extremes():
            try:
                data = with_settings(sweep.model_data, {dotted: value})
                validate_spec(data, str(sweep.model_path), registry)
            except NnkitError as exc:
                reason = str(exc).removeprefix(f"{sweep.model_path}: ")
                raise ModelFileError(f"{prefix}: space.{dotted} = {value!r} makes an invalid model file: "
                                     f"{reason}") from None


def with_settings(model_data: dict[str, Any], settings: dict[str, Scalar]) -> dict[str, Any]:
    """A copy of the model file's data with each dotted path set to its value."""
    data = copy.deepcopy(model_data)
    for dotted, value in settings.items():
        parent, key = _walk(data, dotted)
        if isinstance(parent, list):
            parent[int(key)] = value
        else:
            parent[key] = value
    return data


def _walk(data: dict[str, Any], dotted: str) -> tuple[Any, str]:
    """The container holding the last part of `dotted`, and that part."""
    parts = dotted.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = _step(node, part, ".".join(parts[:depth + 1]), dotted)
    last = parts[-1]
    if isinstance(node, list) and not (last.isdigit() and int(last) < len(node)):
        raise ModelFileError(f"{dotted}: {'.'.join(parts[:-1])} is a list; name an item by its index")
    if not isinstance(node, (dict, list)):
        raise ModelFileError(f"{dotted}: {'.'.join(parts[:-1])} is a value, not a section")
    return node, last


def _step(node: Any, part: str, so_far: str, dotted: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            node[part] = {}  # a section the model file leaves to its defaults (e.g. [train])
        return node[part]
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and item.get("name") == part:
                return item
        if part.isdigit() and int(part) < len(node):
            return node[int(part)]
        names = [str(i.get("name")) for i in node if isinstance(i, dict) and i.get("name")]
        raise ModelFileError(f"{dotted}: no item {part!r} in {so_far.rsplit('.', 1)[0]}"
                             + (f" (named: {', '.join(names)})" if names else ""))
    raise ModelFileError(f"{dotted}: {so_far.rsplit('.', 1)[0]} is a value, not a section")


def sweep_schema() -> dict[str, Any]:
    """The JSON Schema of sweep files, each field described by its comment here."""
    from nnkit.modelfile.schema import SCHEMA_DIALECT, describe

    schema = SweepFile.model_json_schema(by_alias=True)
    for definition, cls in ((schema, SweepFile), *((d, Dimension) for n, d in schema.get("$defs", {}).items()
                                                    if n == "Dimension")):
        describe(definition, cls)
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "nnkit sweep file"}
