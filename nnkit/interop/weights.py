"""One way in and out for a network's weights, whatever the file: `.nnk` checkpoints,
`.safetensors` files, and (out only) `.onnx` inference graphs, told apart by suffix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from nnkit import checkpoint
from nnkit.checkpoint import LoadReport
from nnkit.errors import ExportError
from nnkit.interop import safetensors
from nnkit.network import Network
from nnkit.registry import Registry

Format = Literal["onnx", "safetensors"]
SUFFIXES: dict[str, Format] = {".onnx": "onnx", ".safetensors": "safetensors"}


def load_weights(network: Network, path: str | Path, registry: Registry, *, strict: bool = True,
                 grads: bool = True) -> LoadReport:
    """Copy the params (and grads) in a checkpoint or a safetensors file into `network`,
    by name (see `nnkit.load_into`)."""
    if safetensors.is_safetensors(path):
        return safetensors.load_into(network, path, strict=strict, grads=grads)
    return checkpoint.load_into(network, path, registry, strict=strict, grads=grads)


def format_of(path: str | Path, fmt: str | None) -> Format:
    """The format asked for, or the one the suffix names."""
    if fmt is None:
        found = SUFFIXES.get(Path(path).suffix.lower())
        if found is None:
            raise ExportError(f"{path}: say the format (onnx or safetensors), or name a .onnx or .safetensors file")
        return found
    if fmt not in ("onnx", "safetensors"):
        raise ExportError(f"unknown export format {fmt!r}; use onnx or safetensors")
    return fmt  # type: ignore[return-value]  # checked just above


def export(network: Network, path: str | Path, registry: Registry, *, fmt: str | None = None,
           grads: bool = False) -> Path:
    """Write `network` to `path` as an ONNX inference graph or a safetensors file of its
    params (and grads); `fmt` None: from the suffix. Atomic; returns the path."""
    chosen = format_of(path, fmt)
    if chosen == "onnx":
        if grads:
            raise ExportError("an ONNX export holds the inference graph; grads go only into safetensors")
        from nnkit.interop.onnx import export_onnx

        return export_onnx(network, path, registry)
    return safetensors.export_safetensors(network, path, registry, grads=grads)
