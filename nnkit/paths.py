"""What nnkit reads and writes must be regular files.

A model file, data file or checkpoint that is a FIFO would block the read forever, and
`/dev/zero` would be read until memory runs out; an output that names a device, a FIFO
or a folder must not be replaced by a regular file, and an output that is one of the
inputs must not be written over while it is read. These checks follow symbolic links.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from nnkit.errors import NnkitError, reading

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str:
    """What a file of `mode` is, in words: "a folder", "a FIFO (named pipe)", …"""
    return next((name for test, name in _KINDS if test(mode)), "a regular file" if stat.S_ISREG(mode) else "special")


def open_regular(path: str | Path, error: type[NnkitError], what: str) -> BinaryIO:
    """`path` opened for reading, if it is a regular file; otherwise one `error` that says
    what it is. Opening never blocks (a FIFO without a writer would)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{path}: is {kind_of(mode)}, not a {what}")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_utf8(path: str | Path, error: type[NnkitError], what: str, max_bytes: int) -> str:
    """The whole text of the regular file `path`; one `error` naming it when it is missing,
    not a regular file, over `max_bytes` (checked on what is read) or not UTF-8."""
    with open_regular(path, error, what) as f, reading(path, error, what):
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise error(f"{path}: over {max_bytes >> 20} MiB; nnkit reads a {what} whole")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text: {exc}") from None


def check_output(path: str | Path, error: type[NnkitError], inputs: Iterable[str | Path] = ()) -> None:
    """Refuse an output path that is anything but a regular file or a new path, or that is
    (through links, or as a hard link) one of `inputs`; nothing is written."""
    try:
        target = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise error(f"{path}: cannot write: {exc.strerror or exc}") from None
    if not stat.S_ISREG(target.st_mode):
        raise error(f"{path}: is {kind_of(target.st_mode)}; write to a regular file or a new path")
    for source in inputs:
        try:
            same = os.path.samestat(target, os.stat(source))
        except OSError:
            continue
        if same:
            raise error(f"{path}: is the input {source} itself; write the output elsewhere")


def refuse_special(path: Path) -> None:
    """OSError when `path` exists and is not a regular file (for writers that replace it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, f"it is {kind_of(mode)}, not a regular file", str(path))


def free_path(stem: str, suffix: str) -> Path:
    """`<stem><suffix>` in the current folder, or `<stem>-2<suffix>`, `-3` … when taken: an
    output written without the user naming it never replaces a file."""
    candidate, n = Path(f"{stem}{suffix}"), 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = Path(f"{stem}-{n}{suffix}")
    return candidate
