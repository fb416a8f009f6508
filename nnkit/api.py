"""The public functions that resolve the default registry (every installed plugin) when
none is passed. They are the entry points: below them, every function is handed its
`Registry`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnkit import checkpoint, modelfile
from nnkit.checkpoint import LoadReport
from nnkit.model import Model
from nnkit.network import Network
from nnkit.plugins import get_registry
from nnkit.registry import Registry
from nnkit.spec import Spec


def load(path: str | Path, *, grads: bool = True, mmap: bool = False, verify: bool = True,
         registry: Registry | None = None) -> Model:
    """The model saved at `path`, built from its stored spec alone, ready to predict and to
    train on exactly where it stopped.

    mmap: arrays are copy-on-write views of the file: pages are read when touched and
    copied only when written. grads=False: for inference: only the params' bytes are read
    (grads start as zeros, the optimizer's state is not read, and `fit` refuses). verify:
    check every array's checksum (XXH3-64, at memory speed); verify=False skips that, and
    a mapped load then reads nothing up front. Header, layout and sizes are checked always.
    """
    return Model.load(path, grads=grads, mmap=mmap, verify=verify, registry=registry or get_registry())


def save(model: Model | Network, path: str | Path, *, grads: bool = True, allow_non_finite: bool = False,
         registry: Registry | None = None) -> None:
    """Write `model` (or a bare network: spec, params and grads) to `path`, atomically.

    The object comes first, as in `torch.save` and `joblib.dump`. Params holding NaN or
    ±inf are refused unless `allow_non_finite`.
    """
    if isinstance(model, (str, Path)) and isinstance(path, (Model, Network)):
        raise TypeError(f"nnkit.save(model, path): the model comes first; got the path {str(model)!r} first")
    if isinstance(model, Model):
        model.save(path, grads=grads, allow_non_finite=allow_non_finite)
    elif isinstance(model, Network):
        checkpoint.save(path, model, registry or get_registry(), grads=grads, allow_non_finite=allow_non_finite)
    else:
        raise TypeError(f"nnkit.save(model, path) saves an nnkit.Model or nnkit.Network, not {type(model).__name__}")


def load_into(model: Model | Network, path: str | Path, *, strict: bool = True, grads: bool = True,
              registry: Registry | None = None) -> LoadReport:
    """Copy the params (and grads) stored at `path` — a checkpoint, or a `.safetensors` file
    (its grads only when it holds them) — into an existing model or network, by name.
    strict: any missing, unexpected or mis-shaped name raises one error naming them all,
    and nothing is copied; otherwise what fits is copied and the rest reported."""
    from nnkit.interop.weights import load_weights

    network = model.network if isinstance(model, Model) else model
    return load_weights(network, path, registry or get_registry(), strict=strict, grads=grads)


def read_model_file(path: str | Path, registry: Registry | None = None) -> Spec:
    """Read, parse, upgrade and validate a model file (TOML, JSON, YAML)."""
    return modelfile.read_model_file(path, registry or get_registry())


def validate_spec(data: dict[str, Any], source: str = "<spec>", registry: Registry | None = None) -> Spec:
    """Validate plain data (a model file's content) as a spec; errors name `source`."""
    return modelfile.validate_spec(data, source, registry or get_registry())
