"""The hooks a plugin may implement. Each hook receives a `register` callback.

A plugin is a module (or object) with functions marked `@nnkit.hookimpl`:

    import nnkit

    @nnkit.hookimpl
    def register_layers(register):
        register(MyLayer)

nnkit's own layers, optimizers, datasets, metrics and callbacks are registered through
these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "nnkit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[Any], None]
#: `register(layer_type, convert)`: see `register_onnx_converters`.
RegisterConverter = Callable[[str, Callable[..., None]], None]


@hookspec
def register_layers(register: Register) -> None:
    """Register layer classes: call `register(LayerClass)` once per class.

    A layer class subclasses `nnkit.Layer` and has a `Config` (a subclass of
    `nnkit.LayerConfig`) whose `type` field is a `Literal` naming the layer type.
    """


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizer classes: call `register(OptimizerClass)` once per class.

    An optimizer class subclasses `nnkit.Optimizer` and has a `Config` whose `type` field
    is a `Literal` naming it.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metric classes: call `register(MetricClass)` once per class.

    A metric class subclasses `nnkit.Metric`, has a `Config` whose `type` field is a
    `Literal` naming it, and is called as `metric(probabilities, t) -> float`.
    """


@hookspec
def register_callbacks(register: Register) -> None:
    """Register callback classes a model file can turn on in `[[callbacks]]`: call
    `register(CallbackClass)` once per class. A callback class subclasses
    `nnkit.Callback` and has a `Config` whose `type` field is a `Literal` naming it.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset classes: call `register(DatasetClass)` once per class.

    A dataset class subclasses `nnkit.Dataset` and has a `Config` whose `type` field
    is a `Literal` naming it.
    """


@hookspec
def register_onnx_converters(register: RegisterConverter) -> None:
    """Register how layers are written as ONNX nodes (`nnkit export --format onnx`): call
    `register(layer_type, convert)` once per layer type, e.g. `register("MyLayer", convert)`.

    `convert(layer, node)` gets the built layer (its config, params and shapes) and an
    `nnkit.interop.onnx.NodeBuilder` that names the node's inputs and output and adds ONNX
    operators (`node.add("MatMul", [x, node.param(0)])`); it needs no `onnx` import. For a
    loss layer, `convert` writes what `predict` applies to the scores (e.g. a softmax).
    """
