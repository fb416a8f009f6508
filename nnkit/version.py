"""nnkit's distribution name and version, from the installed distribution's metadata.

The import name is `nnkit`; the distribution on the package index is `nnkit-numpy`, since
`nnkit` there is an unrelated project. Checkpoints written before the rename name the
distribution `nnkit`; it is the same one.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "nnkit-numpy"
#: Earlier names of this distribution, as older checkpoints' plugin locks name it.
FORMER_NAMES = ("nnkit",)

try:
    __version__ = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"


def install_hint(extra: str | None = None) -> str:
    """The pip command that installs nnkit (with an extra): `pip install 'nnkit-numpy[plot]'`."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install -U {DISTRIBUTION}"
