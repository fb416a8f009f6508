"""The checkpoint container under attack: fuzzed bytes, a kill during save, a full disk."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pytest

import nnkit
from nnkit.checkpoint import PluginVersionWarning
from nnkit.checkpoint import container as ckptfile
from nnkit.training.runner import Runner

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    runner = Runner.from_file(EXAMPLES / "spiral.toml", epochs=2)
    runner.fit()
    path = tmp_path_factory.mktemp("fuzz") / "valid.nnk"
    runner.save(path)
    return path.read_bytes()


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(7)
    b = bytearray(data)
    if kind == 6:  # a forged header: bytes flipped, then its checksum made to match
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data[len(ckptfile.MAGIC):])
        unpacker.unpack()
        length = unpacker.tell()
        unpacker.unpack()
        header = bytearray(data[len(ckptfile.MAGIC):len(ckptfile.MAGIC) + length])
        for i in rng.integers(0, len(header), size=rng.integers(1, 4)):
            header[i] ^= int(rng.integers(1, 256))
        rest = data[len(ckptfile.MAGIC) + unpacker.tell():]
        return ckptfile.MAGIC + bytes(header) + msgpack.packb(ckptfile.checksum(memoryview(header))) + rest
    if kind == 0:  # flip bytes
        for i in rng.integers(0, len(b), size=rng.integers(1, 8)):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == 1:  # truncate
        b = b[:rng.integers(0, len(b))]
    elif kind == 2:  # insert garbage
        i = int(rng.integers(0, len(b)))
        b[i:i] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == 3:  # overwrite a run in the header region
        i = int(rng.integers(0, min(len(b), 2000)))
        b[i:i + 16] = rng.bytes(16)
    elif kind == 4:  # random bytes behind a valid magic
        b = bytearray(ckptfile.MAGIC + rng.bytes(int(rng.integers(0, 4000))))
    else:  # pure noise
        b = bytearray(rng.bytes(int(rng.integers(0, 4000))))
    return bytes(b)


def fuzz(valid: bytes, tmp_path: Path, cases: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path / "fuzzed.nnk"
    for _ in range(cases):
        path.write_bytes(mutate(valid, rng))
        try:
            with warnings.catch_warnings():
                # A damaged plugin lock ("nKkit") is a file worth loading with a warning.
                warnings.simplefilter("ignore", PluginVersionWarning)
                nnkit.load(path)
        except nnkit.CheckpointError:
            pass  # the only exception allowed to escape


def test_fuzzed_files_raise_only_checkpoint_errors(valid: bytes, tmp_path: Path) -> None:
    fuzz(valid, tmp_path, cases=300, seed=0)


@pytest.mark.slow
def test_fuzzed_files_raise_only_checkpoint_errors_at_length(valid: bytes, tmp_path: Path) -> None:
    fuzz(valid, tmp_path, cases=10_000, seed=1)


def forge(header: object) -> bytes:
    """The start of a checkpoint whose header is `header`, with a matching header checksum."""
    packed = msgpack.packb(header)
    return ckptfile.MAGIC + packed + msgpack.packb(ckptfile.checksum(memoryview(packed)))


def header_with(entry: dict, version: int = 2) -> dict:
    return {"format": "nnkit.checkpoint", "format_version": version, "nnkit_version": "x", "created": "x",
            "spec": {}, "plugins": {}, "arrays": {"a": {"offset": 64, "length": 8} | entry}}


XXH3 = {"xxh3": "0" * 16}


@pytest.mark.parametrize(("header", "message"), [
    ({"format": "nnkit.checkpoint", "format_version": 2}, "invalid header at"),
    (header_with({"dtype": "<f8", "shape": [1]}), "array .a.: an entry holds exactly dtype, length, offset, shape"),
    (header_with({"dtype": "<f8", "shape": [1], "crc32": "0" * 8, **XXH3}), "an entry holds exactly"),
    (header_with({"dtype": "<f8", "shape": [1], "xxh3": "0" * 8}), "array 'a': xxh3 must be 16 lowercase hex digits"),
    (header_with({"dtype": "<f8", "shape": [1], "xxh3": "0" * 15 + "G"}), "xxh3 must be 16 lowercase hex"),
    (header_with({"dtype": "<f8", "shape": [1], **XXH3}, version=1), "format 1 files use crc32 checksums"),
    (header_with({"dtype": "<f8", "shape": [1], "crc32": "0" * 8}), "format 2 files use xxh3 checksums"),
    (header_with({"dtype": "|O", "shape": [1], **XXH3}), "invalid header at arrays: array 'a': dtype must be one of"),
    (header_with({"dtype": ["<f8"], "shape": [1], **XXH3}), "array 'a': dtype must be one of"),
    (header_with({"dtype": "<f8", "shape": [2**40], **XXH3}), "array 'a': shape must be a list of at most 32"),
    (header_with({"dtype": "<f8", "shape": [1] * 33, **XXH3}), "array 'a': shape must be"),
    (header_with({"dtype": "<f8", "shape": [True], **XXH3}), "array 'a': shape must be"),
    (header_with({"dtype": "<f8", "shape": 1, **XXH3}), "array 'a': shape must be"),
    (header_with({"dtype": "<f8", "shape": [1], "offset": -64, **XXH3}), "array 'a': offset must be a whole number"),
    (header_with({"dtype": "<f8", "shape": [1], "length": 8.0, **XXH3}), "array 'a': length must be a whole number"),
    ({**header_with({"dtype": "<f8", "shape": [1], **XXH3}), "arrays": [1]}, "arrays: must be a map"),
    (header_with({"dtype": "<f8", "shape": [2], **XXH3}),
     "payload length 8 does not match"),
    ({"format": "nnkit.checkpoint", "format_version": "1"}, "invalid header at format_version"),
    ([1, 2, 3], "the header is not a map"),
])
def test_headers_that_lie_are_refused(tmp_path: Path, header, message: str) -> None:
    path = tmp_path / "lie.nnk"
    path.write_bytes(forge(header) + b"\xc0" * 200)
    with pytest.raises(nnkit.CheckpointError, match=message):
        nnkit.load(path)


@pytest.mark.parametrize(("raw", "message"), [
    (b"\x81\xa4spec" + b"\x91" * 200_000 + b"\xc0", "unreadable header: nested too deeply"),
    (b"\xdb\xff\xff\xff\xff", "truncated header"),  # a 4 GiB string announced, never sent
])
def test_hostile_msgpack_is_refused(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "hostile.nnk"
    path.write_bytes(ckptfile.MAGIC + raw)
    with pytest.raises(nnkit.CheckpointError, match=message):
        nnkit.load(path)


def test_overlapping_payloads_are_refused(valid: bytes, tmp_path: Path) -> None:
    path = tmp_path / "v.nnk"
    path.write_bytes(valid)
    with ckptfile.CheckpointFile(path) as opened:
        header = opened.header.model_dump()
        arrays = {n: np.array(opened.array(n)) for n in opened.names()}
    ckptfile.write(path, {k: v for k, v in header.items() if k != "arrays"}, arrays)
    raw = path.read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(raw[len(ckptfile.MAGIC):])
    data, _ = unpacker.unpack(), unpacker.unpack()  # the header and its checksum
    first, second = list(data["arrays"])[:2]
    data["arrays"][second]["offset"] = data["arrays"][first]["offset"]  # point into the first payload
    path.write_bytes(forge(data) + raw[len(ckptfile.MAGIC) + unpacker.tell():])
    with pytest.raises(nnkit.CheckpointError, match="breaks the layout|truncated|trailing"):
        nnkit.load(path)


SAVER = textwrap.dedent("""
    import sys, numpy as np
    import nnkit
    runner = nnkit.Model.from_file(sys.argv[1], epochs=1)
    for i in range(1_000_000):
        for p in runner.network.params.values():
            p[...] = i
        runner.save(sys.argv[2])
        print(i, flush=True)
""")


def test_a_kill_during_save_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "c.nnk"
    for delay in (0.05, 0.13, 0.31):
        with subprocess.Popen([sys.executable, "-c", SAVER, str(EXAMPLES / "spiral.toml"), str(target)],
                              stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            done = int(proc.stdout.readline())  # at least one complete save
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            last = [int(line) for line in proc.stdout.read().split()]
        net = nnkit.load(target)  # loadable, and a complete save: every param holds one value
        value = net.params["fc1.W"].flat[0]
        assert value >= (last[-1] if last else done)
        assert all(np.all(p == value) for p in net.params.values())
    nnkit.save(net, target)  # and a later save clears what the killed ones left
    assert [p.name for p in tmp_path.iterdir()] == ["c.nnk"]


@pytest.mark.skipif(os.name != "posix", reason="finds writers by POSIX process id")
def test_the_next_save_removes_temps_of_killed_writers_only(tmp_path: Path) -> None:
    import socket

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    host = socket.gethostname()
    stale = tmp_path / f".c.nnk.{host}-{gone.stdout.strip()}.0a1b2c3d.tmp"
    keep = [tmp_path / f".c.nnk.{host}-{os.getpid()}.0a1b2c3d.tmp",  # a writer still running
            tmp_path / f".c.nnk.another-host-{gone.stdout.strip()}.0a1b2c3d.tmp",  # not ours to judge
            tmp_path / f".other.nnk.{host}-{gone.stdout.strip()}.0a1b2c3d.tmp"]  # another target's
    for temp in [stale, *keep]:
        temp.write_bytes(b"partial")
    ckptfile.write(tmp_path / "c.nnk", MINIMAL, {"a": np.zeros(3)})
    assert not stale.exists()
    assert all(temp.exists() for temp in keep)


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temp(valid: bytes, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.nnk"
    path.write_bytes(valid)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckptfile.os, "fsync", full)
    with pytest.raises(nnkit.CheckpointError, match="c.nnk: cannot write: No space left on device"):
        ckptfile.write(path, {"format": "nnkit.checkpoint"}, {"a": np.zeros(3)})
    assert path.read_bytes() == valid
    assert [p.name for p in tmp_path.iterdir()] == ["c.nnk"]


def test_an_unwritable_folder_keeps_the_old_file(valid: bytes, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.nnk"
    path.write_bytes(valid)

    def denied(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckptfile.os, "open", denied)
    with pytest.raises(nnkit.CheckpointError, match="Permission denied"):
        ckptfile.write(path, {"format": "nnkit.checkpoint"}, {"a": np.zeros(3)})
    assert path.read_bytes() == valid


MINIMAL = {"nnkit_version": "x", "created": "x", "spec": {}, "plugins": {}}


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_files_get_the_usual_permissions_or_keep_their_own(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = tmp_path / "c.nnk"
        ckptfile.write(path, MINIMAL, {"a": np.zeros(3)})
        assert path.stat().st_mode & 0o777 == 0o644  # as open() would make it, not mkstemp's 0o600
        path.chmod(0o640)
        ckptfile.write(path, MINIMAL, {"a": np.ones(3)})
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


def test_copy_into_reads_every_chunk_and_checks_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ckptfile, "CHUNK", 4096)  # several chunks per array
    big = np.random.default_rng(0).standard_normal((300, 70))
    ckptfile.write(tmp_path / "c.nnk", MINIMAL, {"big": big, "empty": np.zeros((0, 3))})
    with ckptfile.CheckpointFile(tmp_path / "c.nnk") as opened:
        assert np.array_equal(opened.copy_into("big", np.empty_like(big)), big)
        assert opened.copy_into("empty", np.ones((0, 3))).shape == (0, 3)
        strided = np.empty((300, 140))[:, ::2]  # not contiguous: copied from the map instead
        assert np.array_equal(opened.copy_into("big", strided), big)
        with pytest.raises(ValueError, match="target is float32"):
            opened.copy_into("big", np.empty((300, 70), np.float32))
        start = opened.data_start + opened.index["big"].offset
    raw = bytearray((tmp_path / "c.nnk").read_bytes())
    raw[start + 3 * 4096 + 7] ^= 1  # a bit in the fourth chunk
    (tmp_path / "d.nnk").write_bytes(bytes(raw))
    with ckptfile.CheckpointFile(tmp_path / "d.nnk") as opened:
        with pytest.raises(nnkit.CheckpointError, match="'big': checksum mismatch"):
            opened.copy_into("big", np.empty_like(big))
        opened.copy_into("big", np.empty_like(big), verify=False)


@pytest.mark.parametrize(("preadv", "message"), [
    (lambda *a: 0, "the file shrank while being read"),
    (lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")), "cannot read: Input/output error"),
])
def test_read_failures_are_checkpoint_errors(tmp_path: Path, monkeypatch, preadv, message: str) -> None:
    ckptfile.write(tmp_path / "c.nnk", MINIMAL, {"a": np.arange(10.0)})
    with ckptfile.CheckpointFile(tmp_path / "c.nnk") as opened:
        monkeypatch.setattr(ckptfile.os, "preadv", preadv)
        with pytest.raises(nnkit.CheckpointError, match=message):
            opened.copy_into("a", np.empty(10))


@pytest.mark.parametrize(("sizes", "count", "expected"), [
    ([4, 4, 4, 4, 4, 4], 2, ["abc", "def"]),
    ([100, 1, 1, 1, 1, 1], 2, ["a", "bcdef"]),
    ([1, 1, 1, 100], 2, ["abc", "d"]),
    ([4, 1, 4, 1, 4, 1, 4, 1], 2, ["abcd", "efgh"]),
    ([5], 2, ["a"]),
])
def test_reads_are_cut_into_contiguous_runs_of_about_equal_bytes(sizes, count, expected) -> None:
    names = list("abcdefgh"[:len(sizes)])
    from nnkit.checkpoint.parallel import _runs

    assert ["".join(run) for run in _runs(names, sizes, count)] == expected


MIXED = {  # small arrays in runs, a large one alone, every kind of shape and dtype
    "w": np.arange(12, dtype=np.float32).reshape(3, 4), "empty": np.zeros((0, 3)), "scalar": np.array(2.5),
    "half": np.ones(5, np.float16), "ints": np.arange(7, dtype=np.int64), "flags": np.array([True, False]),
    "large": np.random.default_rng(0).standard_normal((200, 100)), "after": np.full((2, 2), 7.0),
}


def test_small_arrays_are_read_in_runs_and_come_back_exact_aligned_and_writable(tmp_path: Path) -> None:
    ckptfile.write(tmp_path / "m.nnk", MINIMAL, MIXED)
    with ckptfile.CheckpointFile(tmp_path / "m.nnk") as opened:
        units = opened._units(list(MIXED))
        assert units == [("w", "empty", "scalar", "half", "ints", "flags"), ("large",), ("after",)]
        assert opened._units(["w", "ints", "half"]) == [("w",), ("ints",), ("half",)]  # not next to each other
        copies = opened.arrays(list(MIXED), copy=True)
    for name, array in MIXED.items():
        got = copies[name]
        assert got.dtype == array.dtype and got.shape == array.shape and np.array_equal(got, array), name
        assert got.flags.writeable and got.flags.aligned, name
        assert name == "large" or got.ctypes.data % 64 == 0, name  # a run keeps the file's alignment
    copies["w"][...] = 0  # a run's arrays do not overlap
    assert np.array_equal(copies["scalar"], MIXED["scalar"])


@pytest.mark.parametrize(("where", "message"), [
    (lambda e: e.offset - 5, "'ints': payload marker is damaged"),
    (lambda e: e.offset - 2, "'ints': payload marker is damaged"),
    (lambda e: e.offset + 3, "'ints': checksum mismatch"),
])
def test_a_damaged_array_in_a_run_is_named(tmp_path: Path, where, message: str) -> None:
    ckptfile.write(tmp_path / "m.nnk", MINIMAL, MIXED)
    with ckptfile.CheckpointFile(tmp_path / "m.nnk") as opened:
        at = opened.data_start + where(opened.index["ints"])
    raw = bytearray((tmp_path / "m.nnk").read_bytes())
    raw[at] ^= 0x10
    (tmp_path / "d.nnk").write_bytes(bytes(raw))
    with ckptfile.CheckpointFile(tmp_path / "d.nnk") as opened:
        with pytest.raises(nnkit.CheckpointError, match=message):
            opened.arrays(list(MIXED), copy=True)
        if "marker" not in message:
            assert np.array_equal(opened.arrays(["ints"], copy=True, verify=False)["ints"][1:], MIXED["ints"][1:])


def test_runs_cut_small_arrays_together_up_to_a_cap_and_large_ones_alone() -> None:
    from nnkit.checkpoint.runs import RUN_BYTES, SMALL, cut

    assert cut([]) == []
    assert cut([8, 8, SMALL, 8]) == [range(0, 2), range(2, 3), range(3, 4)]
    many = cut([SMALL - 1] * 200)
    assert [i for run in many for i in run] == list(range(200)) and len(many) > 1
    assert all(sum(SMALL - 1 + 69 for _ in run) <= RUN_BYTES + SMALL + 69 for run in many)


def test_a_header_nnkit_did_not_write_loads_and_repeated_keys_are_still_refused(tmp_path: Path) -> None:
    ckptfile.write(tmp_path / "m.nnk", MINIMAL, {"a": np.arange(3.0)})
    data = (tmp_path / "m.nnk").read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data[len(ckptfile.MAGIC):])
    header = unpacker.unpack()
    length = unpacker.tell()
    packed = msgpack.packb(header)
    # The same header with format_version as a uint16 (0xcd) instead of a fixint: valid msgpack, other bytes.
    wide = packed.replace(b"\xaeformat_version\x03", b"\xaeformat_version\xcd\x00\x03")
    assert wide != packed

    def with_header(raw: bytes, name: str) -> Path:
        body = ckptfile.MAGIC + raw + msgpack.packb(ckptfile.checksum(memoryview(raw)))
        pad = ckptfile.align(len(body)) - len(body)
        rest = data[ckptfile.align(len(ckptfile.MAGIC) + length + 17):]  # the payloads, from the base
        path = tmp_path / name
        path.write_bytes(body + b"\xc0" * pad + rest)
        return path

    with ckptfile.CheckpointFile(with_header(wide, "wide.nnk")) as opened:
        assert opened.header.format_version == 3
        assert np.array_equal(opened.array("a"), np.arange(3.0))
    assert 0x80 <= packed[0] < 0x8F  # a fixmap: its pair count is in the first byte
    repeated = bytes([packed[0] + 1]) + packed[1:].replace(b"\xa7created", b"\xa7created\xa1x\xa7created", 1)
    with pytest.raises(nnkit.CheckpointError, match="repeated|duplicate"):
        ckptfile.CheckpointFile(with_header(repeated, "dup.nnk"))
