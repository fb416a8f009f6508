"""Inputs and targets as users have them: NumPy arrays, lists, or pandas DataFrames and
Series (recognised by their attributes; pandas is never imported here).

A DataFrame's column names are kept with the network's input (`InputSpec.columns`) when it
is first fitted; a later frame whose columns are the same names in another order is
realigned by name, and one with missing or unknown names is refused, naming them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nnkit.data import Inputs
from nnkit.errors import DataError


def is_frame(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame (or quacks like one)."""
    return hasattr(value, "columns") and hasattr(value, "to_numpy") and hasattr(value, "iloc")


def is_series(value: Any) -> bool:
    return hasattr(value, "to_numpy") and hasattr(value, "name") and not hasattr(value, "columns")


def column_names(frame: Any) -> list[str]:
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise DataError(f"the frame's column names repeat: {names}")
    return names


def aligned(frame: Any, expected: Sequence[str] | None) -> np.ndarray:
    """A frame's values, its columns in `expected` order (None: as they come)."""
    names = column_names(frame)
    if expected is None or names == list(expected):
        return np.asarray(frame.to_numpy())
    missing = [c for c in expected if c not in names]
    unknown = [c for c in names if c not in expected]
    if missing or unknown:
        parts = [f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else ""]
        raise DataError(f"the frame's columns do not match those the model was fitted on "
                        f"({'; '.join(p for p in parts if p)}); expected {list(expected)}")
    return np.asarray(frame[list(expected)].to_numpy())


def as_inputs(x: Any, columns: Sequence[str] | None = None) -> Inputs:
    """`x` as the network's inputs: an array, a dict of arrays, or a DataFrame (realigned
    to `columns`) or Series (one feature)."""
    if isinstance(x, Mapping):
        return {str(k): np.asarray(v.to_numpy() if is_series(v) else v) for k, v in x.items()}
    if is_frame(x):
        return _numeric(aligned(x, columns), "x")
    if is_series(x):
        return _numeric(np.asarray(x.to_numpy())[:, None], "x")
    return _numeric(np.asarray(x), "x")


def as_targets(y: Any) -> np.ndarray:
    """`y` as an array of numbers: class indices, one-hot rows or real values."""
    values = np.asarray(y.to_numpy() if (is_series(y) or is_frame(y)) else y)
    return _numeric(values, "y")


def _numeric(values: np.ndarray, what: str) -> np.ndarray:
    if values.dtype.kind in "OUSV":  # strings, objects, raw bytes
        raise DataError(f"{what} must hold numbers, not {values.dtype} values; for labels such as strings use "
                        "nnkit.sklearn.NNKitClassifier, which maps them to classes")
    if values.dtype.kind in "cmM":
        raise DataError(f"{what} must hold real numbers, not {values.dtype}")
    return values
