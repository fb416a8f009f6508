"""The layer contract, as in the book: `params` and `grads` are parallel lists of arrays.

A layer is built from its config and the per-sample shapes of its inputs (shape
inference: the model file says `units = 10`, never the input width). Shapes passed to
`build` exclude the batch axis; arrays passed to `forward` have the batch axis first.
`backward` writes into the existing grad arrays (`grad[...] = ...`) so that an
optimizer or a checkpoint holding them sees the new values without re-fetching.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from nnkit.config import Config

Shape = tuple[int, ...]
#: An initialiser: `init(rng, shape)` returns the initial values of a param.
Init = Callable[[np.random.Generator, Shape], np.ndarray]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PARAM_REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"  # "<node>.<param>"


class LayerConfig(Config):
    """Fields every node of a model file may set, besides its layer's own."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=64)
    # Names of the nodes (or network inputs) feeding this one; omitted = the previous node.
    inputs: list[str] | None = Field(default=None, max_length=64)

    # Params that are another node's: {W = "embed.W"} uses embed's W itself (one array,
    # grads summed); `tie` does the same with the transpose (the book's tied embedding).
    share: dict[Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)],
                Annotated[str, Field(pattern=PARAM_REF_PATTERN, max_length=129)]] | None = Field(
        default=None, max_length=64)
    tie: dict[Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)],
              Annotated[str, Field(pattern=PARAM_REF_PATTERN, max_length=129)]] | None = Field(
        default=None, max_length=64)

    @field_validator("inputs")
    @classmethod
    def _inputs_nonempty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("inputs must name at least one node; omit it to chain")
        return value


class Layer:
    """Base of every layer. Subclasses set `Config` and implement `build`, `forward`, `backward`."""

    Config: ClassVar[type[LayerConfig]] = LayerConfig
    #: How many inputs `forward` takes: a number, or (least, most) with most None for
    #: "any number". A loss layer's target is not counted.
    num_inputs: ClassVar[int | tuple[int, int | None]] = 1
    #: Loss layers take `forward(x, t)`, return a scalar, and `backward(dout=1.0)`.
    is_loss: ClassVar[bool] = False
    #: (config fields, per-sample input shapes) on which the contract tests check this layer;
    #: every registered layer needs at least one.
    examples: ClassVar[list[tuple[dict[str, Any], list[Shape]]]] = []

    #: False when nothing needs dL/dx (the inputs are the network's data): `backward` may
    #: then skip computing it and return None. The network sets it; checks leave it True.
    needs_input_grad: bool = True

    def __init__(
        self,
        config: LayerConfig,
        input_shapes: list[Shape],
        *,
        rng: np.random.Generator,
        dtype: np.dtype | str = "float64",
        skip_init: bool | Literal["views"] = False,
    ) -> None:
        self.config = config
        self.skip_init = skip_init
        self.rng = rng
        self.dtype = np.dtype(dtype)
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.param_names: list[str] = []
        self.input_shapes = [tuple(s) for s in input_shapes]
        self.output_shape: Shape = tuple(self.build(*self.input_shapes))

    @classmethod
    def accepts(cls, count: int) -> bool:
        """Whether `forward` takes `count` inputs."""
        if isinstance(cls.num_inputs, int):
            return count == cls.num_inputs
        least, most = cls.num_inputs
        return count >= least and (most is None or count <= most)

    def add_param(self, name: str, shape: Shape, init: Init | None = None) -> np.ndarray:
        """Add a param of `shape` in the layer's dtype, and its zeroed grad; returns the param.

        `init(rng, shape)` draws the initial values (None = zeros). It is not called when
        the network is built only to be filled from a checkpoint (`skip_init`: True
        allocates uninitialised arrays, "views" read-only stand-ins to be replaced).
        """
        shape = tuple(shape)
        if self.skip_init == "views":  # stand-ins, replaced by arrays mapped from a file
            placeholder = np.broadcast_to(np.zeros((), dtype=self.dtype), shape)
            self.params.append(placeholder)
            self.grads.append(placeholder)
            self.param_names.append(name)
            return placeholder
        if init is None:
            param = np.zeros(shape, dtype=self.dtype)
        elif self.skip_init:
            param = np.empty(shape, dtype=self.dtype)
        else:
            param = np.ascontiguousarray(init(self.rng, shape), dtype=self.dtype)
            if param.shape != shape:
                raise ValueError(f"param {name!r}: init gave shape {param.shape}, not {shape}")
        self.params.append(param)
        self.grads.append(np.zeros(shape, dtype=self.dtype))  # not zeros_like: calloc'd pages cost nothing until used
        self.param_names.append(name)
        return param

    def build(self, *input_shapes: Shape) -> Shape:
        """Create params from the per-sample input shapes; return the per-sample output shape."""
        raise NotImplementedError

    def forward(self, *xs: np.ndarray, train: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Given dL/dy, write dL/dparam into `grads` and return dL/dx (a tuple for several inputs)."""
        raise NotImplementedError

    @classmethod
    def example_inputs(
        cls, config: LayerConfig, input_shapes: list[Shape], batch: int,
        rng: np.random.Generator, dtype: np.dtype,
    ) -> list[np.ndarray]:
        """Valid inputs for contract tests; layers with integer or constrained inputs override."""
        return [rng.standard_normal((batch, *shape)).astype(dtype) for shape in input_shapes]


class LossLayer(Layer):
    """A layer that turns scores and targets into a scalar loss."""

    is_loss = True

    def forward(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:  # type: ignore[override]
        raise NotImplementedError

    def backward(self, dout: float = 1.0) -> np.ndarray:  # type: ignore[override]
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores → the model's output for users (probabilities for classifiers)."""
        raise NotImplementedError

    def last_predictions(self) -> np.ndarray | None:
        """`predict` of the scores the last `forward` saw, if the layer kept them (it saves
        the runner a second softmax per step); None = call `predict`."""
        return None

    @classmethod
    def example_targets(
        cls, config: LayerConfig, input_shape: Shape, batch: int, rng: np.random.Generator,
    ) -> np.ndarray:
        """Valid targets for contract tests."""
        raise NotImplementedError
