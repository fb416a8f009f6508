"""TimeRNN, TimeLSTM and TimeGRU over (N, T, D) inputs, as in the book.

Each projects every step's input at once (xs @ Wx + b), runs the recurrence over T in
Python, and in backward computes the weight gradients for all steps in one matmul each.
The state starts at zero for every batch, unless the layer is `stateful`: then each
forward starts from the state the previous one ended in (the book's truncated BPTT: the
gradient stops at the window's start, the state does not), until `reset_state`.

For encoder-decoder networks (the book's seq2seq, ch. 7) the state also flows through the
graph: further inputs give the initial state, `inputs = ["dec_embed", "enc.h"]` (and
"enc.c" for an LSTM), and every layer exposes its last step's state as the further
outputs "<node>.h" (and "<node>.c"), gradients flowing back through both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import Field

import nnkit
from nnkit.layer import InputGrads
from nnkit.layers.activations import sigmoid
from nnkit.layers.init import InitName, normal_init


class RecurrentConfig(nnkit.LayerConfig):
    units: int = Field(ge=1, le=2**31 - 1)  # hidden width H
    return_sequences: bool = True  # (N, T, H); False gives the last step, (N, H)
    init: InitName = "xavier"  # the book's 1/sqrt(fan_in)
    # Carry h (and the LSTM's c) from one batch to the next, as the book's stateful layers:
    # for ordered windows of one stream (`train.bptt`); reset every epoch and evaluation.
    stateful: bool = False


class _Recurrent(nnkit.Layer):
    """Shared shape logic: (T, D) per sample → (T, H) or (H,)."""

    gates = 1
    config: RecurrentConfig
    num_inputs = (1, 2)  # xs, and optionally h0
    can_carry_state = True
    #: What the layer carries between batches when stateful, each (N, H).
    state_names: tuple[str, ...] = ("h",)

    def build(self, in_shape: tuple[int, ...], *state_shapes: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ValueError(f"expects (time, features) per sample, got {in_shape}")
        (t, d), h, g = in_shape, self.config.units, self.gates
        for name, shape in zip(self.state_names, state_shapes):
            if shape != (h,):
                raise ValueError(f"the initial state {name} must be ({h},) per sample, got {shape}")
        if state_shapes and self.config.stateful:
            raise ValueError("a stateful layer starts from the state it carries; it takes no initial state input")
        for name in self.state_names:
            self.add_output(name, (h,))  # the last step's state, "<node>.h"
        self.add_param("Wx", (d, g * h), normal_init(self.config.init, d, 0.01))
        self.add_param("Wh", (h, g * h), normal_init(self.config.init, h, 0.01))
        self.add_param("b", (g * h,))
        self.carries_state = self.config.stateful
        self._carried: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
        return (t, h) if self.config.return_sequences else (h,)

    def state(self) -> dict[str, np.ndarray]:
        return dict(self._carried) if self.carries_state else {}

    def _workspace(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The layer's own array `name`, kept from call to call while shape and dtype stay:
        for what a pass writes and its backward reads, never for what it hands out.
        Fresh arrays of these sizes came back from the system every call (glibc returns
        large freed blocks), each first write a page fault: ~780 a TimeLSTM forward and
        backward at 32 × 20 × 64 → 128, ~2,900 at 20 × 35 × 650 → 650 (measured)."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype)
        return buffer

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        unknown = sorted(set(state) - set(self.state_names))
        if unknown:
            raise ValueError(f"{type(self).__name__} carries {', '.join(self.state_names)}, not {unknown[0]!r}")
        for name, value in state.items():
            if np.ndim(value) != 2 or np.shape(value)[1] != self.config.units:
                raise ValueError(f"state {name!r} has shape {np.shape(value)}; it must be (N, {self.config.units})")
        self._carried = {name: np.array(value) for name, value in state.items()}

    def _initial(self, name: str, like: np.ndarray, given: tuple[np.ndarray, ...] = ()) -> np.ndarray:
        """The state a forward starts from, (N, H): the one given as an input, else the
        carried one, else zeros."""
        n, h = like.shape[0], self.config.units
        index = self.state_names.index(name)
        if index < len(given):
            return np.asarray(given[index]).astype(like.dtype, copy=False)
        carried = self._carried.get(name) if self.carries_state else None
        if carried is None:
            return np.zeros((n, h), dtype=like.dtype)
        if carried.shape[0] != n:
            raise ValueError(f"carries state for batches of {carried.shape[0]}, given {n}; reset its state first")
        return carried.astype(like.dtype, copy=False)

    def _carry(self, **final: np.ndarray) -> None:
        """Give each last step's state as a further output, and keep it for the next
        forward when stateful."""
        self.port_values = final
        if self.carries_state:
            self._carried = {name: value.copy() for name, value in final.items()}

    def _port_grad(self, name: str, like: np.ndarray) -> np.ndarray:
        """dL/d(last step's state) from the graph, (N, H), as a fresh array; zeros if none."""
        grad = self.port_grads.get(name)
        return np.array(grad, dtype=like.dtype) if grad is not None else np.zeros_like(like)

    def _with_state_grads(self, dxs: np.ndarray, *dstates: np.ndarray) -> InputGrads:
        """dL/dxs, and dL/d(initial state) for each state given as an input."""
        given = len(self.input_shapes) - 1
        return (dxs, *dstates[:given]) if given else dxs

    def _full_dy(self, dy: np.ndarray) -> np.ndarray:
        if self.config.return_sequences:
            return dy
        full = np.zeros(self.hs.shape, dtype=dy.dtype)
        full[:, -1] = dy
        return full

    def _project(self, xs: np.ndarray) -> np.ndarray:
        """x_t Wx + b for every step in one 2-D matmul, (N, T, D) → (N, T, G*H). A 3-D
        matmul would run N small ones, and `+ b` a second pass into a fresh array."""
        Wx, _, b = self.params
        n, t, d = xs.shape
        ax = (xs.reshape(n * t, d) @ Wx).reshape(n, t, -1)
        ax += b
        return ax

    def _weight_grads(self, xs: np.ndarray, h_inputs: list[tuple[np.ndarray, slice]],
                      dA: np.ndarray, dxs: np.ndarray | None = None) -> np.ndarray:
        """Write dWx, dWh, db from all steps at once; return dxs (into `dxs` when given).
        dA: (N, T, G*H). `h_inputs` pairs what each block of Wh's columns multiplied,
        (N, T, H), with the block."""
        Wx, Wh, _ = self.params
        d, gh = Wx.shape
        dA2 = dA.reshape(-1, gh)
        np.matmul(xs.reshape(-1, d).T, dA2, out=self.grads[0])
        for h, columns in h_inputs:
            h2 = h.reshape(-1, Wh.shape[0]).T
            if columns == slice(None):
                np.matmul(h2, dA2, out=self.grads[1])
            else:
                self.grads[1][:, columns] = h2 @ dA2[:, columns]
        np.sum(dA2, axis=0, out=self.grads[2])
        return np.matmul(dA2, Wx.T, out=None if dxs is None else dxs.reshape(-1, d)).reshape(xs.shape)

    def _output(self, hs: np.ndarray) -> np.ndarray:
        self.hs = hs
        return hs if self.config.return_sequences else hs[:, -1]


class TimeRNNConfig(RecurrentConfig):
    type: Literal["TimeRNN"] = "TimeRNN"


class TimeRNN(_Recurrent):
    """h_t = tanh(h_{t-1} Wh + x_t Wx + b). xs: (N, T, D) → (N, T, H). Wx (D, H), Wh (H, H)."""

    Config = TimeRNNConfig
    examples = [({"units": 3}, [(4, 2)]), ({"units": 2, "return_sequences": False}, [(3, 3)]),
                ({"units": 3, "stateful": True}, [(4, 2)]), ({"units": 3}, [(4, 2), (3,)])]

    def forward(self, xs: np.ndarray, *states: np.ndarray, train: bool = False) -> np.ndarray:
        _, Wh, _ = self.params
        n, t, _ = xs.shape
        a = self._project(xs)
        hs = np.empty((n, t, Wh.shape[0]), dtype=a.dtype)
        h = self.h0 = self._initial("h", a, states)
        for k in range(t):
            h = np.tanh(a[:, k] + h @ Wh)
            hs[:, k] = h
        self.xs = xs
        self._carry(h=h)
        return self._output(hs)

    def backward(self, dy: np.ndarray) -> InputGrads:
        _, Wh, _ = self.params
        dhs, hs = self._full_dy(dy), self.hs
        dA = np.empty_like(hs)
        dh = self._port_grad("h", hs[:, 0])  # from the graph, into the last step
        Wh_T = _transposed(Wh)
        for k in reversed(range(hs.shape[1])):
            dt = (dhs[:, k] + dh) * (1.0 - hs[:, k] ** 2)
            dA[:, k] = dt
            dh = dt @ Wh_T
        h_prev = _previous(hs, self.h0)
        return self._with_state_grads(self._weight_grads(self.xs, [(h_prev, slice(None))], dA), dh)


class TimeLSTMConfig(RecurrentConfig):
    type: Literal["TimeLSTM"] = "TimeLSTM"


class TimeLSTM(_Recurrent):
    """The book's LSTM, gates packed (f, g, i, o) in Wx (D, 4H), Wh (H, 4H), b (4H):
    c_t = f c_{t-1} + g i; h_t = o tanh(c_t). xs: (N, T, D) → (N, T, H)."""

    Config = TimeLSTMConfig
    gates = 4
    num_inputs = (1, 3)  # xs, and optionally h0 and c0
    state_names = ("h", "c")
    examples = [({"units": 3}, [(4, 2)]), ({"units": 2, "return_sequences": False}, [(3, 3)]),
                ({"units": 3, "stateful": True}, [(4, 2)]), ({"units": 3}, [(4, 2), (3,)]),
                ({"units": 2, "return_sequences": False}, [(3, 3), (2,), (2,)])]

    def forward(self, xs: np.ndarray, *states: np.ndarray, train: bool = False) -> np.ndarray:
        Wx, Wh, b = self.params
        n, t, d = xs.shape
        H = Wh.shape[0]
        dtype, work = np.result_type(xs, Wx), self._workspace
        # Time-major inside, (T, N, ...): each step's rows are then one contiguous block.
        xs_tm = work("xs_tm", (t, n, d), xs.dtype)
        np.copyto(xs_tm, xs.transpose(1, 0, 2))
        self.xs_tm = xs_tm = xs_tm.reshape(t * n, d)
        # x_t Wx + b for every step at once; each step then adds h_{t-1} Wh in place, and the
        # gates (f, g, i, o) after their activations stay here for backward.
        gates = np.matmul(xs_tm, Wx, out=work("gates", (t * n, 4 * H), dtype)).reshape(t, n, 4 * H)
        gates += b
        self.gate_values = gates
        self.cs, self.tanh_cs = work("cs", (t, n, H), dtype), work("tanh_cs", (t, n, H), dtype)
        hs = self.hs_tm = work("hs", (t, n, H), dtype)
        h, c = self.h0, self.c0 = self._initial("h", gates[0], states), self._initial("c", gates[0], states)
        h_Wh, g_i = work("h_Wh", (n, 4 * H), dtype), work("g_i", (n, H), dtype)
        inner, outer, shift = _gate_activation(H, gates.dtype)
        for k in range(t):
            a = gates[k]
            a += np.matmul(h, Wh, out=h_Wh)  # a = x_t Wx + b + h_{t-1} Wh
            # f, i, o = sigmoid(a) = 0.5 tanh(0.5 a) + 0.5 and g = tanh(a), in four passes over all gates
            a *= inner
            np.tanh(a, out=a)
            a *= outer
            a += shift
            f, g, i, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
            c_k, tanh_c = self.cs[k], self.tanh_cs[k]
            np.multiply(f, c, out=c_k)
            np.multiply(g, i, out=g_i)
            c_k += g_i  # c_t = f c_{t-1} + g i
            np.tanh(c_k, out=tanh_c)
            np.multiply(o, tanh_c, out=hs[k])  # h_t = o tanh(c_t)
            h, c = hs[k], c_k
        self._carry(h=h.copy(), c=c.copy())  # copies: the workspace is written again next call
        return self._output(hs.transpose(1, 0, 2).copy())

    def backward(self, dy: np.ndarray) -> InputGrads:
        Wx, Wh, _ = self.params
        dhs = self._full_dy(dy).transpose(1, 0, 2)  # time-major, as forward kept everything
        hs, cs, tanh_cs, gv = self.hs_tm, self.cs, self.tanh_cs, self.gate_values
        t, n, H = hs.shape
        dtype, work = gv.dtype, self._workspace
        f, g, i, o = gv[..., :H], gv[..., H:2 * H], gv[..., 2 * H:3 * H], gv[..., 3 * H:]
        c_prev = _previous_tm(cs, self.c0, work("c_prev", cs.shape, dtype))
        # What does not depend on the gradient flowing back, for all steps at once. With
        # ds = dc_t + dh_t o (1 - tanh²c_t), the gates' pre-activation gradients are
        # df = ds c_{t-1} f(1-f), dg = ds i (1-g²), di = ds g i(1-i), do = dh_t tanh(c_t) o(1-o).
        # Each factor is computed as its expression would be (same bits), in the workspace.
        spare = work("spare", (t, n, H), dtype)
        ds_per_dh = _times_one_minus(o, tanh_cs, work("ds_per_dh", (t, n, H), dtype), spare, square=True)
        per_ds = work("per_ds", (t, n, 3, H), dtype)
        df, dg, di = per_ds[:, :, 0], per_ds[:, :, 1], per_ds[:, :, 2]
        _times_one_minus(np.multiply(c_prev, f, out=df), f, df, spare)  # c_{t-1} f (1 - f)
        _times_one_minus(i, g, dg, spare, square=True)  # i (1 - g²)
        _times_one_minus(np.multiply(g, i, out=di), i, di, spare)  # g i (1 - i)
        do_per_dh = work("do_per_dh", (t, n, H), dtype)
        _times_one_minus(np.multiply(tanh_cs, o, out=do_per_dh), o, do_per_dh, spare)  # tanh(c_t) o (1 - o)
        dA4 = work("dA", (t, n, 4, H), dtype)
        dA = dA4.reshape(t, n, 4 * H)
        ds = np.zeros((n, H), dtype=dtype)
        dh, dc = self._port_grad("h", ds), self._port_grad("c", ds)  # from the graph, into the last step
        Wh_T = _transposed(Wh, work("Wh_T", Wh.shape[::-1], Wh.dtype))
        for k in reversed(range(t)):
            dh += dhs[k]  # dh_t: from the output at t and from step t+1
            np.multiply(dh, ds_per_dh[k], out=ds)
            ds += dc
            np.multiply(ds[:, None, :], per_ds[k], out=dA4[k, :, :3])
            np.multiply(dh, do_per_dh[k], out=dA4[k, :, 3])
            np.multiply(ds, f[k], out=dc)  # dc_{t-1}
            np.matmul(dA[k], Wh_T, out=dh)  # dh_{t-1}
        h_prev = _previous_tm(hs, self.h0, work("h_prev", hs.shape, dtype))
        dxs = self._weight_grads(self.xs_tm, [(h_prev, slice(None))], dA,
                                 work("dxs", (t, n, Wx.shape[0]), dtype)).reshape(t, n, -1)
        return self._with_state_grads(dxs.transpose(1, 0, 2).copy(), dh, dc)


def _times_one_minus(a: np.ndarray, b: np.ndarray, out: np.ndarray, spare: np.ndarray, *,
                     square: bool = False) -> np.ndarray:
    """out = a * (1 - b), or a * (1 - b²) with `square`, through `spare`: the same
    operations, in the same order, as the expression."""
    if square:
        np.square(b, out=spare)
        np.subtract(1.0, spare, out=spare)
    else:
        np.subtract(1.0, b, out=spare)
    return np.multiply(a, spare, out=out)


def _gate_activation(units: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column factors that turn tanh into each gate's activation, packed (f, g, i, o):
    inner and outer 0.5 and shift 0.5 for the sigmoid gates (the tanh form of
    `nnkit.layers.activations.sigmoid`, same bits), 1, 1 and 0 for g's tanh (exact)."""
    half = np.full(4 * units, 0.5, dtype=dtype)
    half[units:2 * units] = 1.0
    shift = np.full(4 * units, 0.5, dtype=dtype)
    shift[units:2 * units] = 0.0
    return half, half, shift


def _previous_tm(states: np.ndarray, first: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Each step's previous state, time-major, `first` (N, H) before the first: (T, N, H) → (T, N, H)."""
    out[0] = first
    out[1:] = states[:-1]
    return out


def _transposed(W: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """W.T as a C-contiguous copy (into `out` when given), for the step-by-step backward's
    dh = dA W.T: OpenBLAS multiplies by it ~1.4x faster than by the transposed view (620
    vs 915 µs a step at the book's 20 × 650 → 4 × 650, measured), and one copy serves
    every step."""
    if out is None:
        return np.ascontiguousarray(W.T)
    np.copyto(out, W.T)
    return out


def _previous(states: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Each step's previous state, `first` (N, H) before the first: (N, T, H) → (N, T, H)."""
    return np.concatenate([first[:, None], states[:, :-1]], axis=1)


class TimeGRUConfig(RecurrentConfig):
    type: Literal["TimeGRU"] = "TimeGRU"


class TimeGRU(_Recurrent):
    """The book's GRU, packed (z, r, h~) in Wx (D, 3H), Wh (H, 3H), b (3H):
    z = σ(x Wxz + h Whz + bz), r = σ(x Wxr + h Whr + br),
    h~ = tanh(x Wxh + (r h) Whh + bh), h_t = (1 - z) h_{t-1} + z h~. xs: (N, T, D) → (N, T, H)."""

    Config = TimeGRUConfig
    gates = 3
    examples = [({"units": 3}, [(4, 2)]), ({"units": 2, "return_sequences": False}, [(3, 3)]),
                ({"units": 3, "stateful": True}, [(4, 2)]), ({"units": 3}, [(4, 2), (3,)])]

    def forward(self, xs: np.ndarray, *states: np.ndarray, train: bool = False) -> np.ndarray:
        _, Wh, _ = self.params
        n, t, _ = xs.shape
        H = Wh.shape[0]
        ax = self._project(xs)
        hs = np.empty((n, t, H), dtype=ax.dtype)
        self.gate_values = np.empty((n, t, 3 * H), dtype=ax.dtype)  # z, r, h~
        h = self.h0 = self._initial("h", ax, states)
        for k in range(t):
            zr = sigmoid(ax[:, k, :2 * H] + h @ Wh[:, :2 * H])
            z, r = zr[:, :H], zr[:, H:]
            h_hat = np.tanh(ax[:, k, 2 * H:] + (r * h) @ Wh[:, 2 * H:])
            h = (1.0 - z) * h + z * h_hat
            self.gate_values[:, k] = np.concatenate([z, r, h_hat], axis=1)
            hs[:, k] = h
        self.xs = xs
        self._carry(h=h)
        return self._output(hs)

    def backward(self, dy: np.ndarray) -> InputGrads:
        _, Wh, _ = self.params
        dhs, hs, gv = self._full_dy(dy), self.hs, self.gate_values
        H = Wh.shape[0]
        h_prev_all = _previous(hs, self.h0)
        dA = np.empty_like(gv)
        dh = self._port_grad("h", hs[:, 0])  # from the graph, into the last step
        Wzr_T, Whh_T = _transposed(Wh[:, :2 * H]), _transposed(Wh[:, 2 * H:])
        for k in reversed(range(hs.shape[1])):
            z, r, h_hat, h_prev = gv[:, k, :H], gv[:, k, H:2 * H], gv[:, k, 2 * H:], h_prev_all[:, k]
            dh_k = dhs[:, k] + dh
            dt = dh_k * z * (1.0 - h_hat**2)  # through h~'s tanh
            drh = dt @ Whh_T
            dA[:, k, :H] = dh_k * (h_hat - h_prev) * z * (1.0 - z)
            dA[:, k, H:2 * H] = drh * h_prev * r * (1.0 - r)
            dA[:, k, 2 * H:] = dt
            dh = dh_k * (1.0 - z) + drh * r + dA[:, k, :2 * H] @ Wzr_T
        # Wh's z and r columns multiplied h_{t-1}; its h~ columns, r * h_{t-1}.
        rh = gv[..., H:2 * H] * h_prev_all
        dxs = self._weight_grads(self.xs, [(h_prev_all, slice(0, 2 * H)), (rh, slice(2 * H, None))], dA)
        return self._with_state_grads(dxs, dh)
