"""A checkpoint's plugin lock against the installed plugins.

Every component a checkpoint names was provided by some distribution at some version
(`plugins` for layer types, `components` for the rest). Loading needs the layers' plugins
and refuses, naming the distribution to install, when one is missing or broken. The
optimizer, datasets, metrics and callbacks are needed only to train (or score with that
metric, or read that data): without their plugins a checkpoint still loads for inference,
and what is missing is named when, and only when, it is needed.
"""

from __future__ import annotations

import copy
import re
import warnings
from typing import Any

from nnkit.checkpoint.header import Header, PluginLock
from nnkit.errors import CheckpointError
from nnkit.registry import Kind, Registry
from nnkit.version import DISTRIBUTION, FORMER_NAMES


class PluginVersionWarning(UserWarning):
    """A checkpoint's component now comes from another plugin version or distribution."""


def _major(version: str) -> int | None:
    match = re.match(r"\s*v?(\d+)", version)
    return int(match.group(1)) if match else None


def _locked(header: Header, kind: Kind, name: str) -> PluginLock | None:
    return header.plugins.get(name) if kind == "layer" else header.components.get(kind, {}).get(name)


def needs(header: Header, registry: Registry, kind: Kind, name: str) -> str:
    """What installing a missing `kind` type `name` takes, in words."""
    origin = _locked(header, kind, name)
    text = f"{kind} type {name!r}, which no installed plugin provides"
    if origin is not None:
        broken = [p for p in registry.plugins if p.distribution == origin.distribution and p.errors]
        text += f"; it was provided by {origin.distribution} {origin.version}"
        text += (f", which is installed but failed to load ({broken[0].errors[0]})" if broken
                 else f": pip install {origin.distribution}")
    close = registry.closest(kind, name)
    return text + (f"; closest installed: {', '.join(close)}" if close else "")


def check_layers(header: Header, registry: Registry, path: object) -> None:
    """Fail with one clear error if a layer type the checkpoint uses is not installed (or
    broken), or was written by a newer major version of its plugin; warn, once per type,
    when the installed major version is newer or another distribution provides it now."""
    spec = header.spec
    nodes = spec.get("nodes") if isinstance(spec.get("nodes"), list) else []
    seen: set[str] = set()
    for node in [*(nodes or []), spec.get("loss")]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str) or node["type"] in seen:
            continue
        seen.add(node["type"])
        entry = registry.find("layer", node["type"])
        if entry is None:
            raise CheckpointError(f"{path}: node {node.get('name')!r} uses "
                                  f"{needs(header, registry, 'layer', node['type'])}")
        check_version(header, "layer", node["type"], entry.plugin.distribution, entry.plugin.version, path)


def check_version(header: Header, kind: Kind, name: str, distribution: str, version: str, path: object) -> None:
    origin = _locked(header, kind, name)
    if origin is None:
        return
    if origin.distribution != distribution and not (origin.distribution in FORMER_NAMES and
                                                    distribution == DISTRIBUTION):
        warnings.warn(f"{path}: {kind} type {name!r} was provided by {origin.distribution} {origin.version} "
                      f"and is now provided by {distribution} {version}", PluginVersionWarning, stacklevel=5)
        return
    stored, installed = _major(origin.version), _major(version)
    if stored is None or installed is None or stored == installed:
        return
    if stored > installed:
        raise CheckpointError(f"{path}: {kind} type {name!r} was written by {distribution} {origin.version}, newer "
                              f"than the installed {version}; pip install '{distribution}>={stored}'")
    warnings.warn(f"{path}: {kind} type {name!r} was written by {distribution} {origin.version}; the installed "
                  f"{version} is a newer major version", PluginVersionWarning, stacklevel=5)


def _any_missing(spec: dict[str, Any], registry: Registry) -> bool:
    validation = spec.get("validation")
    named: list[tuple[Kind, Any]] = [("optimizer", spec.get("optimizer")), ("dataset", spec.get("data")),
                                     ("dataset", validation.get("data") if isinstance(validation, dict) else None)]
    sections: tuple[tuple[str, Kind], ...] = (("metrics", "metric"), ("callbacks", "callback"))
    for section, kind in sections:
        items = spec.get(section)
        named += [(kind, {"type": c} if isinstance(c, str) else c) for c in (items if isinstance(items, list) else [])]
    return any(isinstance(c, dict) and isinstance(c.get("type"), str) and registry.find(k, c["type"]) is None
               for k, c in named)


def usable_spec(header: Header, registry: Registry) -> tuple[dict[str, Any], dict[str, str]]:
    """The stored spec with every non-layer component whose plugin is missing taken out
    (the optimizer stands in as SGD), and for each one taken out what it needs. When every
    plugin is there (the common case) the stored spec itself, uncopied."""
    if not _any_missing(header.spec, registry):
        return header.spec, {}
    spec = copy.deepcopy(header.spec)
    missing: dict[str, str] = {}

    def absent(kind: Kind, config: Any) -> bool:
        name = config.get("type") if isinstance(config, dict) else None
        if not isinstance(name, str) or registry.find(kind, name) is not None:
            return False
        missing[f"{kind} {name}"] = needs(header, registry, kind, name)
        return True

    if absent("optimizer", spec.get("optimizer")):
        spec["optimizer"] = {"type": "SGD"}
    if absent("dataset", spec.get("data")):
        spec.pop("data")
    validation = spec.get("validation")
    if isinstance(validation, dict) and absent("dataset", validation.get("data")):
        spec.pop("validation")
    sections: tuple[tuple[str, Kind], ...] = (("metrics", "metric"), ("callbacks", "callback"))
    for section, kind in sections:
        items = spec.get(section)
        if isinstance(items, list):
            spec[section] = [c for c in items if not absent(kind, {"type": c} if isinstance(c, str) else c)]
    return spec, missing
