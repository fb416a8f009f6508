"""Optimizers: `update(params, grads)` changes params in place, as in the book.

Every optimizer takes `lr` (scaled by an optional schedule and linear warm-up) and
`weight_decay` (L2: added to the gradient; AdamW decouples it). Per-param state (velocity,
moments) is exposed by `state_arrays` under the param's name, so that a checkpoint stores
it and training resumes exactly. Updates never allocate per step beyond small scratch
buffers kept per param, and keep every array in the param's dtype.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from nnkit.config import Config
from nnkit.hookspecs import Register, hookimpl
from nnkit.optim.schedules import ConstantSchedule, Schedule

EPS = 1e-7  # the book's epsilon


class OptimizerConfig(Config):
    """Settings every optimizer shares."""

    lr: float = Field(default=0.01, gt=0, le=1e6)  # the book's default learning rate
    weight_decay: float = Field(default=0.0, ge=0, le=1e3)  # L2 coefficient
    schedule: Schedule = ConstantSchedule()  # a factor on lr by step: constant, step, exponential, cosine
    warmup_steps: int = Field(default=0, ge=0, le=2**31 - 1)  # linear warm-up, in steps


class Optimizer:
    """Base of every optimizer. Subclasses set `Config`, `slots`, and implement `step`."""

    Config: ClassVar[type[OptimizerConfig]] = OptimizerConfig
    #: Names of the per-param state arrays, each shaped like its param.
    slots: ClassVar[tuple[str, ...]] = ()
    #: The layout of that state; a plugin raises it whenever the slots change name, shape
    #: or meaning, so that a checkpoint of another layout is refused naming both versions.
    state_version: ClassVar[int] = 1

    def __init__(self, config: OptimizerConfig) -> None:
        self.config = config
        self.iterations = 0  # number of `update` calls so far
        self.total_steps = 1  # set by the runner so that schedules know the run's length
        #: A factor on every step's lr that callbacks may change (reduce_on_plateau), kept
        #: in their own state.
        self.lr_scale = 1.0
        self.state: list[dict[str, np.ndarray]] | None = None
        self._scratch: list[np.ndarray] = []

    def lr_at(self, step: int) -> float:
        """The learning rate for update number `step` (from 0)."""
        c = self.config
        if c.warmup_steps == 0 and c.schedule.type == "constant":
            return c.lr * self.lr_scale
        factor = c.schedule.factor(step, self.total_steps)
        if c.warmup_steps:
            factor *= min(1.0, (step + 1) / c.warmup_steps)
        return c.lr * factor * self.lr_scale

    def _ensure_state(self, params: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        if self.state is None or len(self.state) != len(params):
            self.state = [{slot: np.zeros_like(p) for slot in (*self.slots, "_scratch")} for p in params]
            self._scratch = [s["_scratch"] for s in self.state]  # for update loops that need only these
        return self.state

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Apply one step in place; `params[i]` and `grads[i]` belong together."""
        lr = self.lr_at(self.iterations)
        self.iterations += 1
        states = self._ensure_state(params)
        wd = self.config.weight_decay
        for param, grad, state in zip(params, grads, states):
            if wd and not self.decoupled_decay:
                grad = np.add(grad, wd * param, out=state["_scratch"])
            self.step(param, grad, state, lr)

    decoupled_decay: ClassVar[bool] = False

    def step(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        raise NotImplementedError

    def state_arrays(self, names: list[str]) -> dict[str, np.ndarray]:
        """Per-param state keyed `"<param name>/<slot>"`; `names` parallels `params`."""
        if self.state is None:
            return {}
        return {f"{name}/{slot}": state[slot] for name, state in zip(names, self.state) for slot in self.slots}

    def load_state_arrays(self, names: list[str], arrays: dict[str, np.ndarray],
                          params: list[np.ndarray] | None = None) -> None:
        """Restore what `state_arrays` returned (nothing stored = a fresh optimizer)."""
        if not arrays or params is None:
            return
        self.state = None  # fresh buffers shaped like these params
        for name, state in zip(names, self._ensure_state(params)):
            for slot in self.slots:
                state[slot][...] = arrays[f"{name}/{slot}"]


class SGDConfig(OptimizerConfig):
    type: Literal["SGD"] = "SGD"


class SGD(Optimizer):
    """param -= lr * grad."""

    Config = SGDConfig

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if self.config.weight_decay:
            return super().update(params, grads)
        lr = self.lr_at(self.iterations)
        self.iterations += 1
        # The book's SGD, without a temporary per param: the scratch buffers are reused.
        if self.state is None or len(self._scratch) != len(params):
            self._ensure_state(params)
        for param, grad, scratch in zip(params, grads, self._scratch):
            param -= np.multiply(grad, lr, out=scratch)

    def step(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        param -= np.multiply(grad, lr, out=state["_scratch"])


class MomentumConfig(OptimizerConfig):
    type: Literal["Momentum"] = "Momentum"
    momentum: float = Field(default=0.9, ge=0, lt=1)  # the share of the last velocity kept


class Momentum(Optimizer):
    """v = momentum * v - lr * grad; param += v."""

    Config = MomentumConfig
    config: MomentumConfig
    slots = ("v",)

    def step(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        v = state["v"]
        v *= self.config.momentum
        v -= np.multiply(grad, lr, out=state["_scratch"])
        param += v


class NesterovConfig(MomentumConfig):
    type: Literal["Nesterov"] = "Nesterov"  # type: ignore[assignment]


class Nesterov(Optimizer):
    """The book's form: v = m v - lr g; param += m² v - (1 + m) lr g."""

    Config = NesterovConfig
    config: NesterovConfig
    slots = ("v",)

    def step(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        m, v, scratch = self.config.momentum, state["v"], state["_scratch"]
        v *= m
        v -= np.multiply(grad, lr, out=scratch)
        param += np.multiply(v, m * m, out=scratch)
        param -= np.multiply(grad, (1 + m) * lr, out=scratch)


class AdaGradConfig(OptimizerConfig):
    type: Literal["AdaGrad"] = "AdaGrad"


class AdaGrad(Optimizer):
    """h += g²; param -= lr g / (sqrt(h) + eps)."""

    Config = AdaGradConfig
    slots = ("h",)

    def step(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        h, scratch = state["h"], state["_scratch"]
        h += np.multiply(grad, grad, out=scratch)
        _scaled_step(param, grad, h, scratch, lr)


class RMSpropConfig(OptimizerConfig):
    type: Literal["RMSprop"] = "RMSprop"
    decay_rate: float = Field(default=0.99, ge=0, lt=1)  # of the running mean of squared grads


class RMSprop(Optimizer):
    """h = d h + (1 - d) g²; param -= lr g / (sqrt(h) + eps)."""

    Config = RMSpropConfig
    config: RMSpropConfig
    slots = ("h",)

    def step(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        d, h, scratch = self.config.decay_rate, state["h"], state["_scratch"]
        h *= d
        np.multiply(grad, grad, out=scratch)
        scratch *= 1 - d
        h += scratch
        _scaled_step(param, grad, h, scratch, lr)


def _scaled_step(param: np.ndarray, grad: np.ndarray, h: np.ndarray, scratch: np.ndarray, lr: float) -> None:
    """param -= lr * grad / (sqrt(h) + eps), through one scratch buffer."""
    np.sqrt(h, out=scratch)
    scratch += EPS
    np.divide(grad, scratch, out=scratch)
    scratch *= lr
    param -= scratch


class AdamConfig(OptimizerConfig):
    type: Literal["Adam"] = "Adam"
    lr: float = Field(default=0.001, gt=0, le=1e6)  # the book's Adam default
    beta1: float = Field(default=0.9, ge=0, lt=1)  # decay of the first moment
    beta2: float = Field(default=0.999, ge=0, lt=1)  # decay of the second moment


class Adam(Optimizer):
    """The book's Adam: lr_t = lr sqrt(1 - β2^t) / (1 - β1^t); m += (1-β1)(g - m);
    v += (1-β2)(g² - v); param -= lr_t m / (sqrt(v) + eps)."""

    Config = AdamConfig
    config: AdamConfig
    slots = ("m", "v")

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        t = self.iterations + 1
        c = self.config
        self._bias = np.sqrt(1.0 - c.beta2**t) / (1.0 - c.beta1**t)
        super().update(params, grads)

    def step(self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], lr: float) -> None:
        c = self.config
        m, v, scratch = state["m"], state["v"], state["_scratch"]
        if self.decoupled_decay and c.weight_decay:
            param -= np.multiply(param, lr * c.weight_decay, out=scratch)
        np.subtract(grad, m, out=scratch)
        scratch *= 1 - c.beta1
        m += scratch
        np.multiply(grad, grad, out=scratch)
        scratch -= v
        scratch *= 1 - c.beta2
        v += scratch
        np.sqrt(v, out=scratch)
        scratch += EPS
        np.divide(m, scratch, out=scratch)
        scratch *= lr * self._bias
        param -= scratch


class AdamWConfig(AdamConfig):
    type: Literal["AdamW"] = "AdamW"  # type: ignore[assignment]
    weight_decay: float = Field(default=0.01, ge=0, le=1e3)  # decoupled: param -= lr * wd * param


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): param -= lr wd param, then Adam."""

    Config = AdamWConfig  # type: ignore[assignment]
    decoupled_decay = True


BUILTIN_OPTIMIZERS = (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam, AdamW)


@hookimpl
def register_optimizers(register: Register) -> None:
    for optimizer in BUILTIN_OPTIMIZERS:
        register(optimizer)
