"""The data a spec's recipe names: `[data]`, less a `[validation]` split or beside a
validation dataset of its own, made on first use from the run's seeded streams."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnkit.data import Data, split_data
from nnkit.errors import DataError
from nnkit.registry import Registry
from nnkit.spec import InputSpec, Spec


class RecipeData:
    """The training and validation data of `spec`. Each dataset draws from its own stream
    of the run's seed, so the same seed always gives the same data, resumed or not."""

    def __init__(self, spec: Spec, registry: Registry, source: str, rngs: Mapping[str, np.random.Generator], *,
                 confine: bool = False) -> None:
        """`confine`: the recipe comes from a file nnkit did not get from the user (a
        checkpoint's stored spec): its data paths must stay inside that file's folder."""
        self.spec, self.registry, self.source, self.rngs = spec, registry, source, rngs
        #: Relative data paths start at the folder of the model file that names them.
        self.base_dir = Path(source).parent if source and not source.startswith("<") else None
        self.confine = confine
        self._all: Data | None = None
        self._split: tuple[Data, Data | None] | None = None

    @property
    def all(self) -> Data:
        """What `[data]` names, whole."""
        if self._all is None:
            if self.spec.data is None:
                raise DataError(f"{self.source}: its recipe names no [data]: pass some (--data FILE on the command "
                                "line, x and y from Python)")
            self._all = self._load(self.spec.data, "data")
        return self._all

    def _load(self, config: Any, stream: str, known: tuple[str, ...] | None = None) -> Data:
        path = getattr(config, "path", None)
        if self.confine and isinstance(path, str):
            folder = (self.base_dir or Path(".")).resolve()
            if not (folder / path).resolve().is_relative_to(folder):
                raise DataError(f"{self.source}: the stored recipe's data path {path!r} leads outside the "
                                f"checkpoint's folder {folder}; pass the data yourself (nnkit evaluate --data FILE)")
        dataset = self.registry.get("dataset", config.type).cls(config)
        dataset.base_dir, dataset.known = self.base_dir, known
        try:
            return dataset.load(self.rngs[stream])
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.source}: dataset {config.type!r}: {exc}") from None

    def _splits(self) -> tuple[Data, Data | None]:
        if self._split is None:
            v = self.spec.validation
            if v is None:
                self._split = (self.all, None)
            elif v.data is not None:
                self._split = (self.all, self._load(v.data, "validation", known=self.all.vocabulary))
            else:
                assert v.split is not None  # ValidationBase: one of the two
                self._split = split_data(self.all, v.split, self.rngs["split"])
        return self._split

    @property
    def train(self) -> Data:
        """What training uses: `[data]` less any validation split."""
        return self._splits()[0]

    @property
    def validation(self) -> Data | None:
        """The held-out data: a split of `[data]`, or a dataset of its own; None without `[validation]`."""
        return self._splits()[1]


def inputs_like(data: Data, time_size: int | None = None) -> dict[str, InputSpec]:
    """Network inputs shaped like the data's samples: `x`, or the data's own names; with
    `time_size` (train.bptt) one input of windows of that many ids."""
    arrays = data.x if isinstance(data.x, Mapping) else {"x": data.x}
    if time_size is not None:
        return {name: InputSpec(shape=[time_size], dtype="int") for name in arrays}
    return {name: InputSpec(shape=list(a.shape[1:]), dtype="int" if np.issubdtype(a.dtype, np.integer) else "float")
            for name, a in arrays.items()}


def with_vocabulary(inputs: Mapping[str, InputSpec], vocabulary: tuple[str, ...]) -> dict[str, InputSpec] | None:
    """The inputs with `vocabulary` on each "int" one that has none; None when none changes."""
    changed = {name: InputSpec.model_validate({**spec.model_dump(), "vocabulary": list(vocabulary)})
               for name, spec in inputs.items() if spec.dtype == "int" and spec.vocabulary is None}
    return {**inputs, **changed} if changed else None
