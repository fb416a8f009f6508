"""nnkit's built-in datasets, registered through the same hook as a plugin's: the book's
spiral, arrays from a file, scikit-learn's bundled digits, the word corpus of
`nnkit/data/corpus.py` and text files as word corpora (`nnkit/data/text.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from nnkit.config import Config
from nnkit.data import Data, Dataset
from nnkit.data.corpus import Corpus
from nnkit.data.files import Columns, check_numbers, read_table
from nnkit.data.sequences import SequenceText
from nnkit.data.text import TextCorpus
from nnkit.errors import DataError, reading
from nnkit.hookspecs import Register, hookimpl
from nnkit.paths import open_regular
from nnkit.version import install_hint

#: Generated datasets hold at most this many values, so a model file cannot ask for more
#: memory than a machine has.
MAX_GENERATED = 100_000_000


class SpiralConfig(Config):
    type: Literal["spiral"] = "spiral"
    points_per_class: int = Field(default=100, ge=1, le=1_000_000)  # the book's N
    classes: int = Field(default=3, ge=2, le=1000)  # spiral arms, one class each
    noise: float = Field(default=0.2, ge=0, le=100)  # std of the angle jitter

    @model_validator(mode="after")
    def _bounded(self) -> SpiralConfig:
        if self.points_per_class * self.classes > MAX_GENERATED:
            raise ValueError(f"points_per_class × classes may be at most {MAX_GENERATED:,}")
        return self


def spiral(rng: np.random.Generator, points_per_class: int = 100, classes: int = 3,
           noise: float = 0.2) -> Data:
    """The book's spiral: x (classes * N, 2) float64, t (classes * N,) int64, ordered by class.

    For class j and i = 0..N-1: rate = i / N, radius = rate,
    theta = 4j + 4 rate + noise * normal(), point (radius sin θ, radius cos θ).
    """
    n = points_per_class
    rate = np.arange(n) / n
    x = np.empty((classes * n, 2))
    t = np.repeat(np.arange(classes, dtype=np.int64), n)
    for j in range(classes):
        theta = 4.0 * j + 4.0 * rate + noise * rng.standard_normal(n)
        x[j * n:(j + 1) * n, 0] = rate * np.sin(theta)
        x[j * n:(j + 1) * n, 1] = rate * np.cos(theta)
    return Data(x, t)


class Spiral(Dataset):
    """The book's chapter-1 spiral dataset, drawn from the run's data generator."""

    Config = SpiralConfig
    config: SpiralConfig

    def load(self, rng: np.random.Generator) -> Data:
        c = self.config
        return spiral(rng, c.points_per_class, c.classes, c.noise)


class FileConfig(Config):
    type: Literal["file"] = "file"
    path: str = Field(min_length=1, max_length=4096)  # .npz, .npy, .csv or .parquet; relative to the model file
    label_column: int = Field(default=-1, ge=-100_000, le=100_000)  # .npy/.csv/.parquet: the column holding t
    skip_rows: int = Field(default=0, ge=0, le=1_000_000)  # .csv: lines to skip before the header or data
    labels: Literal["int", "float"] = "int"  # class indices, or real-valued targets
    header: bool | None = None  # .csv: the first line names the columns (default: detected)
    # The feature columns by name, in the network's order (default: all but the label).
    features: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(default=None, min_length=1,
                                                                                       max_length=100_000)
    label: str | None = Field(default=None, min_length=1, max_length=256)  # the target column by name


class FileDataset(Dataset):
    """Arrays from a file: `.npz` holding `x` and `t`; a table (`.npy`, `.csv` with or without
    a header, `.parquet`) with the targets in `label` (by name) or `label_column` and the
    features in `features` (by name) or every other column. Never unpickles."""

    Config = FileConfig
    config: FileConfig

    def load(self, rng: np.random.Generator) -> Data:
        c = self.config
        path = Path(c.path)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        if path.suffix.lower() == ".npz":
            with open_regular(path, DataError, "data file") as f, reading(path, DataError, "data file"), \
                    np.load(f, allow_pickle=False) as archive:
                missing = {"x", "t"} - set(archive.files)
                if missing:
                    raise ValueError(f"{path}: the archive lacks {sorted(missing)} (it has {archive.files})")
                x, t = archive["x"], archive["t"]
            check_numbers(x, f"{path}: x")
            check_numbers(t, f"{path}: t")
            return Data(x, t)
        columns = Columns(header=c.header, features=tuple(c.features) if c.features else None, label=c.label)
        x, t = read_table(path, columns, with_label=True, label_column=c.label_column, skip_rows=c.skip_rows)
        assert t is not None  # with_label
        if c.labels == "int":
            if not np.all(t == np.round(t)):
                raise ValueError(f"{path}: column {c.label or c.label_column} holds non-integer labels")
            t = t.astype(np.int64)
        return Data(x, t)


def bundled(name: str) -> Any:
    """One of scikit-learn's bundled data sets (`load_<name>()`: no download); ValueError
    naming the extra to install when scikit-learn is missing."""
    try:
        from sklearn import datasets
    except ImportError:
        raise ValueError(f"the {name} dataset needs scikit-learn: {install_hint('examples')}") from None
    return getattr(datasets, f"load_{name}")()


class DigitsConfig(Config):
    type: Literal["digits"] = "digits"
    scale: float = Field(default=1 / 16, gt=0, le=1e6)  # pixels are 0..16; the default maps them to 0..1


class Digits(Dataset):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download): x (1797, 64)
    float, t (1797,) 0..9. Needs scikit-learn: the extra `examples`."""

    Config = DigitsConfig
    config: DigitsConfig

    def load(self, rng: np.random.Generator) -> Data:
        digits = bundled("digits")
        return Data(digits.data.astype(np.float64) * self.config.scale, digits.target.astype(np.int64))


class DiabetesConfig(Config):
    type: Literal["diabetes"] = "diabetes"
    # (y - mean) / std, so that losses and learning rates work on the features' scale;
    # R² is the same either way.
    standardize_targets: bool = True


class Diabetes(Dataset):
    """scikit-learn's bundled diabetes regression data (442 patients, no download): x (442, 10)
    float, already centred and scaled; t (442, 1) disease progression after a year. Needs
    scikit-learn: the extra `examples`."""

    Config = DiabetesConfig
    config: DiabetesConfig

    def load(self, rng: np.random.Generator) -> Data:
        data = bundled("diabetes")
        t = data.target.astype(np.float64)
        if self.config.standardize_targets:
            t = (t - t.mean()) / t.std()
        return Data(data.data.astype(np.float64), t[:, None])


@hookimpl
def register_datasets(register: Register) -> None:
    register(Spiral)
    register(Corpus)
    register(TextCorpus)
    register(SequenceText)
    register(FileDataset)
    register(Digits)
    register(Diabetes)
