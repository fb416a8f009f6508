"""TimeRNN, TimeLSTM and TimeGRU over (N, T, D) inputs, as in the book.

Each projects every step's input at once (xs @ Wx + b), runs the recurrence over T in
Python, and in backward computes the weight gradients for all steps in one matmul each.
The state starts at zero for every batch (no state is carried between batches, because
the runner shuffles samples).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

import nnkit
from nnkit.layers.activations import sigmoid
from nnkit.layers.init import InitName, normal_init


class RecurrentConfig(nnkit.LayerConfig):
    units: int = Field(ge=1, le=2**31 - 1)  # hidden width H
    return_sequences: bool = True  # (N, T, H); False gives the last step, (N, H)
    init: InitName = "xavier"  # the book's 1/sqrt(fan_in)


class _Recurrent(nnkit.Layer):
    """Shared shape logic: (T, D) per sample → (T, H) or (H,)."""

    gates = 1
    config: RecurrentConfig

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ValueError(f"expects (time, features) per sample, got {in_shape}")
        (t, d), h, g = in_shape, self.config.units, self.gates
        self.add_param("Wx", (d, g * h), normal_init(self.config.init, d, 0.01))
        self.add_param("Wh", (h, g * h), normal_init(self.config.init, h, 0.01))
        self.add_param("b", (g * h,))
        return (t, h) if self.config.return_sequences else (h,)

    def _full_dy(self, dy: np.ndarray) -> np.ndarray:
        if self.config.return_sequences:
            return dy
        full = np.zeros(self.hs.shape, dtype=dy.dtype)
        full[:, -1] = dy
        return full

    def _weight_grads(self, xs: np.ndarray, h_inputs: list[tuple[np.ndarray, slice]],
                      dA: np.ndarray) -> np.ndarray:
        """Write dWx, dWh, db from all steps at once; return dxs. dA: (N, T, G*H).
        `h_inputs` pairs what each block of Wh's columns multiplied, (N, T, H), with the block."""
        Wx, Wh, _ = self.params
        d, gh = Wx.shape
        dA2 = dA.reshape(-1, gh)
        np.matmul(xs.reshape(-1, d).T, dA2, out=self.grads[0])
        for h, columns in h_inputs:
            self.grads[1][:, columns] = h.reshape(-1, Wh.shape[0]).T @ dA2[:, columns]
        np.sum(dA2, axis=0, out=self.grads[2])
        return dA @ Wx.T

    def _output(self, hs: np.ndarray) -> np.ndarray:
        self.hs = hs
        return hs if self.config.return_sequences else hs[:, -1]


class TimeRNNConfig(RecurrentConfig):
    type: Literal["TimeRNN"] = "TimeRNN"


class TimeRNN(_Recurrent):
    """h_t = tanh(h_{t-1} Wh + x_t Wx + b). xs: (N, T, D) → (N, T, H). Wx (D, H), Wh (H, H)."""

    Config = TimeRNNConfig
    examples = [({"units": 3}, [(4, 2)]), ({"units": 2, "return_sequences": False}, [(3, 3)])]

    def forward(self, xs: np.ndarray, train: bool = False) -> np.ndarray:
        Wx, Wh, b = self.params
        n, t, _ = xs.shape
        a = xs @ Wx + b
        hs = np.empty((n, t, Wh.shape[0]), dtype=a.dtype)
        h = np.zeros((n, Wh.shape[0]), dtype=a.dtype)
        for k in range(t):
            h = np.tanh(a[:, k] + h @ Wh)
            hs[:, k] = h
        self.xs = xs
        return self._output(hs)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _, Wh, _ = self.params
        dhs, hs = self._full_dy(dy), self.hs
        dA = np.empty_like(hs)
        dh = np.zeros_like(hs[:, 0])
        for k in reversed(range(hs.shape[1])):
            dt = (dhs[:, k] + dh) * (1.0 - hs[:, k] ** 2)
            dA[:, k] = dt
            dh = dt @ Wh.T
        h_prev = np.concatenate([np.zeros_like(hs[:, :1]), hs[:, :-1]], axis=1)
        return self._weight_grads(self.xs, [(h_prev, slice(None))], dA)


class TimeLSTMConfig(RecurrentConfig):
    type: Literal["TimeLSTM"] = "TimeLSTM"


class TimeLSTM(_Recurrent):
    """The book's LSTM, gates packed (f, g, i, o) in Wx (D, 4H), Wh (H, 4H), b (4H):
    c_t = f c_{t-1} + g i; h_t = o tanh(c_t). xs: (N, T, D) → (N, T, H)."""

    Config = TimeLSTMConfig
    gates = 4
    examples = [({"units": 3}, [(4, 2)]), ({"units": 2, "return_sequences": False}, [(3, 3)])]

    def forward(self, xs: np.ndarray, train: bool = False) -> np.ndarray:
        Wx, Wh, b = self.params
        n, t, _ = xs.shape
        h_units = Wh.shape[0]
        ax = xs @ Wx + b
        hs = np.empty((n, t, h_units), dtype=ax.dtype)
        self.gate_values = np.empty((n, t, 4 * h_units), dtype=ax.dtype)  # f, g, i, o
        self.cs = np.empty((n, t, h_units), dtype=ax.dtype)
        h = np.zeros((n, h_units), dtype=ax.dtype)
        c = np.zeros_like(h)
        H = h_units
        for k in range(t):
            a = ax[:, k] + h @ Wh
            f, g, i, o = sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
            c = f * c + g * i
            h = o * np.tanh(c)
            self.gate_values[:, k] = np.concatenate([f, g, i, o], axis=1)
            self.cs[:, k], hs[:, k] = c, h
        self.xs = xs
        return self._output(hs)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _, Wh, _ = self.params
        dhs, hs, cs, gv = self._full_dy(dy), self.hs, self.cs, self.gate_values
        H = Wh.shape[0]
        dA = np.empty_like(gv)
        dh = np.zeros_like(hs[:, 0])
        dc = np.zeros_like(dh)
        for k in reversed(range(hs.shape[1])):
            f, g, i, o = gv[:, k, :H], gv[:, k, H:2 * H], gv[:, k, 2 * H:3 * H], gv[:, k, 3 * H:]
            c_prev = cs[:, k - 1] if k else np.zeros_like(dh)
            tanh_c = np.tanh(cs[:, k])
            dh_k = dhs[:, k] + dh
            ds = dc + dh_k * o * (1.0 - tanh_c**2)
            dA[:, k, :H] = ds * c_prev * f * (1.0 - f)
            dA[:, k, H:2 * H] = ds * i * (1.0 - g**2)
            dA[:, k, 2 * H:3 * H] = ds * g * i * (1.0 - i)
            dA[:, k, 3 * H:] = dh_k * tanh_c * o * (1.0 - o)
            dc = ds * f
            dh = dA[:, k] @ Wh.T
        h_prev = np.concatenate([np.zeros_like(hs[:, :1]), hs[:, :-1]], axis=1)
        return self._weight_grads(self.xs, [(h_prev, slice(None))], dA)


class TimeGRUConfig(RecurrentConfig):
    type: Literal["TimeGRU"] = "TimeGRU"


class TimeGRU(_Recurrent):
    """The book's GRU, packed (z, r, h~) in Wx (D, 3H), Wh (H, 3H), b (3H):
    z = σ(x Wxz + h Whz + bz), r = σ(x Wxr + h Whr + br),
    h~ = tanh(x Wxh + (r h) Whh + bh), h_t = (1 - z) h_{t-1} + z h~. xs: (N, T, D) → (N, T, H)."""

    Config = TimeGRUConfig
    gates = 3
    examples = [({"units": 3}, [(4, 2)]), ({"units": 2, "return_sequences": False}, [(3, 3)])]

    def forward(self, xs: np.ndarray, train: bool = False) -> np.ndarray:
        Wx, Wh, b = self.params
        n, t, _ = xs.shape
        H = Wh.shape[0]
        ax = xs @ Wx + b
        hs = np.empty((n, t, H), dtype=ax.dtype)
        self.gate_values = np.empty((n, t, 3 * H), dtype=ax.dtype)  # z, r, h~
        h = np.zeros((n, H), dtype=ax.dtype)
        for k in range(t):
            zr = sigmoid(ax[:, k, :2 * H] + h @ Wh[:, :2 * H])
            z, r = zr[:, :H], zr[:, H:]
            h_hat = np.tanh(ax[:, k, 2 * H:] + (r * h) @ Wh[:, 2 * H:])
            h = (1.0 - z) * h + z * h_hat
            self.gate_values[:, k] = np.concatenate([z, r, h_hat], axis=1)
            hs[:, k] = h
        self.xs = xs
        return self._output(hs)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _, Wh, _ = self.params
        dhs, hs, gv = self._full_dy(dy), self.hs, self.gate_values
        H = Wh.shape[0]
        h_prev_all = np.concatenate([np.zeros_like(hs[:, :1]), hs[:, :-1]], axis=1)
        dA = np.empty_like(gv)
        dh = np.zeros_like(hs[:, 0])
        for k in reversed(range(hs.shape[1])):
            z, r, h_hat, h_prev = gv[:, k, :H], gv[:, k, H:2 * H], gv[:, k, 2 * H:], h_prev_all[:, k]
            dh_k = dhs[:, k] + dh
            dt = dh_k * z * (1.0 - h_hat**2)  # through h~'s tanh
            drh = dt @ Wh[:, 2 * H:].T
            dA[:, k, :H] = dh_k * (h_hat - h_prev) * z * (1.0 - z)
            dA[:, k, H:2 * H] = drh * h_prev * r * (1.0 - r)
            dA[:, k, 2 * H:] = dt
            dh = dh_k * (1.0 - z) + drh * r + dA[:, k, :2 * H] @ Wh[:, :2 * H].T
        # Wh's z and r columns multiplied h_{t-1}; its h~ columns, r * h_{t-1}.
        rh = gv[..., H:2 * H] * h_prev_all
        return self._weight_grads(self.xs, [(h_prev_all, slice(0, 2 * H)), (rh, slice(2 * H, None))], dA)
