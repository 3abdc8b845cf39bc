"""Recurrent layers unrolled over time: nn.RNN (tanh, ReLU), nn.LSTM and nn.GRU.

A recurrent layer applies the same weights once per time step, so over ``T`` steps it is a
``T``-deep network whose depth is the sequence length (Pascanu, Mikolov & Bengio, ICML 2013).
The pass follows the mean-field moments step by step:

- vanilla RNN: ``z_t = W_ih x_t + W_hh h_{t-1} + b``, ``h_t = f(z_t)``; the gradient through
  time gains ``chi = Var(W_hh) * hidden * E[f'(z)^2]`` per step: it explodes when ``chi > 1``
  (a large or identity-like recurrent init, ReLU recurrences) and vanishes below;
- LSTM: ``c_t = f_t c_{t-1} + i_t g_t``, ``h_t = o_t tanh(c_t)``; the cell path gains
  ``E[f^2]`` per step (about 0.29 with zero-mean gates), so it rarely explodes;
- GRU: ``h_t = (1 - z_t) n_t + z_t h_{t-1}``: the state path gains ``E[z^2]`` per step.

The top layer's output is taken to be read at its last step, as classifiers and most encoders
do (``fc(out[:, -1])``, ``fc(h_n[-1])``); a model that reads every step gets gradients up to
``sqrt(T)`` larger, not of another direction. The sequence length is the one the code uses
when the graph knows it, else :data:`STEPS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradlint.flow import activations as A

#: the sequence length a recurrent layer is unrolled over when the code does not say
STEPS = 100
#: the most steps unrolled: a longer sequence is judged on its first MAX_UNROLL steps, where a
#: per-step gain even 0.4% away from 1 has already grown or shrunk the gradient 3,000-fold
MAX_UNROLL = 2048
#: the most stacked layers of one nn.RNN/LSTM/GRU the flow model follows (more: not modelled)
MAX_LAYERS = 64
_BIG = 1e300


@dataclass
class Unrolled:
    q_out: float  # second moment of the output (per element, averaged over steps)
    m_out: float
    g_x: float  # second moment of the gradient at the input (per element, averaged over steps)
    weight_sq: float  # sum over the layer's weights of ||grad W||^2 / (batch)
    overflow: bool
    chi: float  # the per-step gain of the gradient's second moment through time
    steps: int


def _cap(x: float) -> float:
    return x if x < _BIG else _BIG


def unroll(
    kind: str,
    nonlinearity: str,
    input_size: int,
    hidden: int,
    var_ih: float,
    var_hh: float,
    bias_var: float,
    q_x: float,
    g_out: float | None,
    steps: int,
    read_last: bool = False,
    identity: bool = False,
) -> Unrolled:
    """Forward (and, given ``g_out`` per output element, backward) moments of one layer.

    ``read_last``: only the last step's output reaches the loss (``fc(out[:, -1])``,
    ``fc(h_n[-1])``); otherwise every step's does. ``identity``: the recurrent weight is the
    identity (``eye_``, IRNN): the state is carried over as it is, mean included, and the
    gradient through time passes every active unit unchanged."""
    act = "relu" if nonlinearity == "relu" else "tanh"
    steps = min(steps, MAX_UNROLL)
    qs_h = [0.0]  # h_0 = 0
    ms_h = [0.0]
    qs_c = [0.0]
    pre = []  # per step: the gate statistics the backward pass needs
    overflow = False
    for _ in range(steps):
        qh = qs_h[-1]
        if kind == "RNN" and identity:
            mean = ms_h[-1]
            v = _cap(var_ih * input_size * q_x + max(qh - mean * mean, 0.0) + bias_var)
            mo = A.moments(act, mean, v)
            qs_h.append(_cap(mo.second))
            ms_h.append(min(mo.mean, 1e150))
            pre.append((v, mo.d2))
            if qs_h[-1] >= _BIG:
                overflow = True
            continue
        v = _cap(var_ih * input_size * q_x + var_hh * hidden * qh + bias_var)
        if kind == "RNN":
            mo = A.moments(act, 0.0, v)
            qs_h.append(_cap(mo.second))
            pre.append((v, mo.d2))
        elif kind == "LSTM":
            sig = A.moments("sigmoid", 0.0, v)
            g = A.moments("tanh", 0.0, v)
            qc = _cap(sig.second * qs_c[-1] + sig.second * g.second)
            qs_c.append(qc)
            tc = A.moments("tanh", 0.0, qc)
            qs_h.append(sig.second * tc.second)
            pre.append((v, sig, g, tc))
        else:  # GRU
            sig = A.moments("sigmoid", 0.0, v)
            n = A.moments("tanh", 0.0, _cap(var_ih * input_size * q_x + sig.second * var_hh * hidden * qh + bias_var))
            one_minus = sig.second - 2 * sig.mean + 1.0  # E[(1 - z)^2]
            qs_h.append(_cap(one_minus * n.second + sig.second * qh))
            pre.append((v, sig, n, one_minus))
        if qs_h[-1] >= _BIG or v >= _BIG:
            overflow = True
    q_out = qs_h[-1] if read_last else sum(qs_h[1:]) / steps
    m_out = 0.0
    if kind == "RNN" and identity:
        chi_last = pre[-1][1]
    elif kind == "RNN":
        chi_last = var_hh * hidden * pre[-1][1]
    elif kind == "LSTM":
        chi_last = pre[-1][1].second
    else:
        chi_last = pre[-1][1].second + var_hh * hidden * pre[-1][3] * pre[-1][2].d2 * pre[-1][1].second
    if g_out is None:
        # the gain through time, measured on the unrolled backward pass itself: a unit gradient
        # at the last step, and what reaches the first
        back = (
            unroll(
                kind,
                nonlinearity,
                input_size,
                hidden,
                var_ih,
                var_hh,
                bias_var,
                q_x,
                1.0,
                steps,
                read_last=True,
                identity=identity,
            )
            if steps > 1
            else None
        )
        chi = back.chi if back is not None else chi_last
        return Unrolled(q_out, m_out, 0.0, 0.0, overflow, chi, steps)
    # backward through time: the gradient at h_t from the loss and from step t+1
    g_h_next = 0.0  # gradient reaching h_t from step t+1's pre-activations
    g_c_next = 0.0
    g_last = g_first = None
    g_x_sum = 0.0
    weight_sq = 0.0
    for t in range(steps - 1, -1, -1):
        direct = g_out if (not read_last or t == steps - 1) else 0.0
        g_h = _cap(direct + g_h_next)
        if t == steps - 1:
            g_last = g_h
        g_first = g_h
        if kind == "RNN":
            v, d2 = pre[t]
            g_z = _cap(d2 * g_h)  # per pre-activation unit
            g_h_next = _cap(g_z if identity else var_hh * hidden * g_z)
            rows = 1
        elif kind == "LSTM":
            v, sig, g, tc = pre[t]
            g_c = _cap(g_h * sig.second * tc.d2 + sig.second * g_c_next)
            g_c_next = g_c
            # the four gates' pre-activations
            g_z = _cap(
                (g_c * (sig.d2 * g.second + sig.second * g.d2 + sig.d2 * qs_c[t]) + g_h * sig.d2 * tc.second) / 4
            )
            g_h_next = _cap(var_hh * 4 * hidden * g_z)
            rows = 4
        else:
            v, sig, n, one_minus = pre[t]
            g_n = _cap(g_h * one_minus * n.d2)
            g_zg = _cap(g_h * sig.d2 * (n.second + qs_h[t]))
            g_z = (g_n + 2 * g_zg) / 3
            g_h_next = _cap(g_h * sig.second + var_hh * 3 * hidden * g_z)
            rows = 3
        g_x_sum += var_ih * rows * hidden * g_z
        weight_sq += rows * hidden * g_z * (input_size * q_x + hidden * qs_h[t])
    chi = chi_last
    if read_last and steps > 1 and g_last and g_first is not None:
        chi = (max(g_first, 1e-300) / g_last) ** (1.0 / (steps - 1))
    return Unrolled(q_out, m_out, g_x_sum / steps, _cap(weight_sq), overflow, chi, steps)


def spec(layer) -> tuple | None:
    """``(kind, nonlinearity, input_size, hidden, layers, directions)`` of an nn.RNN/LSTM/GRU."""
    p = layer.params
    kind = layer.kind
    if kind not in ("RNN", "LSTM", "GRU"):
        return None
    inp, hid = p.get("input_size"), p.get("hidden_size")
    if not (isinstance(inp, int) and isinstance(hid, int) and inp > 0 and hid > 0):
        return None
    n = p.get("num_layers", 1)
    n = n if isinstance(n, int) and 0 < n <= MAX_LAYERS else None
    if n is None:
        return None
    nl = p.get("nonlinearity", "tanh")
    if nl not in ("tanh", "relu"):
        return None
    dirs = 2 if p.get("bidirectional") is True else 1
    return kind, nl, inp, hid, n, dirs


def gain_per_step(u: Unrolled) -> float:
    return math.sqrt(max(u.chi, 0.0))
