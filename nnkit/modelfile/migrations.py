"""Model-file format versions and the migrations between them.

A migration is a plain data transformation registered here, never code read from a file:
`MIGRATIONS[v]` turns a version-v document into a version-(v+1) one. Files without
`format_version` are taken to be the current version, `nnkit.spec.FORMAT_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnkit import spec
from nnkit.errors import ModelFileError
from nnkit.version import __version__, install_hint

Migration = Callable[[dict[str, Any]], dict[str, Any]]
#: version → the function that upgrades a document of that version by one.
MIGRATIONS: dict[int, Migration] = {}


def upgrade(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`data` brought to the current format version through the registered migrations."""
    current = spec.FORMAT_VERSION  # read at call time: tests pretend another
    version = data.get("format_version", current)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{source}: format_version must be a whole number ≥ 1, not {version!r}")
    if version > current:
        raise ModelFileError(
            f"{source}: format_version {version} needs a newer nnkit: this is nnkit {__version__}, which reads "
            f"model files up to format_version {current}; {install_hint()}")
    while version < current:
        migration = MIGRATIONS.get(version)
        if migration is None:
            raise ModelFileError(f"{source}: no migration from format_version {version} is known")
        data = {**migration(dict(data)), "format_version": version + 1}
        version += 1
    return data
