"""nnkit's exceptions. The CLI prints any `NnkitError` as one line and exits non-zero."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class NnkitError(Exception):
    """Base of every error nnkit raises on purpose: bad files, bad plugins, bad arguments."""


class ModelFileError(NnkitError):
    """A model file cannot be read or does not describe a valid network."""


class CheckpointError(NnkitError):
    """A checkpoint cannot be written, or a file is not a valid nnkit checkpoint."""


class PluginError(NnkitError):
    """A plugin is missing, broken, or registered something that is not valid."""


class DataError(NnkitError):
    """Input data cannot be read or does not fit the network."""


class ExportError(NnkitError):
    """A network cannot be exported: a layer without an ONNX converter, a missing extra."""


class TrainingError(NnkitError):
    """Training cannot go on: the loss or a param turned non-finite."""


@contextlib.contextmanager
def reading(path: object, error: type[NnkitError], what: str = "file") -> Iterator[None]:
    """Turn the OS's errors about reading `path` into one `error` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
