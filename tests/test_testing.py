"""The checker itself: it must catch the bugs it exists to catch."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from nnkit.layers.linear import Affine, AffineConfig
from nnkit.layers.reduce import Sum, SumConfig
from nnkit.testing import check_layer, numeric_gradient, relative_error


class SeedSumConfig(SumConfig):
    type: Literal["SeedSum"] = "SeedSum"  # type: ignore[assignment]


class SeedSum(Sum):
    """The seed notes' Sum, whose backward repeats x instead of dy."""

    Config = SeedSumConfig

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self.x = x
        return super().forward(x, train)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.x.copy()  # the typo: x where the repeated dy belongs


class AccumulatingConfig(AffineConfig):
    type: Literal["Accumulating"] = "Accumulating"  # type: ignore[assignment]


class Accumulating(Affine):
    """Adds into its grads instead of overwriting them."""

    Config = AccumulatingConfig

    def backward(self, dy: np.ndarray) -> np.ndarray:
        W, _ = self.params
        self.grads[0] += self.x.T @ dy
        self.grads[1] += dy.sum(axis=0)
        return dy @ W.T


class ReplacingConfig(AffineConfig):
    type: Literal["Replacing"] = "Replacing"  # type: ignore[assignment]


class Replacing(Affine):
    """Rebinds its grad arrays, so an optimizer holding the old ones sees nothing."""

    Config = ReplacingConfig

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.grads = [self.x.T @ dy, dy.sum(axis=0)]
        return dy @ self.params[0].T


def test_checker_catches_the_seed_sum_typo() -> None:
    with pytest.raises(AssertionError, match="input 0 gradient"):
        check_layer(SeedSum, {}, [(4, 3)], round_trip=False)


def test_checker_catches_accumulating_grads() -> None:
    with pytest.raises(AssertionError, match="accumulates"):
        check_layer(Accumulating, {"units": 2}, [(3,)], round_trip=False)


def test_checker_catches_replaced_grad_arrays() -> None:
    with pytest.raises(AssertionError, match="replaced grad arrays"):
        check_layer(Replacing, {"units": 2}, [(3,)], round_trip=False)


class WrongShapeConfig(SumConfig):
    type: Literal["WrongShape"] = "WrongShape"  # type: ignore[assignment]


class WrongShape(Sum):
    """Promises its input shape, but forward sums an axis away."""

    Config = WrongShapeConfig

    def build(self, in_shape):  # type: ignore[no-untyped-def]
        super().build(in_shape)
        return in_shape


def test_checker_catches_a_wrong_output_shape() -> None:
    with pytest.raises(AssertionError, match="build promised"):
        check_layer(WrongShape, {}, [(4, 3)], round_trip=False)


def test_numeric_gradient_of_a_quadratic() -> None:
    x = np.array([1.0, -2.0, 3.0])
    grad = numeric_gradient(lambda: float(np.sum(x**2)), x)
    assert relative_error(2 * x, grad) < 1e-8
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
