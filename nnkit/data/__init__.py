"""Data: what a dataset gives (`Data`: inputs and targets), the `Dataset` base that plugins
subclass, and row helpers for inputs that are one array or several named ones.

The built-in datasets live in `nnkit/data/builtin.py` (spiral, file, digits) and
`nnkit/data/corpus.py`; `nnkit/data/recipe.py` loads what a spec's recipe names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nnkit.config import Config
from nnkit.errors import DataError

#: A network's inputs: one (N, ...) array, or (N, ...) arrays by input name.
Inputs = np.ndarray | Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Data:
    """x: (N, ...) inputs, or a mapping of input name → (N, ...) for networks with several;
    t: (N, ...) targets (class indices or one-hot)."""

    x: Inputs
    t: np.ndarray
    #: The words of integer ids (position = id), when the data is a word corpus: kept with
    #: the network's integer inputs, so that a checkpoint maps ids to words by itself.
    vocabulary: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.t)


class Dataset:
    """Base of every dataset. Subclasses set `Config` and implement `load`."""

    Config: ClassVar[type[Config]]

    def __init__(self, config: Any) -> None:
        self.config = config
        #: The folder of the model file that names this dataset: relative paths start there
        #: (set by whoever loads the recipe; None = the current folder).
        self.base_dir: Path | None = None
        #: For held-out data: the training data's vocabulary (position = id), which a word
        #: corpus maps its words through; None = the dataset makes its own.
        self.known: tuple[str, ...] | None = None

    def load(self, rng: np.random.Generator) -> Data:
        """Make or read the data; any randomness comes from `rng`."""
        raise NotImplementedError


def count_rows(x: Inputs) -> int:
    """The number of samples in an input array, or in each named input (they must agree)."""
    lengths = {len(a) for a in (x.values() if isinstance(x, Mapping) else [x])}
    if len(lengths) != 1:
        raise DataError(f"the inputs have different numbers of samples: {sorted(lengths)}")
    return lengths.pop()


def take_rows(x: Inputs, index: Any) -> Inputs:
    """Rows `index` of the input array, or of each named input."""
    if type(x) is np.ndarray:  # the common case, without the Mapping check's cost every step
        return x[index]
    return {k: v[index] for k, v in x.items()} if isinstance(x, Mapping) else x[index]


def split_data(data: Data, fraction: float, rng: np.random.Generator) -> tuple[Data, Data]:
    """(training part, held-out part): a seeded shuffle, then the last `fraction` held out."""
    n = len(data)
    held = max(1, int(round(n * fraction)))
    if held >= n:
        raise DataError(f"a validation split of {fraction} leaves no training data from {n} samples")
    order = rng.permutation(n)
    train, valid = np.sort(order[:n - held]), np.sort(order[n - held:])
    return Data(take_rows(data.x, train), data.t[train]), Data(take_rows(data.x, valid), data.t[valid])
