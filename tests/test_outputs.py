"""Outputs that never destroy data: predict over its own input, full disks and closed
pipes, device nodes, half-written files, non-finite params; and the numeric surprises
that used to pass silently."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.cli import main

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def spiral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spiral")
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "3", "--quiet", "--out",
                 str(folder / "s.nnk")]) == 0
    return folder / "s.nnk"


def run(*args: str, cwd: Path | None = None, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "nnkit", *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=300, preexec_fn=limit)


def temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_predict_never_writes_over_its_input(spiral: Path, tmp_path: Path, suffix: str, capsys) -> None:
    x = np.random.default_rng(0).standard_normal((50, 2))
    source = tmp_path / f"x{suffix}"
    np.save(source, x) if suffix == ".npy" else np.savetxt(source, x, delimiter=",")
    before = source.read_bytes()
    (tmp_path / f"link{suffix}").symlink_to(source)
    os.link(source, tmp_path / f"hard{suffix}")
    for output in (source, tmp_path / f"link{suffix}", tmp_path / f"hard{suffix}"):
        assert main(["predict", str(spiral), "--input", str(source), "--output", str(output)]) == 1
        assert "is the input" in capsys.readouterr().err
        assert source.read_bytes() == before


def test_a_failed_predict_leaves_the_old_output_and_no_temp_file(spiral: Path, tmp_path: Path, capsys) -> None:
    rows = "\n".join(["0.1,0.2"] * 10_000 + ["0.1,oops"])  # fails in a late batch
    (tmp_path / "x.csv").write_text(rows + "\n")
    out = tmp_path / "y.csv"
    out.write_text("previous results\n")
    assert main(["predict", str(spiral), "--input", str(tmp_path / "x.csv"), "--output", str(out),
                 "--batch-size", "1000"]) == 1
    assert "cannot read array" in capsys.readouterr().err
    assert out.read_text() == "previous results\n" and temps(tmp_path) == []


def test_a_full_disk_is_one_line_and_leaves_nothing(spiral: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        np.save(tmp_path / "x.npy", np.zeros((100_000, 2)))
        result = run("predict", str(spiral), "--input", str(tmp_path / "x.npy"), "--output", str(tiny / "y.npy"))
        assert result.returncode == 1
        assert result.stderr == f"nnkit: error: {tiny / 'y.npy'}: cannot write: No space left on device\n"
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", str(tiny)], check=True)


def test_two_gigabytes_of_rows_in_flat_memory(tmp_path: Path) -> None:
    """A 2 GiB .npy through predict under a 1 GiB address-space limit: the input is read a
    batch at a time and the output written the same way; neither is mapped whole."""
    spec = nnkit.validate_spec({"inputs": {"x": {"shape": [512]}}, "nodes": [{"type": "Affine", "units": 4}],
                                "loss": {"type": "SoftmaxWithLoss"}})
    nnkit.save(nnkit.Network.from_spec(spec, nnkit.get_registry(), rng=np.random.default_rng(0)), tmp_path / "w.nnk")
    rows = 2**31 // (512 * 8)
    with open(tmp_path / "x.npy", "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f8", "fortran_order": False, "shape": (rows, 512)})
        f.truncate(f.tell() + rows * 512 * 8)  # a sparse file of zeros: 2 GiB without writing them
    result = run("predict", "w.nnk", "--input", "x.npy", "--output", "y.npy", cwd=tmp_path, limit_bytes=2**30)
    assert result.returncode == 0, result.stderr
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert y.shape == (rows, 4) and np.allclose(y[-1], 0.25)  # zero inputs, zero biases: uniform


def test_stdout_that_is_full_or_closed(spiral: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((200_000, 2)))
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "nnkit", "evaluate", str(spiral), "--json"], stdout=full,
                                stderr=subprocess.PIPE, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr == "nnkit: error: cannot write the output: No space left on device\n"
    shell = f"{sys.executable} -m nnkit predict {spiral} --input {tmp_path / 'x.npy'} | head -1"
    piped = subprocess.run(["bash", "-c", shell + "; echo status ${PIPESTATUS[0]}"], capture_output=True, text=True)
    assert piped.stderr == "" and piped.stdout.endswith("status 141\n")


def test_outputs_that_are_not_regular_files_are_refused(spiral: Path, tmp_path: Path, capsys) -> None:
    os.mkfifo(tmp_path / "fifo.nnk")
    (tmp_path / "folder.npy").mkdir()
    assert main(["train", str(EXAMPLES / "spiral.toml"), "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "fifo.nnk")]) == 1
    assert "fifo.nnk: cannot write: it is a FIFO (named pipe), not a regular file" in capsys.readouterr().err
    assert (tmp_path / "fifo.nnk").is_fifo()
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    assert main(["predict", str(spiral), "--input", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "folder.npy")]) == 1
    assert "folder.npy: is a folder" in capsys.readouterr().err
    model = nnkit.load(spiral)
    with pytest.raises(nnkit.CheckpointError, match="FIFO"):
        nnkit.save(model, tmp_path / "fifo.nnk")
    try:
        os.mknod(tmp_path / "null.nnk", 0o666 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
    except PermissionError:
        return  # not root: device nodes cannot be made here
    with pytest.raises(nnkit.CheckpointError, match="character device"):
        nnkit.save(model, tmp_path / "null.nnk")
    assert (tmp_path / "null.nnk").is_char_device()


@pytest.mark.parametrize(("make", "what"), [
    (lambda p: os.mkfifo(p), "is a FIFO"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.symlink_to("/dev/zero"), "is a character device"),
])
def test_inputs_say_what_they_are(spiral: Path, tmp_path: Path, make, what: str, capsys) -> None:  # type: ignore[no-untyped-def]
    for name in ("x.csv", "m.toml"):
        make(tmp_path / name)
    assert main(["predict", str(spiral), "--input", str(tmp_path / "x.csv")]) == 1
    assert f"x.csv: {what}" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "m.toml")]) == 1  # never blocks, never reads forever
    assert f"m.toml: {what}" in capsys.readouterr().err


@pytest.mark.parametrize(("array", "message"), [
    (np.float64(3.0), "holds a single value, not rows"),
    (np.array(["a", "b"]), "holds <U1 values"),
    (np.array([b"a"]), "holds |S1 values"),
    (np.zeros(2, dtype="V4"), "holds |V4 values"),
    (np.zeros((2, 2), dtype=complex), "holds complex128 values"),
    (np.array(["2024-01-01"], dtype="datetime64[D]"), "holds datetime64[D] values"),
])
def test_inputs_the_network_cannot_take(spiral: Path, tmp_path: Path, array: np.ndarray, message: str,
                                        capsys) -> None:
    np.save(tmp_path / "x.npy", array)
    assert main(["predict", str(spiral), "--input", str(tmp_path / "x.npy")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    model = nnkit.load(spiral)
    if array.ndim:
        with pytest.raises(nnkit.DataError, match="numbers"):
            model.predict(array.reshape(len(array), -1) if array.dtype.kind not in "SUV" else array)


def test_batch_sizes_must_be_positive(spiral: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    for size in ("0", "-1"):
        result = run("predict", str(spiral), "--input", str(tmp_path / "x.npy"), "--batch-size", size)
        assert result.returncode == 2 and f"--batch-size: must be at least 1, not {size}" in result.stderr
        assert result.stdout == ""


def test_embedding_ids_out_of_range_name_the_node(tmp_path: Path) -> None:
    model = nnkit.Model.from_file(EXAMPLES / "cbow.toml")
    ids = {"c0": np.array([1, -1, 2]), "c1": np.array([0, 1, 99])}
    with pytest.raises(nnkit.DataError, match=r"node 'emb0' \(Embedding\): ids must be in \[0, 18\); got -1"):
        model.predict(ids)


def test_layer_axes_are_checked_when_the_network_is_built() -> None:
    with pytest.raises(nnkit.ModelFileError, match="axis 5 is out of range for per-sample shapes of rank 1"):
        nnkit.Model.from_spec({"inputs": {"a": {"shape": [2]}, "b": {"shape": [3]}},
                               "nodes": [{"type": "Concat", "axis": 5, "inputs": ["a", "b"]}]})


def test_non_finite_params_are_saved_only_on_request(tmp_path: Path, capsys) -> None:
    x = np.random.default_rng(0).standard_normal((60, 2))
    x[5, 0] = np.inf  # one bad sample: with the guard off, NaN spreads into every param
    np.savez(tmp_path / "bad.npz", x=x, t=np.arange(60) % 3)
    model_file = tmp_path / "diverge.toml"
    model_file.write_text('[[nodes]]\ntype = "Affine"\nunits = 3\n[loss]\ntype = "SoftmaxWithLoss"\n'
                          '[data]\ntype = "file"\npath = "bad.npz"\n[train]\nnan_guard = false\nbatch_size = 10\n')
    out = tmp_path / "d.nnk"
    with np.errstate(all="ignore"):
        assert main(["train", str(model_file), "--epochs", "1", "--quiet", "--out", str(out)]) == 1
        assert "not saved: param 'affine1.W' holds non-finite values" in capsys.readouterr().err
        assert not out.exists()
        assert main(["train", str(model_file), "--epochs", "1", "--quiet", "--allow-non-finite",
                     "--out", str(out)]) == 0
    assert "saved" in capsys.readouterr().out and not np.isfinite(nnkit.load(out).params["affine1.W"]).all()


def test_a_resume_that_moves_a_cosine_horizon_says_so(tmp_path: Path, capsys) -> None:
    model_file = tmp_path / "cosine.toml"
    text = (EXAMPLES / "spiral.toml").read_text()
    model_file.write_text(text.replace('lr = 1.0', 'lr = 1.0\nschedule = { type = "cosine" }'))
    assert main(["train", str(model_file), "--epochs", "2", "--quiet", "--out", str(tmp_path / "c.nnk")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "c.nnk"), "--epochs", "4", "--quiet",
                 "--out", str(tmp_path / "c.nnk")]) == 0
    assert "the cosine schedule spanned 2 epochs and now spans 4" in capsys.readouterr().out


def test_large_inputs_are_refused_before_they_are_parsed(tmp_path: Path, capsys) -> None:
    import msgpack

    from nnkit.checkpoint.container import MAGIC
    from nnkit.checkpoint.header import MAX_ARRAYS

    big = tmp_path / "big.yaml"
    big.write_text("nodes:\n" + "  - {type: ReLU}\n" * 80_000)  # 1.3 MB of YAML, slow to parse
    assert main(["validate", str(big)]) == 1
    assert "YAML model files are capped at 1,048,576 bytes" in capsys.readouterr().err
    header = {"format": "nnkit.checkpoint", "format_version": 2, "arrays": {str(i): 0 for i in range(MAX_ARRAYS + 1)}}
    (tmp_path / "many.nnk").write_bytes(MAGIC + msgpack.packb(header))
    with pytest.raises(nnkit.CheckpointError, match=r"100,001 arrays; the cap is 100,000"):
        nnkit.inspect(tmp_path / "many.nnk")
