"""The public functions that resolve the default registry (every installed plugin) when
none is passed. They are the entry points: below them, every function is handed its
`Registry`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnkit import checkpoint, modelfile
from nnkit.checkpoint import LoadReport
from nnkit.network import Network
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.spec import Spec
from nnkit.training.state import TrainingState


def load(path: str | Path, *, grads: bool = True, mmap: bool = False, verify: bool = True,
         registry: Registry | None = None) -> Network:
    """The network stored at `path`, built from its spec alone (see `nnkit.checkpoint.load`)."""
    return checkpoint.load(path, registry or get_registry(), grads=grads, mmap=mmap, verify=verify)


def load_into(network: Network, path: str | Path, *, strict: bool = True, grads: bool = True,
              registry: Registry | None = None) -> LoadReport:
    """Copy the params (and grads) stored at `path` into an existing `network`, by name."""
    return checkpoint.load_into(network, path, registry or get_registry(), strict=strict, grads=grads)


def save(path: str | Path, network: Network, state: TrainingState | None = None, *, grads: bool = True,
         registry: Registry | None = None) -> None:
    """Write `network` (spec, params, grads) and optional training state to `path`, atomically."""
    checkpoint.save(path, network, registry or get_registry(), state, grads=grads)


def read_model_file(path: str | Path, registry: Registry | None = None) -> Spec:
    """Read, parse, upgrade and validate a model file (TOML, JSON, YAML)."""
    return modelfile.read_model_file(path, registry or get_registry())


def validate_spec(data: dict[str, Any], source: str = "<spec>", registry: Registry | None = None) -> Spec:
    """Validate plain data (a model file's content) as a spec; errors name `source`."""
    return modelfile.validate_spec(data, source, registry or get_registry())
