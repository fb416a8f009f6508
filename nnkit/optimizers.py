"""Optimizers: `update(params, grads)` changes params in place, as in the book.

State that an optimizer keeps per param (none for SGD) is listed by `state_arrays` under
the param's name, so that a checkpoint can store it and training can resume exactly.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from nnkit.config import Config
from nnkit.hookspecs import Register, hookimpl


class Optimizer:
    """Base of every optimizer. Subclasses set `Config` and implement `update`."""

    Config: ClassVar[type[Config]]

    def __init__(self, config: Config) -> None:
        self.config = config
        self.iterations = 0  # number of `update` calls so far

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Apply one step in place; `params[i]` and `grads[i]` belong together."""
        raise NotImplementedError

    def state_arrays(self, names: list[str]) -> dict[str, np.ndarray]:
        """Per-param state keyed `"<param name>/<slot>"`; `names` parallels `params`."""
        return {}

    def load_state_arrays(self, names: list[str], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `state_arrays` returned."""


class SGDConfig(Config):
    type: Literal["SGD"] = "SGD"
    lr: float = Field(default=0.01, gt=0, le=1e6)  # the book's default learning rate


class SGD(Optimizer):
    """param -= lr * grad."""

    Config = SGDConfig
    config: SGDConfig

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        lr = self.config.lr
        for param, grad in zip(params, grads):
            param -= lr * grad
        self.iterations += 1


@hookimpl
def register_optimizers(register: Register) -> None:
    register(SGD)
