"""The layer contract, as in the book: `params` and `grads` are parallel lists of arrays.

A layer is built from its config and the per-sample shapes of its inputs (shape
inference: the model file says `units = 10`, never the input width). `build` *declares*
the layer's params (name, shape, initialiser) and returns the output shape; it allocates
nothing. Whoever owns the layer then gives it its arrays exactly once, through `attach`:
the network draws fresh ones, or adopts arrays copied or mapped from a checkpoint, so a
layer never needs to know how its arrays were made.

Shapes passed to `build` exclude the batch axis; arrays passed to `forward` have the batch
axis first. `backward` writes into the existing grad arrays (`grad[...] = ...`) so that an
optimizer or a checkpoint holding them sees the new values without re-fetching.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from nnkit.config import Config
from nnkit.names import NAME_PATTERN, PARAM_REF_PATTERN

Shape = tuple[int, ...]
#: An initialiser: `init(rng, shape)` returns the initial values of a param.
Init = Callable[[np.random.Generator, Shape], np.ndarray]
#: What `backward` returns: dL/dx for one input, a tuple for several (None for an input
#: that has no gradient, such as integer ids, or when `needs_input_grad` is False).
InputGrads = np.ndarray | tuple[np.ndarray | None, ...] | None

_ParamName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
_ParamRefText = Annotated[str, Field(pattern=PARAM_REF_PATTERN, max_length=129)]


class LayerConfig(Config):
    """Fields every node of a model file may set, besides its layer's own."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=64)  # default <type><n>; params: "<name>.W"
    # Names of the nodes (or network inputs) feeding this one; omitted = the previous node.
    inputs: list[str] | None = Field(default=None, max_length=64)

    # Params that are another node's: {W = "embed.W"} uses embed's W itself (one array,
    # grads summed); `tie` does the same with the transpose (the book's tied embedding).
    share: dict[_ParamName, _ParamRefText] | None = Field(default=None, max_length=64)
    tie: dict[_ParamName, _ParamRefText] | None = Field(default=None, max_length=64)  # {W = "emb.W"}: its transpose

    @field_validator("inputs")
    @classmethod
    def _inputs_nonempty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("inputs must name at least one node; omit it to chain")
        return value


@dataclass(frozen=True)
class ParamDecl:
    """A param as a layer declares it: its name within the layer, its shape, and how its
    first values are drawn (`init(rng, shape)`; None = zeros)."""

    name: str
    shape: Shape
    init: Init | None = None

    def fresh(self, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
        """New values for this param in `dtype`, drawn from `rng`."""
        if self.init is None:
            return np.zeros(self.shape, dtype=dtype)
        value = np.ascontiguousarray(self.init(rng, self.shape), dtype=dtype)
        if value.shape != self.shape:
            raise ValueError(f"param {self.name!r}: init gave shape {value.shape}, not {self.shape}")
        return value


class Layer:
    """Base of every layer. Subclasses set `Config` and implement `build`, `forward` and
    `backward` with the signatures their layer needs:

        build(self, *input_shapes: Shape) -> Shape
        forward(self, *xs: np.ndarray, train: bool = False) -> np.ndarray
        backward(self, dy: np.ndarray) -> InputGrads

    (The base declares them with `*args, **kwargs` so that a layer of one input may write
    `build(self, in_shape)`; the contract above is what nnkit calls.)
    """

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
    #: The generator the layer draws randomness from (dropout masks); set by `attach`.
    rng: np.random.Generator

    def __init__(self, config: LayerConfig, input_shapes: Sequence[Shape], *, dtype: np.dtype | str = "float64",
                 rng: np.random.Generator | None = None) -> None:
        """Build the layer: declare its params and infer its output shape.

        With `rng` the layer also gets fresh arrays at once (a layer used on its own, as in
        tests); without it, its owner (the network) calls `attach` before the first forward.
        """
        self.config = config
        self.dtype = np.dtype(dtype)
        self.declared: list[ParamDecl] = []
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.input_shapes: list[Shape] = [tuple(s) for s in input_shapes]
        #: Further outputs besides the main one: port → per-sample shape, declared in
        #: `build` with `add_output`; a model file takes one as "<node>.<port>".
        self.ports: dict[str, Shape] = {}
        #: What the last forward gave at each port, (N, *shape); set by `forward`.
        self.port_values: dict[str, np.ndarray] = {}
        #: dL/d(port) for the next `backward`, set by the network; a port missing is zero.
        self.port_grads: dict[str, np.ndarray] = {}
        self.output_shape: Shape = tuple(self.build(*self.input_shapes))
        if rng is not None:
            self.attach([d.fresh(rng, self.dtype) for d in self.declared],
                        [np.zeros(d.shape, dtype=self.dtype) for d in self.declared], rng)

    @classmethod
    def accepts(cls, count: int) -> bool:
        """Whether `forward` takes `count` inputs."""
        if isinstance(cls.num_inputs, int):
            return count == cls.num_inputs
        least, most = cls.num_inputs
        return count >= least and (most is None or count <= most)

    @property
    def param_names(self) -> list[str]:
        """The declared params' names, parallel to `params` and `grads`."""
        return [d.name for d in self.declared]

    def add_param(self, name: str, shape: Shape, init: Init | None = None) -> None:
        """Declare a param of `shape` (in the layer's dtype) and its grad; call from `build`.

        `init(rng, shape)` draws the initial values (None = zeros). Nothing is allocated
        here: the arrays arrive through `attach`, in the order of declaration.
        """
        self.declared.append(ParamDecl(name, tuple(map(int, shape)), init))

    def add_output(self, port: str, shape: Shape) -> None:
        """Declare a further output (a recurrent layer's final state "h"); call from `build`."""
        self.ports[port] = tuple(int(s) for s in shape)

    def attach(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], rng: np.random.Generator) -> None:
        """Give the layer its arrays, once: one param and one grad per declaration, of the
        declared shape, and the generator it draws randomness from (dropout masks)."""
        if self.params:
            raise RuntimeError(f"{type(self).__name__}: arrays are attached once")
        if len(params) != len(self.declared) or len(grads) != len(self.declared):
            raise ValueError(f"{type(self).__name__}: {len(self.declared)} params declared, "
                             f"{len(params)} params and {len(grads)} grads given")
        for decl, param, grad in zip(self.declared, params, grads):
            if param.shape != decl.shape or grad.shape != decl.shape:
                raise ValueError(f"param {decl.name!r}: arrays {param.shape} / {grad.shape} given for {decl.shape}")
        self.params, self.grads, self.rng = list(params), list(grads), rng

    def build(self, *args: Any, **kwargs: Any) -> Shape:
        """Declare params from the per-sample input shapes; return the per-sample output shape."""
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """(N, ...) inputs → (N, *output_shape); `train` is True during `fit`."""
        raise NotImplementedError

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        """Given dL/dy, write dL/dparam into `grads` and return dL/dx (`InputGrads`)."""
        raise NotImplementedError

    # -- state carried between batches (stateful recurrent layers, truncated BPTT) -------

    #: Whether the layer can carry state from one forward to the next (a recurrent
    #: layer's h and c); `carries_state` says whether it does now.
    can_carry_state: ClassVar[bool] = False
    carries_state: bool = False

    def state(self) -> dict[str, np.ndarray]:
        """What the layer carries into its next forward, by name ((N, H) arrays for a
        recurrent layer); empty when it carries nothing."""
        return {}

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Continue from `state`, as `state()` gave it; an empty mapping forgets."""
        if state:
            raise ValueError(f"{type(self).__name__} carries no state; given {sorted(state)}")

    def reset_state(self) -> None:
        """Forget what is carried: the next forward starts from zero (the book's reset_state)."""
        self.set_state({})

    @classmethod
    def example_inputs(
        cls, config: Any, input_shapes: list[Shape], batch: int,
        rng: np.random.Generator, dtype: np.dtype,
    ) -> list[np.ndarray]:
        """Valid inputs for contract tests; layers with integer or constrained inputs override."""
        return [rng.standard_normal((batch, *shape)).astype(dtype) for shape in input_shapes]


class LossLayer(Layer):
    """A layer that turns scores and targets into a scalar loss:

        forward(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float
        backward(self, dout: float = 1.0) -> np.ndarray
    """

    is_loss = True
    #: The metrics a model file with this loss reports when it names none.
    default_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores → the model's output for users (probabilities for classifiers)."""
        raise NotImplementedError

    def last_accuracy(self) -> float | None:
        """Accuracy of the last forward, if the layer can tell from what it computed
        anyway (saves the accuracy metric a pass per step); None = compute it."""
        return None

    def prepare(self, t: np.ndarray) -> None:
        """Called with the training targets before each `fit`, for a loss that needs their
        statistics (negative sampling's word frequencies); most need nothing."""

    def last_predictions(self) -> np.ndarray | None:
        """`predict` of the scores the last `forward` saw, if the layer kept them (it saves
        the runner a second softmax per step); None = call `predict`."""
        return None

    @classmethod
    def example_targets(cls, config: Any, input_shape: Shape, batch: int, rng: np.random.Generator) -> np.ndarray:
        """Valid targets for contract tests."""
        raise NotImplementedError
