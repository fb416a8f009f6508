"""The codebase stays small and its public API explicit."""

from __future__ import annotations

import inspect

import nnkit

from .conftest import ROOT

MAX_MODULE_LINES = 400  # one concern per module: past this, split it


def test_every_module_stays_small() -> None:
    sources = [*ROOT.glob("nnkit/**/*.py"), *ROOT.glob("plugins/*/*/*.py")]
    assert sources
    for path in sources:
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def test_the_public_api_is_explicit_and_typed() -> None:
    assert len(set(nnkit.__all__)) == len(nnkit.__all__)
    for name in nnkit.__all__:
        obj = getattr(nnkit, name)  # every exported name exists
        if inspect.isfunction(obj):
            hints = inspect.signature(obj)
            assert hints.return_annotation is not inspect.Signature.empty, f"nnkit.{name} lacks a return type"
            for param in hints.parameters.values():
                assert param.annotation is not inspect.Parameter.empty, f"nnkit.{name}({param.name}) lacks a type"
    assert nnkit.__version__ and nnkit.__version__ != "0.0.0+unknown"
