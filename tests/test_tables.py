"""Data as users have it: CSV with a header and columns chosen by name, Parquet read a row
group at a time, and CSV on standard input for `nnkit predict` in a pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnkit
from nnkit.data.files import Columns, batches, read_table, row_count
from nnkit.inference import predict_file

from .conftest import EXAMPLES

CLI = [sys.executable, "-m", "nnkit"]
X = np.random.default_rng(3).standard_normal((250, 2))
T = np.arange(250) % 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "s.nnk"
    model = nnkit.Model.from_file(EXAMPLES / "spiral.toml", epochs=3)
    model.fit(verbose=False)
    model.save(path)
    return path


def write_csv(path: Path, header: str | None, columns: list[np.ndarray]) -> Path:
    np.savetxt(path, np.column_stack(columns), delimiter=",", fmt="%.17g",
               header=header or "", comments="")
    if header is None:  # savetxt writes an empty first line for an empty header
        path.write_text(path.read_text().lstrip("\n"))
    return path


def test_a_header_row_is_detected_and_columns_go_by_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "y,f2,f1", [T, X[:, 1], X[:, 0]])
    x, t = read_table(path, Columns(features=("f1", "f2"), label="y"), with_label=True)
    assert np.array_equal(x, X) and t is not None and np.array_equal(t, T)
    plain = write_csv(tmp_path / "plain.csv", None, [X[:, 0], X[:, 1], T])
    x, t = read_table(plain, Columns(), with_label=True)  # no header: the label is the last column
    assert np.array_equal(x, X) and t is not None and np.array_equal(t, T)
    assert row_count(path) == row_count(plain) == 250


def test_header_can_be_forced_either_way(tmp_path: Path) -> None:
    numeric_names = tmp_path / "n.csv"
    numeric_names.write_text("1,2\n3,4\n5,6\n")
    x, _ = read_table(numeric_names, Columns(header=True, features=("2",)), with_label=False)
    assert x.tolist() == [[4.0], [6.0]]
    words = tmp_path / "w.csv"
    words.write_text("a,b\n1,2\n")
    with pytest.raises(nnkit.DataError, match="w.csv: cannot read array"):
        read_table(words, Columns(header=False), with_label=False)


@pytest.mark.parametrize(("columns", "message"), [
    (Columns(features=("f1", "f3")), r"no column 'f3'; did you mean 'f2', 'f1'\? \(columns: f1, f2, y\)"),
    (Columns(label="target"), r"no column 'target'"),
])
def test_a_missing_column_is_named(columns: Columns, message: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "f1,f2,y", [X[:, 0], X[:, 1], T])
    with pytest.raises(nnkit.DataError, match=f"d.csv: {message}"):
        read_table(path, columns, with_label=True)
    with pytest.raises(nnkit.DataError, match=f"d.csv: {message}"):
        batches(path, 10, columns)


def test_names_need_a_header_and_headers_must_fit(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "p.csv", None, [X[:, 0], X[:, 1]])
    with pytest.raises(nnkit.DataError, match="p.csv: has no header row naming its columns, so columns 'f1'"):
        read_table(plain, Columns(features=("f1",)), with_label=False)
    short = tmp_path / "s.csv"
    short.write_text("a,b,c\n1,2\n")
    with pytest.raises(nnkit.DataError, match="s.csv: the header names 3 columns, the rows have 2"):
        read_table(short, Columns(), with_label=False)
    twice = tmp_path / "t.csv"
    twice.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(nnkit.DataError, match="t.csv: the header names columns more than once: 'a'"):
        read_table(twice, Columns(), with_label=False)


def test_predict_on_a_headed_csv_equals_predict_on_the_array(checkpoint: Path, tmp_path: Path) -> None:
    network = nnkit.load(checkpoint, grads=False).network
    path = write_csv(tmp_path / "d.csv", "id,f2,f1", [np.arange(250), X[:, 1], X[:, 0]])
    assert predict_file(network, path, tmp_path / "y.npy", batch_size=32, columns=Columns(features=("f1", "f2"))) \
        == 250
    assert np.array_equal(np.load(tmp_path / "y.npy"), network.predict(X))


def test_a_headed_table_of_the_wrong_width_says_how_to_choose(checkpoint: Path, tmp_path: Path) -> None:
    network = nnkit.load(checkpoint, grads=False).network
    path = write_csv(tmp_path / "d.csv", "f1,f2,y", [X[:, 0], X[:, 1], T])
    with pytest.raises(nnkit.DataError, match=r"d.csv: 3 columns \(f1, f2, y\), but the network takes 2 values per "
                                              r"row; choose the feature columns by name \(--features"):
        predict_file(network, path, tmp_path / "y.npy")
    assert not (tmp_path / "y.npy").exists()


def test_a_model_fitted_on_a_frame_picks_its_columns_from_a_header(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"f1": X[:, 0], "f2": X[:, 1]})
    model = nnkit.Model.from_file(EXAMPLES / "spiral.toml", epochs=1)
    model.fit(frame, T, verbose=False)
    model.save(tmp_path / "frame.nnk")
    path = write_csv(tmp_path / "d.csv", "f2,extra,f1", [X[:, 1], np.zeros(250), X[:, 0]])
    predict_file(nnkit.load(tmp_path / "frame.nnk").network, path, tmp_path / "y.npy")
    assert np.array_equal(np.load(tmp_path / "y.npy"), model.predict(frame))


pyarrow = pytest.importorskip("pyarrow")
parquet = pytest.importorskip("pyarrow.parquet")


def write_parquet(path: Path, row_group_size: int = 64, **columns: object) -> Path:
    parquet.write_table(pyarrow.table(columns or {"f1": X[:, 0], "f2": X[:, 1], "y": T}), path,
                        row_group_size=row_group_size)
    return path


def test_parquet_is_read_whole_and_a_row_group_at_a_time(checkpoint: Path, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "d.parquet")
    x, t = read_table(path, Columns(label="y"), with_label=True)
    assert np.array_equal(x, X) and t is not None and np.array_equal(t, T)
    with batches(path, 50, Columns(features=("f2", "f1"))) as chunks:
        sizes = [c.shape for c in chunks]
    assert sizes == [(50, 2)] * 5
    assert row_count(path) == 250
    network = nnkit.load(checkpoint, grads=False).network
    predict_file(network, path, tmp_path / "y.npy", batch_size=40, columns=Columns(features=("f1", "f2")))
    assert np.array_equal(np.load(tmp_path / "y.npy"), network.predict(X))


@pytest.mark.parametrize(("columns", "message"), [
    ({"f1": ["a", "b"]}, "column 'f1' holds string values; nnkit takes real numbers"),
    ({"f1": [1.0, None]}, "column 'f1' has 1 missing values"),
])
def test_parquet_columns_must_hold_numbers(columns: dict, message: str, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "d.parquet", **columns)
    with pytest.raises(nnkit.DataError, match=message):
        read_table(path, Columns(), with_label=False)
    with pytest.raises(nnkit.DataError, match=message), batches(path, 10) as chunks:
        list(chunks)


def test_a_damaged_parquet_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(nnkit.DataError, match="bad.parquet: not a readable Parquet file"):
        read_table(path, Columns(), with_label=False)


def test_the_file_dataset_reads_headers_and_parquet_by_name(tmp_path: Path) -> None:
    write_csv(tmp_path / "d.csv", "f1,label,f2", [X[:, 0], T, X[:, 1]])
    write_parquet(tmp_path / "d.parquet")
    text = (EXAMPLES / "spiral.toml").read_text()
    start = text.index("[data]")
    end = text.index("[", start + 1)
    for data in ('[data]\ntype = "file"\npath = "d.csv"\nfeatures = ["f1", "f2"]\nlabel = "label"\n\n',
                 '[data]\ntype = "file"\npath = "d.parquet"\nlabel = "y"\n\n'):
        model_file = tmp_path / "m.toml"
        model_file.write_text(text[:start] + data + text[end:])
        model = nnkit.Model.from_file(model_file)
        assert np.array_equal(model.data.x, X) and np.array_equal(model.data.t, T)


def test_predict_in_a_shell_pipeline(checkpoint: Path, tmp_path: Path) -> None:
    csv = "".join(f"{a!r},{b!r}\n" for a, b in X.tolist())
    done = subprocess.run([*CLI, "predict", str(checkpoint), "--input", "-", "--output", "-"], input=csv,
                          capture_output=True, text=True, check=True)
    network = nnkit.load(checkpoint, grads=False).network
    got = np.loadtxt(done.stdout.splitlines(), delimiter=",")
    np.testing.assert_allclose(got, network.predict(X), rtol=1e-7)  # printed with 8 significant digits
    headed = "f1,f2\n" + csv * 200  # 50,000 rows: more than a closed pipe's buffer
    shell = f"{sys.executable} -m nnkit predict {checkpoint} --input - | head -1"
    ended = subprocess.run(shell, shell=True, input=headed, capture_output=True, text=True, check=True)
    assert len(ended.stdout.splitlines()) == 1 and ended.stderr == ""


def test_evaluate_a_parquet_file_by_label_name(checkpoint: Path, tmp_path: Path) -> None:
    write_parquet(tmp_path / "d.parquet")
    done = subprocess.run([*CLI, "evaluate", str(checkpoint), "--data", "d.parquet", "--label", "y"],
                          cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("data: loss") and "(250 samples)" in done.stdout
    missing = subprocess.run([*CLI, "evaluate", str(checkpoint), "--data", "d.parquet", "--label", "z"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr == "nnkit: error: d.parquet: no column 'z' (columns: f1, f2, y)\n"


def _peak_mib_of_predict(checkpoint: Path, path: Path, tmp_path: Path) -> float:
    """The high-water mark of a fresh process's memory (VmHWM: of this process image
    alone, unlike ru_maxrss, which a child inherits from its parent) over a predict."""
    script = f"""
from nnkit.cli import main
assert main(['predict', {str(checkpoint)!r}, '--input', {str(path)!r}, '--output', 'out.npy']) == 0
print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_parquet_predict_stays_in_flat_memory(checkpoint: Path, tmp_path: Path) -> None:
    """2,000,000 rows (32 MB of features, 48 MB of outputs) take no more memory than
    20,000: the file is read a row group at a time and nothing read ahead is kept."""
    rng = np.random.default_rng(0)
    for rows in (20_000, 2_000_000):
        x = rng.standard_normal((rows, 2))
        parquet.write_table(pyarrow.table({"f1": x[:, 0], "f2": x[:, 1]}), tmp_path / f"{rows}.parquet",
                            row_group_size=65_536)
    small = _peak_mib_of_predict(checkpoint, tmp_path / "20000.parquet", tmp_path)
    large = _peak_mib_of_predict(checkpoint, tmp_path / "2000000.parquet", tmp_path)
    assert large - small < 16, f"peak {small:.0f} MiB for 20,000 rows, {large:.0f} MiB for 2,000,000"
