"""The codebase stays small, its public API explicit, its core free of the plugin loader,
and its imports free of cycles."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import nnkit

from .conftest import ROOT

MAX_MODULE_LINES = 400  # one concern per module: past this, split it
#: The whole package's budget, as tinygrad keeps one: growth is a decision, not a drift.
#: 8,500 until interop (ONNX export, safetensors, data files as users have them, #14),
#: sweeps (Optuna on Dask, #13) and the book's language models (#17) came; 11,000 until
#: #17's truncated BPTT, stateful evaluation and text generation; 11,500 until the book's
#: encoder-decoders (#18: state through the graph, sequence files, greedy decoding).
MAX_PACKAGE_LINES = 12_000
#: Where the default registry may be resolved: the public entry points only.
#: `nnkit.sweep()` is a public function like `nnkit.load`; a sweep's trial runs in a Dask
#: worker process, whose registry is what that machine has installed.
ENTRY_POINTS = {"nnkit/__init__.py", "nnkit/api.py", "nnkit/cli/train.py", "nnkit/cli/commands.py",
                "nnkit/model.py", "nnkit/plugins.py", "nnkit/testing.py", "nnkit/training/runner.py",
                "nnkit/sweeps/__init__.py", "nnkit/sweeps/trial.py"}


def package_sources() -> list[Path]:
    return sorted(ROOT.glob("nnkit/**/*.py"))


def test_every_module_stays_small_and_the_package_within_its_budget() -> None:
    sources = [*package_sources(), *ROOT.glob("plugins/*/*/*.py")]
    assert sources
    for path in sources:
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
    total = sum(len(p.read_text().splitlines()) for p in package_sources())
    assert total <= MAX_PACKAGE_LINES, f"nnkit/ has {total} lines, over its budget of {MAX_PACKAGE_LINES}"


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
    assert (ROOT / "nnkit" / "py.typed").is_file()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """The nnkit modules `path` imports when it is imported: module-level statements only
    (imports inside functions run later; TYPE_CHECKING blocks never run). `from a import b`
    depends on the module a.b when that is a module, else on a."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up from this module's package
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return {m for m in found if m in modules}


def test_the_package_has_no_import_cycle() -> None:
    modules = {module_name(p): p for p in package_sources()}
    graph = {name: top_level_imports(path, set(modules)) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_core_never_resolves_the_default_registry() -> None:
    """Below the entry points every function is handed its registry."""
    for path in package_sources():
        relative = path.relative_to(ROOT).as_posix()
        if relative not in ENTRY_POINTS:
            text = path.read_text()
            assert "get_registry(" not in text and "nnkit.plugins import" not in text, \
                f"{relative} reaches for the default registry"


def test_importing_nnkit_imports_almost_nothing() -> None:
    """The public API is lazy: `import nnkit` loads none of its heavy modules."""
    code = "import sys, nnkit; print(sorted(m for m in sys.modules if m.startswith(('nnkit.', 'numpy', 'pydantic'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded
