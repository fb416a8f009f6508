"""Shared fixtures: a registry with extra plugins registered only for one test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import nnkit
from nnkit.plugins import load_registry, set_registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def use_plugins() -> Iterator:
    """Call `use_plugins(PluginInfo, plugin)` to make a registry with that plugin the global one."""
    old = set_registry(None)

    def install(*pairs: tuple[nnkit.PluginInfo, object]) -> nnkit.Registry:
        registry = load_registry(extra=pairs)
        set_registry(registry)
        return registry

    yield install
    set_registry(old)


@pytest.fixture(autouse=True)
def in_a_fresh_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in a folder of its own: `nnkit train` without --out saves into the
    current folder, and no test may leave files in the repository."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
