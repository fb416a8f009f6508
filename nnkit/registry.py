"""The registry: every component type (layer, optimizer, dataset, metric, callback) by
name, with the plugin that gave it.

Nothing in nnkit's core knows a component by name; it asks the registry it is handed. A
registry is filled by `nnkit.plugins.load_registry` through the hooks in `nnkit.hookspecs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from nnkit.config import type_name_of
from nnkit.errors import PluginError
from nnkit.names import closest, did_you_mean

Kind = Literal["layer", "optimizer", "dataset", "metric", "callback"]
KINDS: tuple[Kind, ...] = ("layer", "optimizer", "dataset", "metric", "callback")


@dataclass
class PluginInfo:
    """One plugin as nnkit loaded it: where it came from, what it gave, what went wrong."""

    name: str
    distribution: str
    version: str
    provides: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "layers": self.provides["layer"], "optimizers": self.provides["optimizer"],
            "datasets": self.provides["dataset"], "metrics": self.provides["metric"],
            "callbacks": self.provides["callback"], "onnx_converters": self.provides.get("onnx", []),
            "error": "; ".join(self.errors) if self.errors else None,
        }


@dataclass(frozen=True)
class Entry:
    """A registered component class and its provenance."""

    kind: Kind
    name: str
    cls: Any  # a subclass of the kind's base class (nnkit.Layer, …), checked by `Registry.add`
    plugin: PluginInfo


@dataclass(frozen=True)
class ConverterEntry:
    """How one layer type is written as ONNX nodes, and the plugin that said so."""

    layer_type: str
    convert: Callable[..., None]  # convert(layer, node: nnkit.interop.onnx.NodeBuilder)
    plugin: PluginInfo


class Registry:
    """Component classes by kind and type name, and the layers' ONNX converters."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self.onnx_converters: dict[str, ConverterEntry] = {}
        self.plugins: list[PluginInfo] = []

    def add(self, kind: Kind, cls: Any, plugin: PluginInfo, base: type) -> None:
        """Register `cls` under its Config's type name; raises PluginError when invalid."""
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{cls!r} is not a subclass of nnkit.{base.__name__}")
        try:
            name = type_name_of(cls)
        except TypeError as exc:
            raise PluginError(str(exc)) from None
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} type {name!r} is already provided by {existing.plugin.distribution} "
                f"{existing.plugin.version} (plugin {existing.plugin.name}); "
                f"{plugin.distribution} {plugin.version} (plugin {plugin.name}) may not replace it"
            )
        self._entries[kind][name] = Entry(kind, name, cls, plugin)
        plugin.provides[kind].append(name)

    def add_onnx_converter(self, layer_type: str, convert: Callable[..., None], plugin: PluginInfo) -> None:
        """Register how `layer_type` converts to ONNX; PluginError when invalid or taken."""
        if not isinstance(layer_type, str) or not callable(convert):
            raise PluginError(f"register_onnx_converters: register(layer_type: str, convert) got "
                              f"{layer_type!r}, {convert!r}")
        existing = self.onnx_converters.get(layer_type)
        if existing is not None:
            raise PluginError(f"the ONNX converter of {layer_type!r} is already provided by "
                              f"{existing.plugin.distribution} {existing.plugin.version}; "
                              f"{plugin.distribution} {plugin.version} may not replace it")
        self.onnx_converters[layer_type] = ConverterEntry(layer_type, convert, plugin)
        plugin.provides.setdefault("onnx", []).append(layer_type)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._entries[kind])

    def find(self, kind: Kind, name: str) -> Entry | None:
        return self._entries[kind].get(name)

    def closest(self, kind: Kind, name: str) -> list[str]:
        """Registered names that look like `name` (case-insensitive)."""
        return closest(name, self._entries[kind])

    def get(self, kind: Kind, name: str) -> Entry:
        """The entry for `name`; PluginError naming the closest registered names if absent."""
        entry = self.find(kind, name)
        if entry is None:
            raise PluginError(self.unknown_message(kind, name))
        return entry

    def unknown_message(self, kind: Kind, name: str) -> str:
        hint = did_you_mean(name, self._entries[kind])
        return f"unknown {kind} type {name!r}{hint} (registered: {', '.join(self.names(kind))})"
