"""Checkpoints: bit-identical round trips, the stored spec alone rebuilds the network,
damaged or foreign files give one CheckpointError."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

import nnkit
import nnkit.checkpoint.header
from nnkit.checkpoint import container as ckptfile
from nnkit.training.runner import Runner

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, Path]:
    runner = Runner.from_file(EXAMPLES / "spiral.toml", epochs=20)
    runner.fit()
    path = tmp_path_factory.mktemp("ckpt") / "spiral.nnk"
    runner.save(path)
    return runner, path


def test_load_is_bit_identical_for_predictions_params_and_grads(trained) -> None:
    runner, path = trained
    loaded = nnkit.load(path)
    x = runner.data.x
    assert np.array_equal(loaded.predict(x), runner.predict(x))
    assert loaded.params.keys() == runner.network.params.keys()
    for name in runner.network.params:
        assert np.array_equal(loaded.params[name], runner.network.params[name])
        assert np.array_equal(loaded.grads[name], runner.network.grads[name])
        assert np.any(loaded.grads[name] != 0), "the saved grads are the last step's, not zeros"


def test_loaded_arrays_are_writable(trained) -> None:
    loaded = nnkit.load(trained[1])
    loaded.params["fc1.W"][0, 0] += 1.0
    loaded.grads["fc1.W"][...] = 0.0


def test_header_holds_spec_plugins_and_index(trained) -> None:
    _, path = trained
    with ckptfile.CheckpointFile(path) as opened:
        header = opened.header
    assert header.format == "nnkit.checkpoint"
    assert header.spec["nodes"][0]["name"] == "fc1"
    assert header.plugins["Affine"].distribution == "nnkit-numpy"
    assert header.plugins["Affine"].version == nnkit.__version__
    assert header.arrays["params/fc1.W"].dtype == "<f8"
    assert header.arrays["params/fc1.W"].shape == [2, 10]
    assert {"params/fc2.b", "grads/fc2.b"} <= set(header.arrays)
    assert header.progress.epoch == 20


def test_the_whole_file_is_one_msgpack_stream_with_aligned_payloads(trained) -> None:
    _, path = trained
    opened = ckptfile.CheckpointFile(path)
    opened.close()
    with open(path, "rb") as f:
        objects = list(msgpack.Unpacker(f, raw=False))
    assert objects[0] == "nnkit-ckpt"
    payloads = [o for o in objects if isinstance(o, bytes)]
    assert len(payloads) == len(opened.index)
    for entry in opened.index.values():
        assert (opened.data_start + entry.offset) % ckptfile.ALIGN == 0


def test_no_temp_file_is_left_behind(trained, tmp_path: Path) -> None:
    runner, _ = trained
    runner.save(tmp_path / "a.nnk")
    runner.save(tmp_path / "a.nnk")
    assert [p.name for p in tmp_path.iterdir()] == ["a.nnk"]


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b"", "wrong magic"),
    (lambda b: b"PK\x03\x04" + b[4:], "wrong magic"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b[:40], "truncated header"),
    (lambda b: b[:-3] + bytes([b[-3] ^ 0xFF]) + b[-2:], "checksum mismatch"),
])
def test_damaged_files_raise_checkpoint_error(trained, tmp_path: Path, damage, message: str) -> None:
    bad = tmp_path / "bad.nnk"
    bad.write_bytes(damage(trained[1].read_bytes()))
    with pytest.raises(nnkit.CheckpointError, match=message) as info:
        nnkit.load(bad)
    assert str(bad) in str(info.value)


def test_a_damaged_header_is_caught_by_its_checksum(trained, tmp_path: Path) -> None:
    raw = trained[1].read_bytes()
    at = raw.index(nnkit.__version__.encode())  # a byte that still parses when changed
    damaged = tmp_path / "damaged.nnk"
    damaged.write_bytes(raw[:at] + b"9" + raw[at + 1:])
    with pytest.raises(nnkit.CheckpointError, match="header checksum mismatch"):
        nnkit.inspect(damaged)


def test_extension_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ext.nnk"
    path.write_bytes(ckptfile.MAGIC + msgpack.packb({"format": msgpack.ExtType(1, b"x")}))
    with pytest.raises(nnkit.CheckpointError, match="extension type"):
        nnkit.load(path)


def test_newer_format_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.nnk"
    path.write_bytes(ckptfile.MAGIC + msgpack.packb({"format": "nnkit.checkpoint", "format_version": 99}))
    with pytest.raises(nnkit.CheckpointError, match="newer than this nnkit reads"):
        nnkit.load(path)


def test_missing_file() -> None:
    with pytest.raises(nnkit.CheckpointError, match="no such file"):
        nnkit.load("does-not-exist.nnk")


def test_a_missing_layer_type_names_the_plugin_to_install(trained, tmp_path: Path) -> None:
    with ckptfile.CheckpointFile(trained[1]) as opened:
        header = opened.header.model_dump(exclude={"arrays"})
        arrays = {name: np.array(opened.array(name)) for name in opened.names()}
    header["spec"] = {**header["spec"], "nodes": [{**header["spec"]["nodes"][0], "type": "WarpAffine"},
                                                   *header["spec"]["nodes"][1:]]}
    header["plugins"] = {**header["plugins"], "WarpAffine": {"distribution": "nnkit-warp", "version": "0.3.1"}}
    path = tmp_path / "rnn.nnk"
    ckptfile.write(path, header, arrays)
    with pytest.raises(nnkit.CheckpointError,
                       match=r"node 'fc1' uses layer type 'WarpAffine'.*nnkit-warp 0.3.1: pip install nnkit-warp"
                             r".*closest installed: .*Affine"):
        nnkit.load(path)


def test_mmap_load_is_copy_on_write(trained, tmp_path: Path) -> None:
    runner, path = trained
    before = path.read_bytes()
    net = nnkit.load(path, mmap=True).network
    assert np.array_equal(net.predict(runner.data.x), runner.predict(runner.data.x))
    net.params["fc1.W"][...] = 0.0  # writable, and the file does not change
    net.grads["fc2.b"][...] = 1.0
    assert path.read_bytes() == before
    assert net.layers["fc1"].params[0] is net.params["fc1.W"]


def test_params_only_load_reads_no_grad_bytes(trained, tmp_path: Path) -> None:
    _, path = trained
    with ckptfile.CheckpointFile(path) as opened:
        entry, start = opened.index["grads/fc1.W"], opened.data_start
    data = bytearray(path.read_bytes())
    data[start + entry.offset] ^= 0xFF  # damage a grad payload
    damaged = tmp_path / "damaged.nnk"
    damaged.write_bytes(bytes(data))
    with pytest.raises(nnkit.CheckpointError, match="'grads/fc1.W': checksum mismatch"):
        nnkit.load(damaged)
    net = nnkit.load(damaged, grads=False)  # never touches the damaged bytes
    assert not any(np.any(g) for g in net.grads.values())


def test_a_checkpoint_saved_without_grads_loads_with_zero_grads(trained, tmp_path: Path) -> None:
    runner, _ = trained
    nnkit.save(runner.network, tmp_path / "params.nnk", grads=False)
    with ckptfile.CheckpointFile(tmp_path / "params.nnk") as opened:
        assert not opened.names("grads/")
    net = nnkit.load(tmp_path / "params.nnk")
    assert np.array_equal(net.params["fc1.W"], runner.network.params["fc1.W"])
    assert not any(np.any(g) for g in net.grads.values())


def test_a_params_only_load_trains_on(trained) -> None:
    runner, path = trained
    for mmap in (False, True):
        net = nnkit.load(path, grads=False, mmap=mmap).network
        assert not any(np.any(g) for g in net.grads.values())
        net.loss(runner.data.x[:30], runner.data.t[:30], train=True)
        net.backward()  # writes into the zero grads in place
        assert all(np.any(g) for g in net.grads.values())
        assert all(layer.grads[i] is net.grads[f"{name}.{p}"] for name, layer in net.layers.items()
                   for i, p in enumerate(layer.param_names))


def test_compare_finds_each_difference_and_names_by_section(trained) -> None:
    from nnkit.checkpoint.reader import Checkpoint
    from nnkit.network import ArraySpec

    _, path = trained
    with Checkpoint(path, nnkit.get_registry()) as checkpoint:
        assert checkpoint.file.names("params/") == [n for n in checkpoint.file.index if n.startswith("params/")]
        assert checkpoint.file.names("params/fc1.") == ["params/fc1.W", "params/fc1.b"]  # not a section: filtered
        assert checkpoint.file.names("nothing/") == []
        wanted = checkpoint.plan().arrays()
        assert checkpoint.compare("params", wanted).ok and checkpoint.compare("grads", wanted).ok
        cases = {
            "shape": ({**wanted, "fc1.W": ArraySpec((3, 10), wanted["fc1.W"].dtype)}, "mismatched"),
            "dtype": ({**wanted, "fc2.b": ArraySpec(wanted["fc2.b"].shape, np.dtype("float32"))}, "mismatched"),
            "missing": ({**wanted, "fc3.W": ArraySpec((2, 2), wanted["fc1.W"].dtype)}, "missing"),
            "unexpected": ({k: v for k, v in wanted.items() if k != "fc2.W"}, "unexpected"),
        }
        for case, (changed, field) in cases.items():
            report = checkpoint.compare("params", changed)
            assert not report.ok and len(getattr(report, field)) == 1, case


def test_load_into_lists_every_mismatch(trained) -> None:
    _, path = trained
    spec = nnkit.read_model_file(EXAMPLES / "spiral.toml").to_dict()
    spec["nodes"][0]["units"] = 8  # fc1.W, fc1.b and fc2.W change shape
    spec["nodes"].append({"name": "extra", "type": "Affine", "units": 3})
    spec["outputs"], spec["loss"]["inputs"] = ["extra"], ["extra"]
    other = nnkit.Network.from_spec(nnkit.validate_spec(spec), nnkit.get_registry(), rng=np.random.default_rng(0))
    with pytest.raises(nnkit.CheckpointError) as info:
        nnkit.load_into(other, path)
    message = str(info.value)
    for expected in ("missing: params/extra.W", "params/extra.b", "params/fc1.W: file float64 (2, 10)",
                     "params/fc1.b", "params/fc2.W"):
        assert expected in message
    before = other.params["fc1.W"].copy()
    report = nnkit.load_into(other, path, strict=False)
    assert "params/extra.W" in report.missing and len(report.mismatched) == 6  # 3 params + 3 grads
    assert np.array_equal(other.params["fc1.W"], before)  # mismatched arrays are left alone
    with ckptfile.CheckpointFile(path) as opened:
        assert np.array_equal(other.params["fc2.b"], opened.array("params/fc2.b"))


def test_load_into_from_a_damaged_file_changes_nothing(trained, tmp_path: Path) -> None:
    runner, path = trained
    with ckptfile.CheckpointFile(path) as opened:
        names = opened.names()
        entry, start = opened.index[names[-1]], opened.data_start  # the last array read
    data = bytearray(path.read_bytes())
    data[start + entry.offset] ^= 0x01
    damaged = tmp_path / "damaged.nnk"
    damaged.write_bytes(bytes(data))
    fresh = nnkit.Network.from_spec(runner.network.spec, nnkit.get_registry(), rng=np.random.default_rng(5))
    before = {k: v.copy() for k, v in fresh.params.items()}
    with pytest.raises(nnkit.CheckpointError, match="checksum mismatch"):
        nnkit.load_into(fresh, damaged)
    assert all(np.array_equal(fresh.params[k], v) for k, v in before.items())


def test_load_into_a_matching_network(trained) -> None:
    runner, path = trained
    fresh = nnkit.Network.from_spec(runner.network.spec, nnkit.get_registry(), rng=np.random.default_rng(5))
    assert nnkit.load_into(fresh, path).ok
    assert np.array_equal(fresh.predict(runner.data.x), runner.predict(runner.data.x))


def test_the_documented_reader_works(trained) -> None:
    """docs/checkpoint-format.md's reader, run as written, finds the same fc1.W."""
    import re

    from .conftest import ROOT

    runner, path = trained
    doc = (ROOT / "docs" / "checkpoint-format.md").read_text()
    code = re.search(r"## Reading it without nnkit\n\n```python\n(.+?)```", doc, re.S).group(1)
    scope: dict = {}
    exec(compile(code.replace('"spiral.nnk"', repr(str(path))), "checkpoint-format.md", "exec",
                 dont_inherit=True), scope)
    assert np.array_equal(scope["W"], runner.network.params["fc1.W"])


def _with_lock(trained, tmp_path: Path, distribution: str, version: str) -> Path:
    with ckptfile.CheckpointFile(trained[1]) as opened:
        header = opened.header.model_dump(exclude={"arrays"})
        arrays = {name: np.array(opened.array(name)) for name in opened.names()}
    header["plugins"]["Affine"] = {"distribution": distribution, "version": version}
    path = tmp_path / "locked.nnk"
    ckptfile.write(path, header, arrays)
    return path


def test_a_newer_major_plugin_version_is_refused(trained, tmp_path: Path) -> None:
    major = int(nnkit.__version__.split(".")[0])
    path = _with_lock(trained, tmp_path, "nnkit", f"{major + 1}.0.0")
    with pytest.raises(nnkit.CheckpointError, match=rf"'Affine' was written by nnkit-numpy {major + 1}.0.0, newer than"
                                                    rf".*pip install 'nnkit-numpy>={major + 1}'"):
        nnkit.load(path)


def test_an_older_major_or_another_provider_warns(trained, tmp_path: Path) -> None:
    from nnkit.checkpoint import PluginVersionWarning

    major = int(nnkit.__version__.split(".")[0])
    if major > 0:
        with pytest.warns(PluginVersionWarning, match="newer major version"):
            nnkit.load(_with_lock(trained, tmp_path, "nnkit", f"{major - 1}.9.0"))
    with pytest.warns(PluginVersionWarning, match="provided by nnkit-old 1.0 and is now provided by nnkit"):
        nnkit.load(_with_lock(trained, tmp_path, "nnkit-old", "1.0"))


@pytest.mark.parametrize("state", [
    {"bit_generator": "MT19937", "state": "1", "inc": "1", "has_uint32": 0, "uinteger": 0},
    {"bit_generator": "PCG64", "state": "zz", "inc": "1", "has_uint32": 0, "uinteger": 0},
    {"bit_generator": "PCG64", "state": "1" * 40, "inc": "1", "has_uint32": 0, "uinteger": 0},
])
def test_malformed_rng_state_is_a_checkpoint_error(trained, tmp_path: Path, state: dict) -> None:
    with ckptfile.CheckpointFile(trained[1]) as opened:
        header = opened.header.model_dump(exclude={"arrays"})
        arrays = {name: np.array(opened.array(name)) for name in opened.names()}
    header["rng"]["shuffle"] = state
    path = tmp_path / "rng.nnk"
    ckptfile.write(path, header, arrays)
    with pytest.raises(nnkit.CheckpointError, match="rng"):
        Runner.from_checkpoint(path)


def test_unverified_mapped_loads_are_lazy_and_verify_checks_on_demand(trained, tmp_path: Path, capsys) -> None:
    from nnkit.cli import main

    _, path = trained
    with ckptfile.CheckpointFile(path) as opened:
        entry, start = opened.index["params/fc2.W"], opened.data_start
    data = bytearray(path.read_bytes())
    data[start + entry.offset + 3] ^= 0x10  # one flipped bit in a param
    damaged = tmp_path / "damaged.nnk"
    damaged.write_bytes(bytes(data))
    nnkit.load(damaged, mmap=True, verify=False)  # lazy: layout checked, payload bytes not read
    for mmap in (False, True):  # every load verifies by default
        with pytest.raises(nnkit.CheckpointError, match="'params/fc2.W': checksum mismatch"):
            nnkit.load(damaged, mmap=mmap)
    with pytest.raises(nnkit.CheckpointError, match="'params/fc2.W': checksum mismatch"):
        nnkit.verify(damaged)
    with ckptfile.CheckpointFile(path) as opened:
        assert nnkit.verify(path) == len(opened.names())
    assert main(["inspect", str(damaged), "--verify"]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["inspect", str(path), "--verify"]) == 0
    assert "checksums: all 8 arrays intact" in capsys.readouterr().out


FORMAT1 = Path(__file__).parent / "data" / "spiral-format1.nnk"  # Adam, 3 epochs, written by nnkit 0.1.0


def test_format_1_files_still_load_and_their_crc32s_are_checked(tmp_path: Path) -> None:
    import zlib

    raw = FORMAT1.read_bytes()
    with ckptfile.CheckpointFile(FORMAT1) as opened:
        assert opened.header.format_version == 1
        entry, start = opened.index["params/fc1.W"], opened.data_start
    payload = raw[start + entry.offset:start + entry.offset + entry.length]
    assert format(zlib.crc32(payload), "08x") == entry.crc32
    net = nnkit.load(FORMAT1)
    assert np.array_equal(net.params["fc1.W"], np.frombuffer(payload, "<f8").reshape(2, 10))
    assert nnkit.verify(FORMAT1) == 16
    Runner.from_checkpoint(FORMAT1, epochs=4).fit()  # optimizer state and progress resume

    damaged = tmp_path / "damaged.nnk"
    damaged.write_bytes(raw[:start + entry.offset] + bytes([raw[start + entry.offset] ^ 4])
                        + raw[start + entry.offset + 1:])
    with pytest.raises(nnkit.CheckpointError, match="'params/fc1.W': checksum mismatch"):
        nnkit.load(damaged)


def test_resaving_a_format_1_file_writes_the_current_format(tmp_path: Path) -> None:
    runner = Runner.from_checkpoint(FORMAT1)
    runner.save(tmp_path / "new.nnk")
    with ckptfile.CheckpointFile(tmp_path / "new.nnk") as new, ckptfile.CheckpointFile(FORMAT1) as old:
        assert new.header.format_version == nnkit.checkpoint.header.FORMAT_VERSION == 3
        assert all(e.xxh3 and e.crc32 is None for e in new.index.values())
        assert list(new.names()) == list(old.names())
        for name in old.names():
            assert np.array_equal(new.array(name), old.array(name))


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint big enough (12 MiB) that loads read it on worker threads."""
    assert 12 * 2**20 > ckptfile.PARALLEL_BYTES
    spec = nnkit.validate_spec({"dtype": "float32", "inputs": {"x": {"shape": [1024]}},
                                "nodes": [{"type": "Affine", "units": 1024} for _ in range(3)]})
    net = nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0))
    path = tmp_path_factory.mktemp("large") / "large.nnk"
    nnkit.save(net, path)
    return path


def test_worker_threads_report_a_damaged_array(large: Path, tmp_path: Path) -> None:
    with ckptfile.CheckpointFile(large) as opened:
        entry, start = opened.index["grads/affine2.W"], opened.data_start
    data = bytearray(large.read_bytes())
    data[start + entry.offset + entry.length // 2] ^= 0x20
    damaged = tmp_path / "damaged.nnk"
    damaged.write_bytes(bytes(data))
    for mmap in (False, True):
        with pytest.raises(nnkit.CheckpointError, match="'grads/affine2.W': checksum mismatch"):
            nnkit.load(damaged, mmap=mmap)
    assert nnkit.load(large).params["affine2.W"].shape == (1024, 1024)


def test_reads_in_flight_stop_when_the_network_cannot_be_built(large: Path, tmp_path: Path) -> None:
    import threading

    with ckptfile.CheckpointFile(large) as opened:
        header = opened.header.model_dump(exclude={"arrays"})
        arrays = {name: np.array(opened.array(name)) for name in opened.names()}
    header["spec"]["nodes"][1]["type"] = "WarpAffine"
    path = tmp_path / "warp.nnk"
    ckptfile.write(path, header, arrays)
    with pytest.raises(nnkit.CheckpointError, match="'WarpAffine', which no installed plugin provides"):
        nnkit.load(path)
    assert not [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]  # no reader left
