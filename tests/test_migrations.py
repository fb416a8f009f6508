"""Format versions: older files are upgraded by registered migrations, newer ones refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nnkit
from nnkit import read_model_file
from nnkit import spec as spec_module
from nnkit.cli import main
from nnkit.modelfile import migrations

from .conftest import EXAMPLES


def test_current_files_need_no_migration(tmp_path: Path, capsys) -> None:
    copy = tmp_path / "spiral.toml"
    copy.write_text((EXAMPLES / "spiral.toml").read_text())
    assert main(["migrate", str(copy)]) == 0
    assert "format_version 1 (already current)" in capsys.readouterr().out
    assert read_model_file(copy) == read_model_file(EXAMPLES / "spiral.toml")


def test_older_files_are_upgraded_by_registered_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys) -> None:
    """Pretend nnkit has moved on one format version, in which `train.print_every` (the old
    name) became `train.log_every`, and check that an old file reads and migrates."""
    old_version = spec_module.FORMAT_VERSION

    def rename_print_every(data: dict) -> dict:
        train = dict(data.get("train", {}))
        if "print_every" in train:
            train["log_every"] = train.pop("print_every")
        return {**data, "train": train}

    monkeypatch.setattr(spec_module, "FORMAT_VERSION", old_version + 1)
    monkeypatch.setitem(migrations.MIGRATIONS, old_version, rename_print_every)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format_version": old_version, "inputs": {"x": {"shape": [2]}},
                               "nodes": [{"type": "ReLU"}], "train": {"print_every": 5}}))

    spec = read_model_file(old)  # read directly: upgraded in memory
    assert spec.format_version == old_version + 1 and spec.train.log_every == 5

    assert main(["migrate", str(old)]) == 0  # rewritten on disk
    assert f"format_version {old_version + 1} (was {old_version})" in capsys.readouterr().out
    rewritten = json.loads(old.read_text())
    assert rewritten["format_version"] == old_version + 1 and rewritten["train"] == {"log_every": 5}

    monkeypatch.setattr(migrations, "MIGRATIONS", {})
    with pytest.raises(nnkit.ModelFileError, match=f"no migration from format_version {old_version}"):
        migrations.upgrade({"format_version": old_version}, "old.json")


def test_newer_files_name_what_to_do() -> None:
    with pytest.raises(nnkit.ModelFileError, match=r"format_version 7 needs a newer nnkit: this is nnkit .*"
                                                   r"reads model files up to format_version 1; pip install -U nnkit"):
        migrations.upgrade({"format_version": 7}, "m.toml")


def test_migrating_a_toml_file_keeps_its_comments_and_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys) -> None:
    old_version = spec_module.FORMAT_VERSION

    def rename_print_every(data: dict) -> dict:
        train = dict(data.get("train", {}))
        train["log_every"] = train.pop("print_every")
        return {**data, "train": train}

    monkeypatch.setattr(spec_module, "FORMAT_VERSION", old_version + 1)
    monkeypatch.setitem(migrations.MIGRATIONS, old_version, rename_print_every)
    old = tmp_path / "old.toml"
    old.write_text(f"# my spiral, tuned by hand\nformat_version = {old_version}\n\n[inputs]\nx = {{ shape = [2] }}\n\n"
                   '[[nodes]]\ntype = "ReLU"   # keep it simple\n\n[train]\nprint_every = 5  # quiet\nseed = 3\n')
    old.chmod(0o644)
    assert main(["migrate", str(old)]) == 0
    capsys.readouterr()
    text = old.read_text()
    assert "# my spiral, tuned by hand" in text and "# keep it simple" in text
    assert f"format_version = {old_version + 1}" in text and "log_every = 5" in text and "print_every" not in text
    assert (old.stat().st_mode & 0o777) == 0o644
    assert read_model_file(old).train.log_every == 5
