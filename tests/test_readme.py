"""The README's set-up commands stay true: CI runs exactly its test command."""

from __future__ import annotations

import re

from .conftest import ROOT


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_setup_is_two_commands_and_ci_runs_the_test_one() -> None:
    install_and_train, run_tests = setup_commands()
    assert "nnkit train examples/spiral.toml" in install_and_train
    assert "pytest" in run_tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert run_tests in ci, ".ci/run must run the README's test command verbatim"


def test_the_readme_plugin_example_passes_the_layer_contract() -> None:
    import types

    from nnkit.testing import check_layer

    readme = (ROOT / "README.md").read_text()
    source = re.search(r"```python\n(# my_layers.py\n.+?)```", readme, re.S).group(1)
    module = types.ModuleType("my_layers")
    # dont_inherit: this file's `from __future__ import annotations` must not leak into it.
    exec(compile(source, "README.md", "exec", dont_inherit=True), module.__dict__)
    check_layer(module.Swish, {}, [(4,)])
