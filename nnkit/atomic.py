"""Every file nnkit writes (checkpoints, model files, schemas, pictures) is written so that
a crash at any moment leaves either the old file or the new one, whole: a temp file beside
the target, fsync, rename over the target, fsync the folder. A failed write removes the
temp file. A killed process can leave one behind, `.<name>.<host>-<pid>.<random>.tmp`,
never a damaged target; the next save to the same target removes those whose writer, a
process on this host, no longer runs."""

from __future__ import annotations

import errno
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from nnkit.paths import refuse_special


@contextmanager
def replacing(path: Path) -> Iterator[tuple[BinaryIO, Writeback]]:
    """Yield a new file to write and its `Writeback`; on a clean exit it replaces `path`.

    OSErrors (full disk, no permission) propagate after the temp file is removed; the
    file at `path` is untouched until the rename.
    """
    refuse_special(path)  # a device, FIFO or folder is never replaced by a regular file
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = create_temp(path, folder)
    flusher = ThreadPoolExecutor(max_workers=1)  # pushes written pages to disk meanwhile
    try:
        with os.fdopen(fd, "wb") as f:
            writeback = Writeback(f, flusher)
            yield f, writeback
            f.flush()
            writeback.finish()
            os.fsync(f.fileno())
        old = hold(path)
        try:
            os.replace(tmp, path)
        finally:
            release_later(old)
        remove_stale_temps(path, folder)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        flusher.shutdown(wait=True)
    fsync_folder(folder)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace the file at `path` with `data`, atomically (see `replacing`)."""
    with replacing(Path(path)) as (f, _):
        f.write(data)


def write_output(path: str | Path, data: bytes, error: type[Exception]) -> None:
    """`write_bytes`, with an OS error turned into one `error` naming the path."""
    try:
        write_bytes(path, data)
    except OSError as exc:
        raise error(f"{path}: cannot write: {exc.strerror or exc}") from None


def create_temp(path: Path, folder: Path) -> tuple[int, str]:
    """A new, empty file beside `path`, open for writing. It gets the permissions the file
    being replaced has, or else those of a plain open() (0o666 less the umask), where
    mkstemp's 0o600 would make every saved file private to its owner."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(folder / f".{path.name}.{_owner()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        except OSError:  # no file to replace (or not ours to copy from): keep open()'s mode
            pass
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(folder))


def remove_stale_temps(path: Path, folder: Path) -> None:
    """Remove temp files of earlier saves to `path` left by writers that were killed: ones
    named for a process of this host that no longer runs (POSIX; elsewhere nothing)."""
    if os.name != "posix":
        return
    prefix, host = f".{path.name}.", socket.gethostname()
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:
        return
    for entry in entries:
        owner = entry.name[len(prefix):-len(".tmp")].rpartition(".")[0]
        writer_host, _, pid = owner.rpartition("-")
        if writer_host == host and pid.isdigit() and not _running(int(pid)):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (POSIX)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def hold(path: Path) -> int | None:
    """An open descriptor of the file about to be replaced (POSIX), so that freeing its
    pages happens when `release_later` closes it, off the caller's path."""
    if os.name != "posix":
        return None
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def release_later(fd: int | None) -> None:
    if fd is not None:
        threading.Thread(target=os.close, args=(fd,), name="nnkit-release-old-file", daemon=True).start()


class Writeback:
    """Starts flushing written pages to disk (fdatasync on a worker) every `every` bytes,
    so that disk writes overlap the copying of later payloads into the page cache."""

    def __init__(self, f: BinaryIO, pool: ThreadPoolExecutor, every: int = 32 * 1024 * 1024) -> None:
        self.f, self.pool, self.every = f, pool, every
        self.pending = 0
        self.running: Future[None] | None = None

    def wrote(self, n: int) -> None:
        """Count `n` more bytes written; past `every`, start pushing them to disk."""
        self.pending += n
        if self.pending >= self.every and (self.running is None or self.running.done()):
            self.f.flush()
            self.running = self.pool.submit(_datasync, self.f.fileno())
            self.pending = 0

    def finish(self) -> None:
        if self.running is not None:
            self.running.result()


def fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _datasync(fd: int) -> None:
    getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync
