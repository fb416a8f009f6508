"""safetensors files in and out: a network's params (and grads) for tools that read
safetensors, and weights from them into an nnkit network.

A file nnkit writes holds every owned param under its stable name (`fc1.W`), its grad
under `fc1.W.grad` when asked for (a stable name has exactly one dot, so the two never
collide), and in its metadata (strings, as the format requires) the spec
(`nnkit.spec`), the plugin lock (`nnkit.plugins`) and the nnkit version. Reading goes by
name with the same strict report as a checkpoint: unknown, missing or mis-shaped names
are one error naming them all, and nothing is copied. The `safetensors` package (the
extra `nnkit[safetensors]`) parses the file; it never runs code from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.atomic import write_output
from nnkit.checkpoint.reader import LoadReport, compare_arrays
from nnkit.checkpoint.writer import plugin_lock
from nnkit.errors import CheckpointError, reading
from nnkit.network import ArraySpec, Network
from nnkit.paths import open_regular
from nnkit.registry import Registry
from nnkit.version import __version__, install_hint

SUFFIX = ".safetensors"
GRAD = ".grad"
#: safetensors' dtype names for the dtypes nnkit's params have.
DTYPES: dict[str, np.dtype] = {"F64": np.dtype(np.float64), "F32": np.dtype(np.float32)}


def _package() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise CheckpointError(f"safetensors files need the safetensors package: {install_hint('safetensors')}") \
            from None
    return safetensors


def is_safetensors(path: str | Path) -> bool:
    return Path(path).suffix.lower() == SUFFIX


def export_safetensors(network: Network, path: str | Path, registry: Registry, *, grads: bool = False) -> Path:
    """Write the network's params (and grads) to `path`, atomically; returns the path."""
    package = _package()
    tensors = {name: np.ascontiguousarray(a) for name, a in network.params.items()}
    if grads:
        tensors.update({name + GRAD: np.ascontiguousarray(g) for name, g in network.grads.items()})
    metadata = {"nnkit.spec": json.dumps(network.spec.to_dict(), separators=(",", ":")),
                "nnkit.plugins": json.dumps(plugin_lock(network, registry), separators=(",", ":")),
                "nnkit.version": __version__, "format": "np"}
    path = Path(path)
    write_output(path, package.numpy.save(tensors, metadata=metadata), CheckpointError)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file (empty when it has none)."""
    with _opened(path) as f:
        return dict(f.metadata() or {})


def load_into(network: Network, path: str | Path, *, strict: bool = True, grads: bool = True) -> LoadReport:
    """Copy the params stored at `path` (and their grads, when the file holds any and
    `grads`) into `network` by name. strict: any missing, unexpected or mis-shaped name
    raises one CheckpointError listing them all, and nothing is copied."""
    with _opened(path) as f:
        stored = {name: _spec_of(f, name, path) for name in f.keys()}
        has_grads = any(name.endswith(GRAD) for name in stored)
        sections: dict[str, Mapping[str, np.ndarray]] = {"params": network.params}
        if grads and has_grads:
            sections["grads"] = network.grads
        report = LoadReport()
        by_section = {"params": {n: s for n, s in stored.items() if not n.endswith(GRAD)},
                      "grads": {n[:-len(GRAD)]: s for n, s in stored.items() if n.endswith(GRAD)}}
        for section, targets in sections.items():
            part = compare_arrays(section, by_section[section],
                                  {k: ArraySpec(a.shape, a.dtype) for k, a in targets.items()})
            report.missing += part.missing
            report.unexpected += part.unexpected
            report.mismatched += part.mismatched
        if has_grads and "grads" not in sections:
            report.unexpected = [u for u in report.unexpected if not u.startswith("grads/")]
        if strict and not report.ok:
            raise CheckpointError(f"{path}: does not fit the network: {report}")
        skip = {m.split(":", 1)[0] for m in report.mismatched}
        values = {}
        for section, targets in sections.items():
            for name in targets:
                if name in by_section[section] and f"{section}/{name}" not in skip:
                    values[section, name] = f.get_tensor(name + (GRAD if section == "grads" else ""))
    for (section, name), value in values.items():  # every array read first: a bad file changes nothing
        sections[section][name][...] = value
    return report


def _spec_of(f: Any, name: str, path: str | Path) -> ArraySpec:
    view = f.get_slice(name)
    dtype = DTYPES.get(view.get_dtype())
    if dtype is None:
        raise CheckpointError(f"{path}: tensor {name!r} is {view.get_dtype()}; nnkit params are F64 or F32")
    return ArraySpec(tuple(view.get_shape()), dtype)


class _opened:
    """A safetensors file opened for reading, with its errors as CheckpointErrors naming it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> Any:
        package = _package()
        open_regular(self.path, CheckpointError, "safetensors file").close()  # a folder, FIFO, device: refused
        with reading(self.path, CheckpointError, "safetensors file"):
            try:
                self._file = package.safe_open(str(self.path), framework="numpy")
                return self._file.__enter__()
            except package.SafetensorError as exc:
                raise CheckpointError(f"{self.path}: not a valid safetensors file: {exc}") from None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._file.__exit__(kind, exc, tb)
        if exc is not None and isinstance(exc, _package().SafetensorError):
            raise CheckpointError(f"{self.path}: cannot read: {exc}") from None
