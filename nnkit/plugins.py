"""Plugin loading: nnkit's built-ins, then every entry point in the group `nnkit`.

Each plugin is imported and each of its hooks is called on its own, inside its own
try/except: a broken plugin is recorded (and warned about) and every other plugin keeps
working. `NNKIT_DISABLE_PLUGINS=a,b` skips entry points by name, `NNKIT_LOAD_PLUGINS=a,b`
loads only those (`none`: no entry point); built-ins always load. A name that is no
installed plugin is warned about.

This is the only module that knows the built-in plugins and the installed ones. The core
(specs, networks, checkpoints, the runner's loop) is handed a `Registry`; the default one,
`get_registry()`, is resolved only at the entry points: `nnkit.load` and the other public
functions, the runner's construction helpers and the CLI.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import pluggy

from nnkit import hookspecs
from nnkit.errors import PluginError
from nnkit.registry import Kind, PluginInfo, Registry
from nnkit.version import DISTRIBUTION, __version__

ENTRY_POINT_GROUP = "nnkit"
#: nnkit's own plugins: (the name `nnkit plugins` shows, the module of this package that
#: implements its hooks). Never names read from a file.
BUILTINS = (("nnkit.layers", "nnkit.layers"), ("nnkit.optimizers", "nnkit.optim.optimizers"),
            ("nnkit.datasets", "nnkit.data.builtin"), ("nnkit.metrics", "nnkit.metrics"),
            ("nnkit.callbacks", "nnkit.training.callbacks"))
#: Each hook, the kind it registers, and where that kind's base class lives.
HOOKS: tuple[tuple[str, Kind, str, str], ...] = (
    ("register_layers", "layer", "nnkit.layer", "Layer"),
    ("register_optimizers", "optimizer", "nnkit.optim.optimizers", "Optimizer"),
    ("register_datasets", "dataset", "nnkit.data", "Dataset"),
    ("register_metrics", "metric", "nnkit.metrics", "Metric"),
    ("register_callbacks", "callback", "nnkit.training.callbacks", "Callback"),
)


class PluginWarning(UserWarning):
    """A plugin could not be loaded, or registered something invalid."""


def _names_from_env(var: str) -> set[str] | None:
    value = os.environ.get(var, "").strip()
    return {n.strip() for n in value.split(",") if n.strip()} if value else None


def load_registry(
    extra: Iterable[tuple[PluginInfo, Any]] = (),
    *,
    entry_points: bool = True,
) -> Registry:
    """Load built-ins, installed plugins (unless `entry_points=False`) and `extra` plugins.

    `extra` pairs a `PluginInfo` with a plugin object (a module or any object with
    hookimpls); tests use it to register a plugin without installing one.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    infos: dict[str, PluginInfo] = {}

    def add(info: PluginInfo, plugin: Any) -> None:
        registry.plugins.append(info)
        try:
            pm.register(plugin, name=info.name)
        except Exception as exc:  # a plugin's fault must not take nnkit down
            _fail(info, f"cannot register: {exc}")
        else:
            infos[info.name] = info

    for name, module in BUILTINS:
        add(PluginInfo(name, DISTRIBUTION, __version__), importlib.import_module(module))
    if entry_points:
        for info, plugin in _installed_plugins():
            if plugin is not None:
                add(info, plugin)
            else:
                registry.plugins.append(info)
    for info, plugin in extra:
        add(info, plugin)

    for hook_name, kind, module, class_name in HOOKS:
        base = getattr(importlib.import_module(module), class_name)
        _call_hook(pm, infos, hook_name, lambda info, cls, kind=kind, base=base: registry.add(kind, cls, info, base))
    _call_hook(pm, infos, "register_onnx_converters",
               lambda info, layer_type, convert: registry.add_onnx_converter(layer_type, convert, info))
    return registry


def _call_hook(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], hook_name: str,
               add: Callable[..., None]) -> None:
    """Call one hook of every plugin, each on its own, in load order: built-ins register
    first (pluggy would call the last-registered plugin first), so a plugin can never
    silently replace one of them. What a plugin registers goes to `add(info, *args)`."""
    impls = {impl.plugin_name: impl for impl in getattr(pm.hook, hook_name).get_hookimpls()}
    for name, info in infos.items():
        impl = impls.get(name)
        if impl is None:
            continue

        def register(*args: Any, info: PluginInfo = info) -> None:
            try:
                add(info, *args)
            except PluginError as exc:
                _fail(info, str(exc))
            except TypeError as exc:  # register called with the wrong arguments
                _fail(info, f"{hook_name}: register{args!r}: {exc}")

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except Exception as exc:  # a plugin's fault must not take nnkit down
            _fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}")


def _installed_plugins() -> list[tuple[PluginInfo, Any]]:
    disabled = _names_from_env("NNKIT_DISABLE_PLUGINS") or set()
    only = _names_from_env("NNKIT_LOAD_PLUGINS")
    entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    installed = {ep.name for ep in entry_points}
    for var, names in (("NNKIT_DISABLE_PLUGINS", disabled), ("NNKIT_LOAD_PLUGINS", (only or set()) - {"none"})):
        for unknown in sorted(names - installed):
            warnings.warn(f"{var} names {unknown!r}, which is no installed plugin (installed: "
                          f"{', '.join(sorted(installed)) or 'none'})", PluginWarning, stacklevel=3)
    found = []
    for ep in entry_points:
        if ep.name in disabled or (only is not None and ep.name not in only):
            continue
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "unknown"
        info = PluginInfo(ep.name, dist, version)
        try:
            plugin = ep.load()
        except Exception as exc:  # a plugin's fault must not take nnkit down
            _fail(info, f"cannot import {ep.value}: {type(exc).__name__}: {exc}")
            plugin = None
        found.append((info, plugin))
    return found


def _fail(info: PluginInfo, message: str) -> None:
    info.errors.append(message)
    warnings.warn(
        f"nnkit plugin {info.name!r} ({info.distribution} {info.version}): {message}",
        PluginWarning, stacklevel=3,
    )


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


def set_registry(registry: Registry | None) -> Registry | None:
    """Replace the process-wide registry (None = reload on next use); returns the old one."""
    global _registry
    old, _registry = _registry, registry
    return old
