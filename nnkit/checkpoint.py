"""Saving and loading networks and training state through the checkpoint container.

Structure lives in the spec, numbers live in the arrays: loading validates the stored
spec, builds the network from it, then fills the params and grads by name. Array names:
`params/<node>.<param>`, `grads/<node>.<param>`, `optimizer/<node>.<param>/<slot>`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnkit import ckptfile
from nnkit.errors import CheckpointError, ModelFileError
from nnkit.graph import Network
from nnkit.modelfile import validate_spec
from nnkit.optimizers import Optimizer
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.rng import state_from_data, state_to_data
from nnkit.version import __version__


@dataclass
class TrainingState:
    """Everything besides the network that an exact resume needs."""

    optimizer: Optimizer | None = None
    rngs: dict[str, np.random.Generator] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)  # epoch, step, history, ...


def plugin_lock(network: Network, registry: Registry) -> dict[str, dict[str, str]]:
    """Layer type → the distribution and version that provided it."""
    types = {n.type for n in network.spec.nodes} | ({network.spec.loss.type} if network.spec.loss else set())
    lock = {}
    for name in sorted(types):
        plugin = registry.get("layer", name).plugin
        lock[name] = {"distribution": plugin.distribution, "version": plugin.version}
    return lock


def save(path: str | Path, network: Network, state: TrainingState | None = None,
         *, registry: Registry | None = None) -> None:
    """Write `network` (spec, params, grads) and optional training state to `path`, atomically."""
    registry = registry or get_registry()
    state = state or TrainingState()
    arrays: dict[str, np.ndarray] = {}
    for name, param in network.params.items():
        arrays[f"params/{name}"] = param
    for name, grad in network.grads.items():
        arrays[f"grads/{name}"] = grad
    header: dict[str, Any] = {
        "format": ckptfile.FORMAT,
        "format_version": ckptfile.FORMAT_VERSION,
        "nnkit_version": __version__,
        "created": state.progress.get("created") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": network.spec.to_dict(),
        "plugins": plugin_lock(network, registry),
        "progress": {k: v for k, v in state.progress.items() if k != "created"},
        "rng": {name: state_to_data(g) for name, g in state.rngs.items()},
    }
    if state.optimizer is not None:
        names = list(network.params)
        header["optimizer"] = {"type": state.optimizer.config.type, "iterations": state.optimizer.iterations}
        for key, value in state.optimizer.state_arrays(names).items():
            arrays[f"optimizer/{key}"] = value
    ckptfile.write(path, header, arrays)


class Checkpoint:
    """An opened checkpoint: header fields, the rebuilt network, and its training state."""

    def __init__(self, path: str | Path, registry: Registry | None = None) -> None:
        self.file = ckptfile.CheckpointFile(path)
        self.path = self.file.path
        self.header = self.file.header
        self.registry = registry or get_registry()

    def close(self) -> None:
        self.file.close()

    @property
    def spec_data(self) -> dict[str, Any]:
        spec = self.header.get("spec")
        if not isinstance(spec, dict):
            raise CheckpointError(f"{self.path}: the header holds no model spec")
        return spec

    def check_plugins(self) -> None:
        """Fail with one clear error if a layer type the checkpoint uses is not installed."""
        lock = self.header.get("plugins") if isinstance(self.header.get("plugins"), dict) else {}
        nodes = self.spec_data.get("nodes") if isinstance(self.spec_data.get("nodes"), list) else []
        loss = self.spec_data.get("loss")
        for node in [*nodes, loss]:
            if not isinstance(node, dict) or not isinstance(node.get("type"), str):
                continue
            kind = node["type"]
            if self.registry.find("layer", kind) is not None:
                continue
            origin = lock.get(kind)
            provided = ""
            if isinstance(origin, dict) and isinstance(origin.get("distribution"), str):
                dist = origin["distribution"]
                provided = f"; it was provided by {dist} {origin.get('version', '?')}: pip install {dist}"
            close = self.registry.closest("layer", kind)
            hint = f"; closest installed: {', '.join(close)}" if close else ""
            raise CheckpointError(
                f"{self.path}: node {node.get('name')!r} uses layer type {kind!r}, "
                f"which no installed plugin provides{provided}{hint}")

    def network(self, *, grads: bool = True) -> Network:
        """Build the network from the stored spec and fill its params (and grads)."""
        self.check_plugins()
        try:
            spec = validate_spec(self.spec_data, f"{self.path} (stored spec)", self.registry)
            # Building draws initial weights; a throwaway generator keeps the stored one untouched.
            network = Network(spec, rng=np.random.default_rng(0), registry=self.registry, source=str(self.path))
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None
        network.use_rng(self._rng("network"))
        self._fill("params", network.params)
        if grads:
            self._fill("grads", network.grads)
        return network

    def _fill(self, section: str, targets: dict[str, np.ndarray]) -> None:
        stored = {n.split("/", 1)[1] for n in self.file.names() if n.startswith(section + "/")}
        missing, unexpected = sorted(set(targets) - stored), sorted(stored - set(targets))
        if missing or unexpected:
            raise CheckpointError(
                f"{self.path}: {section} do not match the spec (missing {missing}, unexpected {unexpected})")
        for name, target in targets.items():
            array = self.file.array(f"{section}/{name}")
            if array.shape != target.shape or array.dtype != target.dtype:
                raise CheckpointError(
                    f"{self.path}: {section}/{name} is {array.dtype} {array.shape}; "
                    f"the spec builds {target.dtype} {target.shape}")
            target[...] = array

    def _rng(self, name: str) -> np.random.Generator:
        data = (self.header.get("rng") or {}).get(name) if isinstance(self.header.get("rng"), dict) else None
        if data is None:
            return np.random.default_rng(0)
        return state_from_data(data, f"{self.path}: rng.{name}")

    def training_state(self, network: Network, optimizer: Optimizer) -> TrainingState:
        """The stored optimizer state loaded into `optimizer`, the RNGs and the progress."""
        prefix = "optimizer/"
        arrays = {n[len(prefix):]: np.array(self.file.array(n)) for n in self.file.names() if n.startswith(prefix)}
        info = self.header.get("optimizer") or {}
        if info and info.get("type") != optimizer.config.type:
            raise CheckpointError(
                f"{self.path}: stored optimizer is {info.get('type')!r}, not {optimizer.config.type!r}")
        optimizer.load_state_arrays(list(network.params), arrays, list(network.params.values()))
        optimizer.iterations = int(info.get("iterations", 0))
        rngs = {name: self._rng(name) for name in (self.header.get("rng") or {}) if name != "network"}
        rngs["network"] = network.rng
        progress = dict(self.header.get("progress") or {})
        progress["created"] = self.header.get("created")
        return TrainingState(optimizer, rngs, progress)


def load(path: str | Path, *, grads: bool = True, registry: Registry | None = None) -> Network:
    """The network stored at `path`, built from its spec alone, with params and grads filled."""
    checkpoint = Checkpoint(path, registry)
    try:
        return checkpoint.network(grads=grads)
    finally:
        checkpoint.close()
