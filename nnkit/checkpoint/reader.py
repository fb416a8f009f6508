"""Loading networks and training state from checkpoints.

Structure lives in the spec, numbers live in the arrays: loading starts reading the
arrays on worker threads, meanwhile checks the plugins, validates the stored spec and
builds the network's plan (layers with declared params, nothing allocated), checks the
stored names, shapes and dtypes against the plan, and then hands the network its arrays
once. Nothing the file says is run or imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.checkpoint import container
from nnkit.checkpoint.header import Header
from nnkit.checkpoint.lock import check_layers, usable_spec
from nnkit.checkpoint.memory import collector_paused, lazy_zeros
from nnkit.checkpoint.state import read_training_state
from nnkit.errors import CheckpointError, ModelFileError
from nnkit.modelfile import validate_spec
from nnkit.network import ArraySpec, Network, NetworkPlan
from nnkit.optim.optimizers import Optimizer
from nnkit.registry import Registry
from nnkit.spec import Spec
from nnkit.training.rng import state_from_data
from nnkit.training.state import TrainingState

SECTIONS = ("params", "grads")


@dataclass
class LoadReport:
    """What did not fit when loading into an existing network with `strict=False`."""

    missing: list[str] = field(default_factory=list)  # in the network, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the network
    mismatched: list[str] = field(default_factory=list)  # "name: file dtype shape vs network dtype shape"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        parts = [f"{label}: {', '.join(names)}" for label, names in
                 (("missing", self.missing), ("unexpected", self.unexpected), ("mismatched", self.mismatched)) if names]
        return "; ".join(parts)


def compare_arrays(section: str, stored: Mapping[str, ArraySpec], wanted: Mapping[str, ArraySpec]) -> LoadReport:
    """How the arrays a file holds differ from the ones a network `wanted`, by name; the
    report names them `<section>/<name>`."""
    report = LoadReport(missing=[f"{section}/{n}" for n in wanted if n not in stored],
                        unexpected=[f"{section}/{n}" for n in stored if n not in wanted])
    for name, want in wanted.items():
        have = stored.get(name)
        if have is not None and (have.shape != want.shape or have.dtype != want.dtype):
            report.mismatched.append(f"{section}/{name}: file {have.dtype} {have.shape} "
                                     f"vs network {want.dtype} {want.shape}")
    return report


class Checkpoint:
    """An opened checkpoint: its header, the network it rebuilds, and its training state.

    It holds the file open: use it in a `with` block or call `close()`.
    """

    def __init__(self, path: str | Path, registry: Registry, *, writable: bool = False) -> None:
        with collector_paused():
            self.file = container.CheckpointFile(path, writable=writable)
        self.path = self.file.path
        self.header: Header = self.file.header
        self.registry = registry
        self.missing: dict[str, str] = {}  # components not installed: what each needs (see `spec`)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spec(self) -> Spec:
        """The stored spec, validated as a model file is (its layers' plugins checked
        first). Components of other kinds whose plugins are missing are taken out and
        listed in `missing` (what each needs): they are needed to train, not to predict."""
        check_layers(self.header, self.registry, self.path)
        data, self.missing = usable_spec(self.header, self.registry)
        try:
            return validate_spec(data, f"{self.path} (stored spec)", self.registry)
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None

    def plan(self) -> NetworkPlan:
        """The stored network's plan: layers built from the stored spec, nothing allocated."""
        spec = self.spec()
        try:
            return NetworkPlan(spec, self.registry, source=str(self.path))
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None

    def network(self, *, grads: bool = True, mmap: bool = False, verify: bool = True) -> Network:
        """Build the network from the stored spec with the stored params (and grads).

        mmap=True makes the arrays copy-on-write views of the file (open the checkpoint
        `writable`): nothing is copied until written. Otherwise they are copied into fresh
        arrays. Either way the bytes are read (and checksummed) on worker threads while
        this thread validates the spec and plans the network. grads=False: grads start as
        zeros that take no memory until written. verify=False skips the checksums (the
        layout is checked all the same). A file saved without grads gives zero grads.
        """
        with collector_paused():
            return self._network(grads=grads, mmap=mmap, verify=verify)

    def _network(self, *, grads: bool, mmap: bool, verify: bool) -> Network:
        grads = grads and bool(self.file.names("grads/"))
        sections = SECTIONS if grads else SECTIONS[:1]
        names = [name for section in sections for name in self.file.names(section + "/")]
        reading = self.file.read(names, verify=verify, copy=not mmap)
        try:
            plan = self.plan()
            wanted = plan.arrays()
            for section in sections:
                report = self.compare(section, wanted)
                if not report.ok:
                    raise CheckpointError(f"{self.path}: {section} do not match the stored spec: {report}")
        except BaseException:
            reading.cancel()
            raise
        arrays = reading.result()
        split: dict[str, dict[str, np.ndarray]] = {section: {} for section in SECTIONS}
        for name, array in arrays.items():
            section, key = name.split("/", 1)
            split[section][key] = array
        if not grads:
            split["grads"] = {n: lazy_zeros(a.shape, plan.dtype) for n, a in wanted.items()}
        return Network(plan, rng=self.rng("network"), params=split["params"], grads=split["grads"])

    def load_into(self, network: Network, *, strict: bool = True, grads: bool = True) -> LoadReport:
        """Copy stored params (and grads) into `network` by name.

        strict: any missing, unexpected or mis-shaped name raises one CheckpointError listing
        them all, and nothing is copied. Otherwise what fits is copied and the rest reported.
        """
        sections = SECTIONS if grads else SECTIONS[:1]
        targets = {section: getattr(network, section) for section in sections}
        report = LoadReport()
        for section in sections:
            part = self.compare(section, {k: ArraySpec(a.shape, a.dtype) for k, a in targets[section].items()})
            report.missing += part.missing
            report.unexpected += part.unexpected
            report.mismatched += part.mismatched
        if strict and not report.ok:
            raise CheckpointError(f"{self.path}: does not fit the network: {report}")
        skip = {m.split(":", 1)[0] for m in report.mismatched}
        fitting = {f"{section}/{name}": target for section in sections for name, target in targets[section].items()}
        fitting = {key: target for key, target in fitting.items() if key in self.file.index and key not in skip}
        verified = self.file.arrays(list(fitting))  # every checksum first: a damaged file changes nothing
        for key, target in fitting.items():
            target[...] = verified[key]
        return report

    def compare(self, section: str, wanted: Mapping[str, ArraySpec]) -> LoadReport:
        """How the stored `section` ("params" or "grads") differs from the arrays `wanted`."""
        prefix = len(section) + 1
        names = self.file.names(section + "/")
        if len(names) == len(wanted) and self._same(names, prefix, wanted):
            return LoadReport()  # the usual case, checked without building a spec per array
        dtypes: dict[str, np.dtype] = {}
        stored = {}
        for name in names:
            entry = self.file.index[name]
            dtype = dtypes.get(entry.dtype) or dtypes.setdefault(entry.dtype, np.dtype(entry.dtype))
            stored[name[prefix:]] = ArraySpec(tuple(entry.shape), dtype)
        return compare_arrays(section, stored, wanted)

    def _same(self, names: list[str], prefix: int, wanted: Mapping[str, ArraySpec]) -> bool:
        """Whether the stored arrays `names` are exactly `wanted`: names, shapes and dtypes."""
        index, dtypes = self.file.index, {want.dtype.str for want in wanted.values()}
        if len(dtypes) != 1:
            return False
        dtype = dtypes.pop()
        for name in names:
            want, entry = wanted.get(name[prefix:]), index[name]
            if want is None or entry.dtype != dtype or tuple(entry.shape) != want.shape:
                return False
        return True

    def rng(self, name: str) -> np.random.Generator:
        """The stored generator `name`, or a fixed fresh one when the file holds none."""
        state = self.header.rng.get(name)
        if state is None:
            return np.random.default_rng(0)
        return state_from_data(state.model_dump(), f"{self.path}: rng.{name}")

    def training_state(self, network: Network, optimizer: Optimizer, *, with_optimizer: bool = True) -> TrainingState:
        """The stored training state, every field checked (see `nnkit/checkpoint/state.py`)."""
        return read_training_state(self, network, optimizer, with_optimizer=with_optimizer)


def load(path: str | Path, registry: Registry, *, grads: bool = True, mmap: bool = False,
         verify: bool = True) -> Network:
    """The network stored at `path`, built from its spec alone, with params and grads filled.

    mmap: arrays are copy-on-write views of the file: pages are read when touched and
    copied only when written (a file changed in place by another program while mapped
    changes the arrays too; nnkit's own saves replace files instead). grads=False: only
    the params' bytes are read; grads start as zeros. verify: check every payload's
    checksum (XXH3-64, at memory speed); verify=False skips that, and a mapped load then
    reads nothing up front. Header, layout and sizes are checked either way.
    """
    with Checkpoint(path, registry, writable=mmap) as checkpoint:
        return checkpoint.network(grads=grads, mmap=mmap, verify=verify)


def load_into(network: Network, path: str | Path, registry: Registry, *, strict: bool = True,
              grads: bool = True) -> LoadReport:
    """Copy the params (and grads) stored at `path` into an existing `network`, by name."""
    with Checkpoint(path, registry) as checkpoint:
        return checkpoint.load_into(network, strict=strict, grads=grads)


def verify(path: str | Path) -> int:
    """Check every payload's checksum; returns the number of arrays checked, or raises a
    CheckpointError naming the first damaged one."""
    with container.CheckpointFile(path) as opened:
        names = opened.names()
        opened.arrays(names, verify=True)
    return len(names)


def printable(value: Any) -> Any:
    """`value` with every string's control characters escaped (`\\x1b`, `\\n` …): a header
    string printed to a terminal must not move the cursor, clear the screen or fake lines."""
    if isinstance(value, str):
        return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value


def inspect(path: str | Path) -> dict[str, Any]:
    """What `nnkit inspect` shows: a summary of the header alone (no array is read), every
    string made safe to print (see `printable`)."""
    with container.CheckpointFile(path) as opened:
        h = opened.header
    stored = h.spec.get("nodes")
    nodes = [n for n in stored if isinstance(n, dict)] if isinstance(stored, list) else []
    loss = h.spec.get("loss") if isinstance(h.spec.get("loss"), dict) else None
    summary = " → ".join(f"{n.get('name')}:{n.get('type')}" for n in nodes)
    if loss:
        summary += f" + {loss.get('type')}"
    return printable({
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
    })
