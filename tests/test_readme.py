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


def test_ci_installs_and_tests_every_plugin_distribution() -> None:
    _, run_tests = setup_commands()
    for pyproject in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        assert f"-e plugins/{pyproject.parent.name}" in run_tests, f"{pyproject.parent.name} is not installed by CI"
    assert "pytest -q tests plugins" in run_tests


def test_the_readme_links_nothing_relative() -> None:
    """It is the package index's page too, where a relative link leads nowhere."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", readme)
    assert all(t.startswith(("https://", "http://", "#")) for t in targets), targets
