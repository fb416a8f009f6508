"""nnkit: a NumPy neural-network toolkit with declarative model files, layer plugins and
msgpack checkpoints. This module is the public API; everything else may change.
"""

from nnkit.callbacks import Callback
from nnkit.checkpoint import Checkpoint, LoadReport, TrainingState, inspect, load, load_into, save, verify
from nnkit.config import Config
from nnkit.datasets import Data, Dataset
from nnkit.errors import CheckpointError, DataError, ModelFileError, NnkitError, PluginError, TrainingError
from nnkit.graph import Network
from nnkit.hookspecs import hookimpl
from nnkit.layer import Layer, LayerConfig, LossLayer
from nnkit.metrics import Metric
from nnkit.modelfile import read_model_file, validate_spec
from nnkit.optimizers import Optimizer, OptimizerConfig
from nnkit.plugins import get_registry, load_registry
from nnkit.registry import PluginInfo, Registry
from nnkit.runner import Runner
from nnkit.version import __version__

__all__ = [
    "Callback", "Checkpoint", "CheckpointError", "Config", "Data", "DataError", "Dataset", "Layer",
    "LayerConfig", "LoadReport", "LossLayer", "Metric", "ModelFileError", "Network",
    "NnkitError", "Optimizer", "OptimizerConfig", "PluginError", "PluginInfo", "Registry",
    "Runner", "TrainingError", "TrainingState", "get_registry", "hookimpl", "inspect", "load", "load_into",
    "load_registry", "read_model_file", "save", "validate_spec", "verify", "__version__",
]
