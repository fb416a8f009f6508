"""Saving a network and its training state into the checkpoint container.

Array names: `params/<node>.<param>`, `grads/<node>.<param>`,
`optimizer/<node>.<param>/<slot>`, `progress/order` (the shuffled order of an unfinished
epoch), `callbacks/<key>/<name>` and `state/<node>.<name>` (the h and c stateful
recurrent layers carry into their next window).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.checkpoint import container
from nnkit.checkpoint.header import FORMAT, FORMAT_VERSION
from nnkit.errors import CheckpointError
from nnkit.network import Network
from nnkit.registry import Kind, Registry
from nnkit.spec import Spec
from nnkit.training.rng import state_to_data
from nnkit.training.state import TrainingState
from nnkit.version import __version__


def plugin_lock(network: Network, registry: Registry) -> dict[str, dict[str, str]]:
    """Layer type → the distribution and version that provided it."""
    spec = network.spec
    return _lock(registry, "layer", {n.type for n in spec.nodes} | ({spec.loss.type} if spec.loss else set()))


def component_lock(spec: Spec, registry: Registry) -> dict[str, dict[str, dict[str, str]]]:
    """Kind → type → the distribution and version that provided it, for every component
    the recipe names besides layers."""
    datasets = {c.type for c in (spec.data, spec.validation.data if spec.validation else None) if c is not None}
    kinds: dict[Kind, set[str]] = {"optimizer": {spec.optimizer.type}, "dataset": datasets,
                                   "metric": {m.type for m in spec.metrics},
                                   "callback": {c.type for c in spec.callbacks}}
    return {kind: _lock(registry, kind, types) for kind, types in kinds.items() if types}


def _lock(registry: Registry, kind: Kind, types: set[str]) -> dict[str, dict[str, str]]:
    lock = {}
    for name in sorted(types):
        plugin = registry.get(kind, name).plugin
        lock[name] = {"distribution": plugin.distribution, "version": plugin.version}
    return lock


def first_non_finite(params: dict[str, np.ndarray]) -> str | None:
    """The name of the first param holding NaN or ±inf, or None."""
    floats = {name: p for name, p in params.items() if p.dtype.kind == "f"}
    # A sum is non-finite whenever an element is; only then is the exact check (which
    # allocates a mask the size of the param) worth its cost. Small params are summed
    # together: one call instead of thousands.
    small = [p for p in floats.values() if p.size <= _SUMMED_TOGETHER]
    suspects = floats if small and not np.isfinite(np.concatenate(small, axis=None).sum()) else \
        {name: p for name, p in floats.items() if p.size > _SUMMED_TOGETHER}
    for name, param in suspects.items():
        if not np.isfinite(param.sum()) and not np.isfinite(param).all():
            return name
    return None


_SUMMED_TOGETHER = 16384


def save(path: str | Path, network: Network, registry: Registry, state: TrainingState | None = None,
         *, grads: bool = True, spec: Spec | None = None, allow_non_finite: bool = False) -> None:
    """Write `network` (spec, params, grads) and optional training state to `path`, atomically.

    grads=False writes the params only (an export for inference); such a file loads with
    zero grads. Training state (optimizer, RNG streams, progress, callbacks) makes the
    file resumable: `Runner.from_checkpoint` continues bit for bit. `spec` is the recipe
    to store (default: the network's own); its network part must be the network's.
    Params holding NaN or ±inf are refused unless `allow_non_finite`: a diverged network
    is never saved by accident.
    """
    bad = None if allow_non_finite else first_non_finite(network.params)
    if bad is not None:
        raise CheckpointError(f"{path}: not saved: param {bad!r} holds non-finite values (the run diverged); "
                              "save it anyway with allow_non_finite=True (nnkit train --allow-non-finite)")
    arrays: dict[str, np.ndarray] = {f"params/{name}": param for name, param in network.params.items()}
    if grads:
        arrays.update({f"grads/{name}": grad for name, grad in network.grads.items()})
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnkit_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": (spec or network.spec).to_dict(),
        "plugins": plugin_lock(network, registry),
        "components": component_lock(spec or network.spec, registry),
    }
    if state is not None:
        if state.created is None:
            state.created = header["created"]
        header["created"] = state.created
        header["progress"] = state.progress.model_dump(mode="json")
        header["rng"] = {name: state_to_data(g) for name, g in state.rngs.items()}
        header["optimizer"] = {"type": state.optimizer.config.type, "iterations": state.optimizer.iterations,
                               "state_version": state.optimizer.state_version}
        for key, value in state.optimizer.state_arrays(list(network.params)).items():
            arrays[f"optimizer/{key}"] = value
        if state.order is not None and state.progress.position:
            arrays["progress/order"] = state.order
        # What stateful layers carry into the next window (of this epoch, or of the next).
        arrays.update({f"state/{key}": value for key, value in network.states().items()})
        for key, named in state.callback_arrays.items():
            for name, value in named.items():
                arrays[f"callbacks/{key}/{name}"] = value
    container.write(path, header, arrays)
