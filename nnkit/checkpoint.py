"""Saving and loading networks and training state through the checkpoint container.

Structure lives in the spec, numbers live in the arrays: loading validates the stored
spec, builds the network from it (without drawing initial weights), then fills the
params and grads by name. Array names: `params/<node>.<param>`, `grads/<node>.<param>`,
`optimizer/<node>.<param>/<slot>`, and `progress/order` (the shuffled order of an
unfinished epoch).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnkit import ckptfile
from nnkit.arrays import empty_small_pages, lazy_zeros
from nnkit.ckptheader import FORMAT, FORMAT_VERSION, Header
from nnkit.errors import CheckpointError, ModelFileError
from nnkit.graph import Network
from nnkit.modelfile import validate_spec
from nnkit.optimizers import Optimizer
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.rng import state_from_data, state_to_data
from nnkit.version import __version__


class PluginVersionWarning(UserWarning):
    """A checkpoint's layer type now comes from another plugin version or distribution."""


def _major(version: str) -> int | None:
    match = re.match(r"\s*v?(\d+)", version)
    return int(match.group(1)) if match else None


@dataclass
class TrainingState:
    """Everything besides the network that an exact resume needs."""

    optimizer: Optimizer | None = None
    rngs: dict[str, np.random.Generator] = field(default_factory=dict)
    #: epoch, step, position, history, callbacks: see `nnkit.ckptheader.Progress`.
    progress: dict[str, Any] = field(default_factory=dict)
    order: np.ndarray | None = None  # the unfinished epoch's shuffled order
    created: str | None = None  # when the run's first checkpoint was written
    callback_arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # key → name → array


@dataclass
class LoadReport:
    """What did not fit when loading into an existing network with `strict=False`."""

    missing: list[str] = field(default_factory=list)  # in the network, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the network
    mismatched: list[str] = field(default_factory=list)  # "name: file dtype shape vs network dtype shape"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def plugin_lock(network: Network, registry: Registry) -> dict[str, dict[str, str]]:
    """Layer type → the distribution and version that provided it."""
    types = {n.type for n in network.spec.nodes} | ({network.spec.loss.type} if network.spec.loss else set())
    lock = {}
    for name in sorted(types):
        plugin = registry.get("layer", name).plugin
        lock[name] = {"distribution": plugin.distribution, "version": plugin.version}
    return lock


def save(path: str | Path, network: Network, state: TrainingState | None = None,
         *, grads: bool = True, registry: Registry | None = None) -> None:
    """Write `network` (spec, params, grads) and optional training state to `path`, atomically.

    grads=False writes the params only (an export for inference); such a file loads with
    `load(path, grads=False)`.
    """
    registry = registry or get_registry()
    state = state or TrainingState()
    arrays: dict[str, np.ndarray] = {}
    for name, param in network.params.items():
        arrays[f"params/{name}"] = param
    if grads:
        for name, grad in network.grads.items():
            arrays[f"grads/{name}"] = grad
    if state.created is None:
        state.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnkit_version": __version__,
        "created": state.created,
        "spec": network.spec.to_dict(),
        "plugins": plugin_lock(network, registry),
        "progress": state.progress,
        "rng": {name: state_to_data(g) for name, g in state.rngs.items()},
    }
    if state.optimizer is not None:
        header["optimizer"] = {"type": state.optimizer.config.type, "iterations": state.optimizer.iterations}
        for key, value in state.optimizer.state_arrays(list(network.params)).items():
            arrays[f"optimizer/{key}"] = value
    if state.order is not None and state.progress.get("position"):
        arrays["progress/order"] = state.order
    for key, named in state.callback_arrays.items():
        for name, value in named.items():
            arrays[f"callbacks/{key}/{name}"] = value
    ckptfile.write(path, header, arrays)


class Checkpoint:
    """An opened checkpoint: its header, the network it rebuilds, and its training state.

    It holds the file open: use it in a `with` block or call `close()`.
    """

    def __init__(self, path: str | Path, registry: Registry | None = None, *, writable: bool = False) -> None:
        self.file = ckptfile.CheckpointFile(path, writable=writable)
        self.path = self.file.path
        self.header: Header = self.file.header
        self.registry = registry or get_registry()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_plugins(self) -> None:
        """Fail with one clear error if a layer type the checkpoint uses is not installed,
        or was written by a newer major version of its plugin than the installed one
        (its params may be laid out differently); warn when the installed major version is
        newer or another distribution now provides the type."""
        spec = self.header.spec
        nodes = spec.get("nodes") if isinstance(spec.get("nodes"), list) else []
        for node in [*nodes, spec.get("loss")]:
            if not isinstance(node, dict) or not isinstance(node.get("type"), str):
                continue
            kind = node["type"]
            entry = self.registry.find("layer", kind)
            if entry is not None:
                self._check_version(kind, entry.plugin.distribution, entry.plugin.version)
                continue
            origin = self.header.plugins.get(kind)
            provided = ""
            if origin is not None:
                provided = (f"; it was provided by {origin.distribution} {origin.version}: "
                            f"pip install {origin.distribution}")
            close = self.registry.closest("layer", kind)
            hint = f"; closest installed: {', '.join(close)}" if close else ""
            raise CheckpointError(
                f"{self.path}: node {node.get('name')!r} uses layer type {kind!r}, "
                f"which no installed plugin provides{provided}{hint}")

    def _check_version(self, kind: str, distribution: str, version: str) -> None:
        origin = self.header.plugins.get(kind)
        if origin is None:
            return
        if origin.distribution != distribution:
            warnings.warn(f"{self.path}: layer type {kind!r} was provided by {origin.distribution} "
                          f"{origin.version} and is now provided by {distribution} {version}",
                          PluginVersionWarning, stacklevel=4)
            return
        stored, installed = _major(origin.version), _major(version)
        if stored is None or installed is None or stored == installed:
            return
        if stored > installed:
            raise CheckpointError(
                f"{self.path}: layer type {kind!r} was written by {distribution} {origin.version}, newer than "
                f"the installed {version}; pip install '{distribution}>={stored}'")
        warnings.warn(f"{self.path}: layer type {kind!r} was written by {distribution} {origin.version}; "
                      f"the installed {version} is a newer major version", PluginVersionWarning, stacklevel=4)

    def build(self, *, views: bool = False) -> Network:
        """The network the stored spec describes, params not yet filled (read-only stand-ins
        if `views`, to be replaced by `Network.replace_arrays`)."""
        self.check_plugins()
        try:
            spec = validate_spec(self.header.spec, f"{self.path} (stored spec)", self.registry)
            network = Network(spec, rng=np.random.default_rng(0), registry=self.registry,
                              source=str(self.path), skip_init="views" if views else True)
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None
        network.use_rng(self.rng("network"))
        return network

    def network(self, *, grads: bool = True, mmap: bool = False, verify: bool = True) -> Network:
        """Build the network from the stored spec and fill its params (and grads).

        mmap=True makes the arrays copy-on-write views of the file (open the checkpoint
        `writable`): nothing is copied until written. Otherwise they are copied into fresh
        arrays. Either way the bytes are read (and checksummed) on worker threads while
        this thread validates the spec and builds the network. grads=False: grads start as
        zeros that take no memory until written. verify=False skips the checksums (the
        layout is checked all the same). A file saved without grads gives zero grads.
        """
        grads = grads and bool(self.file.names("grads/"))
        sections = ("params", "grads") if grads else ("params",)
        names = [name for section in sections for name in self.file.names(section + "/")]
        into = None if mmap else {n: empty_small_pages(tuple(self.file.index[n].shape), self.file.index[n].dtype)
                                  for n in names}
        reading = self.file.read(names, verify=verify, into=into)
        try:
            network = self.build(views=True)
            for section in sections:
                report = self._compare(section, getattr(network, section))
                if not report.ok:
                    raise CheckpointError(
                        f"{self.path}: {section} do not match the stored spec: {_describe(report)}")
        except BaseException:
            reading.cancel()
            raise
        arrays = reading.result()
        split: dict[str, dict[str, np.ndarray]] = {section: {} for section in ("params", "grads")}
        for name, array in arrays.items():
            section, key = name.split("/", 1)
            split[section][key] = array
        if not grads:
            split["grads"] = {n: lazy_zeros(a.shape, a.dtype) for n, a in network.params.items()}
        network.replace_arrays(**split)
        return network

    def load_into(self, network: Network, *, strict: bool = True, grads: bool = True) -> LoadReport:
        """Copy stored params (and grads) into `network` by name.

        strict: any missing, unexpected or mis-shaped name raises one CheckpointError listing
        them all, and nothing is copied. Otherwise what fits is copied and the rest reported.
        """
        report = LoadReport()
        for section in ("params", "grads") if grads else ("params",):
            part = self._compare(section, getattr(network, section))
            report.missing += part.missing
            report.unexpected += part.unexpected
            report.mismatched += part.mismatched
        if strict and not report.ok:
            raise CheckpointError(f"{self.path}: does not fit the network: {_describe(report)}")
        skip = {m.split(":", 1)[0] for m in report.mismatched}
        fitting = {f"{section}/{name}": target
                   for section in (("params", "grads") if grads else ("params",))
                   for name, target in getattr(network, section).items()}
        fitting = {key: target for key, target in fitting.items() if key in self.file.index and key not in skip}
        verified = self.file.arrays(list(fitting))  # every checksum first: a damaged file changes nothing
        for key, target in fitting.items():
            target[...] = verified[key]
        return report

    def _compare(self, section: str, targets: dict[str, np.ndarray]) -> LoadReport:
        stored = {n.split("/", 1)[1]: self.file.index[n] for n in self.file.names(section + "/")}
        report = LoadReport(
            missing=[f"{section}/{n}" for n in targets if n not in stored],
            unexpected=[f"{section}/{n}" for n in stored if n not in targets],
        )
        for name, target in targets.items():
            entry = stored.get(name)
            if entry is not None and (tuple(entry.shape) != target.shape or np.dtype(entry.dtype) != target.dtype):
                report.mismatched.append(f"{section}/{name}: file {np.dtype(entry.dtype)} {tuple(entry.shape)} "
                                         f"vs network {target.dtype} {target.shape}")
        return report

    def rng(self, name: str) -> np.random.Generator:
        """The stored generator `name`, or a fixed fresh one when the file holds none."""
        state = self.header.rng.get(name)
        if state is None:
            return np.random.default_rng(0)
        return state_from_data(state.model_dump(), f"{self.path}: rng.{name}")

    def training_state(self, network: Network, optimizer: Optimizer) -> TrainingState:
        """The stored optimizer state loaded into `optimizer`, the RNGs and the progress."""
        info = self.header.optimizer
        if info is not None and info.type != optimizer.config.type:
            raise CheckpointError(f"{self.path}: stored optimizer is {info.type!r}, not {optimizer.config.type!r}")
        prefix = "optimizer/"
        arrays = {n[len(prefix):]: self.file.array(n) for n in self.file.names(prefix)}
        try:
            optimizer.load_state_arrays(list(network.params), arrays, list(network.params.values()))
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: optimizer state does not fit the network ({exc})") from None
        optimizer.iterations = info.iterations if info is not None else 0
        # The stored order, so that a re-save writes the same bytes.
        rngs = {name: network.rng if name == "network" else self.rng(name) for name in self.header.rng}
        rngs.setdefault("network", network.rng)
        progress = self.header.progress.model_dump()
        order = None
        if progress["position"]:
            if "progress/order" not in self.file.index:
                raise CheckpointError(f"{self.path}: an unfinished epoch without its order")
            order = np.array(self.file.array("progress/order"))
        callback_arrays: dict[str, dict[str, np.ndarray]] = {}
        for name in self.file.names("callbacks/"):
            _, key, array_name = name.split("/", 2)
            callback_arrays.setdefault(key, {})[array_name] = np.array(self.file.array(name))
        return TrainingState(optimizer, rngs, progress, order, self.header.created, callback_arrays)


def _describe(report: LoadReport) -> str:
    parts = []
    for label, names in (("missing", report.missing), ("unexpected", report.unexpected),
                         ("mismatched", report.mismatched)):
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    return "; ".join(parts)


def load(path: str | Path, *, grads: bool = True, mmap: bool = False, verify: bool = True,
         registry: Registry | None = None) -> Network:
    """The network stored at `path`, built from its spec alone, with params and grads filled.

    mmap: arrays are copy-on-write views of the file: pages are read when touched and
    copied only when written (a file changed in place by another program while mapped
    changes the arrays too; nnkit's own saves replace files instead). grads=False: only
    the params' bytes are read; grads start as zeros. verify: check every payload's
    checksum (XXH3-64, at memory speed); verify=False skips that, and a mapped load then
    reads nothing up front. Header, layout and sizes are checked either way.
    """
    checkpoint = Checkpoint(path, registry, writable=mmap)
    try:
        return checkpoint.network(grads=grads, mmap=mmap, verify=verify)
    finally:
        checkpoint.close()


def load_into(network: Network, path: str | Path, *, strict: bool = True, grads: bool = True) -> LoadReport:
    """Copy the params (and grads) stored at `path` into an existing `network`, by name."""
    with Checkpoint(path) as checkpoint:
        return checkpoint.load_into(network, strict=strict, grads=grads)


def verify(path: str | Path) -> int:
    """Check every payload's checksum; returns the number of arrays checked, or raises a
    CheckpointError naming the first damaged one."""
    with ckptfile.CheckpointFile(path) as opened:
        names = opened.names()
        opened.arrays(names, verify=True)
    return len(names)


def inspect(path: str | Path) -> dict[str, Any]:
    """What `nnkit inspect` shows: a summary of the header alone (no array is read)."""
    with ckptfile.CheckpointFile(path) as opened:
        h = opened.header
    nodes = [n for n in h.spec.get("nodes", []) if isinstance(n, dict)]
    loss = h.spec.get("loss") if isinstance(h.spec.get("loss"), dict) else None
    summary = " → ".join(f"{n.get('name')}:{n.get('type')}" for n in nodes)
    if loss:
        summary += f" + {loss.get('type')}"
    return {
        "path": str(path), "format_version": h.format_version, "nnkit_version": h.nnkit_version,
        "created": h.created, "nodes": [{"name": n.get("name"), "type": n.get("type")} for n in nodes],
        "nodes_summary": summary, "dtype": h.spec.get("dtype"),
        "param_count": sum(math.prod(e.shape) for k, e in h.arrays.items() if k.startswith("params/")),
        "plugins": {t: p.model_dump() for t, p in h.plugins.items()},
        "optimizer": h.optimizer.model_dump() if h.optimizer else None,
        "progress": {"epoch": h.progress.epoch, "step": h.progress.step, "position": h.progress.position,
                     "last": h.progress.history[-1] if h.progress.history else None},
        "arrays": [{"name": k, "dtype": str(np.dtype(e.dtype)), "shape": e.shape, "bytes": e.length}
                   for k, e in h.arrays.items()],
    }
