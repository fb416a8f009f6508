"""nnkit: a NumPy neural-network toolkit with declarative model files, layer plugins and
msgpack checkpoints. This module is the public API; everything else may change.

Names are imported on first use (PEP 562), so that `import nnkit` and `nnkit --help` cost
little more than importing numpy and pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name → the module that defines it.
_EXPORTS = {
    "Callback": "nnkit.training.callbacks",
    "Checkpoint": "nnkit.checkpoint",
    "CheckpointError": "nnkit.errors",
    "Config": "nnkit.config",
    "Data": "nnkit.data",
    "DataError": "nnkit.errors",
    "Dataset": "nnkit.data",
    "ExportError": "nnkit.errors",
    "Layer": "nnkit.layer",
    "LayerConfig": "nnkit.layer",
    "LoadReport": "nnkit.checkpoint",
    "LossLayer": "nnkit.layer",
    "History": "nnkit.model",
    "Metric": "nnkit.metrics",
    "Model": "nnkit.model",
    "ModelFileError": "nnkit.errors",
    "Network": "nnkit.network",
    "NetworkPlan": "nnkit.network",
    "NnkitError": "nnkit.errors",
    "Optimizer": "nnkit.optim.optimizers",
    "OptimizerConfig": "nnkit.optim.optimizers",
    "ParamRef": "nnkit.names",
    "PluginError": "nnkit.errors",
    "PluginInfo": "nnkit.registry",
    "Registry": "nnkit.registry",
    "Spec": "nnkit.spec",
    "TrainingError": "nnkit.errors",
    "TrainingState": "nnkit.training.state",
    "get_registry": "nnkit.plugins",
    "hookimpl": "nnkit.hookspecs",
    "inspect": "nnkit.checkpoint",
    "load": "nnkit.api",
    "load_into": "nnkit.api",
    "load_registry": "nnkit.plugins",
    "read_model_file": "nnkit.api",
    "save": "nnkit.api",
    "sweep": "nnkit.sweeps",
    "validate_spec": "nnkit.api",
    "verify": "nnkit.checkpoint",
    "__version__": "nnkit.version",
}

__all__ = [
    "Callback", "Checkpoint", "CheckpointError", "Config", "Data", "DataError", "Dataset", "ExportError",
    "History", "Layer", "LayerConfig", "LoadReport", "LossLayer", "Metric", "Model",
    "ModelFileError", "Network", "NetworkPlan", "NnkitError", "Optimizer", "OptimizerConfig",
    "ParamRef", "PluginError", "PluginInfo", "Registry", "Spec", "TrainingError", "TrainingState",
    "__version__", "get_registry", "hookimpl", "inspect", "load", "load_into", "load_registry",
    "read_model_file", "save", "sweep", "validate_spec", "verify",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nnkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and editors see
    from nnkit.api import load, load_into, read_model_file, save, validate_spec
    from nnkit.checkpoint import Checkpoint, LoadReport, inspect, verify
    from nnkit.config import Config
    from nnkit.data import Data, Dataset
    from nnkit.errors import (
        CheckpointError,
        DataError,
        ExportError,
        ModelFileError,
        NnkitError,
        PluginError,
        TrainingError,
    )
    from nnkit.hookspecs import hookimpl
    from nnkit.layer import Layer, LayerConfig, LossLayer
    from nnkit.metrics import Metric
    from nnkit.model import History, Model
    from nnkit.names import ParamRef
    from nnkit.network import Network, NetworkPlan
    from nnkit.optim.optimizers import Optimizer, OptimizerConfig
    from nnkit.plugins import get_registry, load_registry
    from nnkit.registry import PluginInfo, Registry
    from nnkit.spec import Spec
    from nnkit.sweeps import sweep
    from nnkit.training.callbacks import Callback
    from nnkit.training.state import TrainingState
    from nnkit.version import __version__
