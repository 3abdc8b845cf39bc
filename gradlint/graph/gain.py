"""Signal propagation through a plain stack at initialization (mean-field estimate).

For a stack ``z_l = W_l f(z_{l-1})`` with independent zero-mean weights, the second moment of
the pre-activations and of the backpropagated gradient follow two recursions (Poole et al.
2016; Schoenholz et al., ICLR 2017):

    forward   q_l  = s_l^2 * E[f(z)^2],            z ~ N(0, q_{l-1})
    backward  g_l  = E[f'(z_l)^2] * s_{l+1}^2 * (fan_out/fan_in) * g_{l+1}

where ``s^2 = Var(W) * fan_in`` is the weight-init scale (1 for Kaiming-linear/LeCun, 2 for He,
1/3 for PyTorch's default ``nn.Linear`` init). The weight gradient of layer ``l`` is
``g_l x_{l-1}^T``, so the ratio of the first to the last layer's weight-gradient norm is

    R = sqrt( (g_1 * E[x_0^2]) / (g_L * E[x_{L-1}^2]) )

which is what gradient-flow monitors compare with 1e-3 (vanishing) and 70 (exploding).
Everything here is pure Python (no numpy, no torch): it runs inside the static linter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

_SQRT2 = math.sqrt(2.0)
_SELU_L, _SELU_A = 1.0507009873554805, 1.6732632423543772


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _Phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


def _softplus(z: float) -> float:
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


#: activation -> (f, f')
_FUNCS = {
    "identity": (lambda z: z, lambda z: 1.0),
    "relu": (lambda z: z if z > 0 else 0.0, lambda z: 1.0 if z > 0 else 0.0),
    "relu6": (lambda z: min(max(z, 0.0), 6.0), lambda z: 1.0 if 0 < z < 6 else 0.0),
    "leaky_relu": (lambda z: z if z > 0 else 0.01 * z, lambda z: 1.0 if z > 0 else 0.01),
    "prelu": (lambda z: z if z > 0 else 0.25 * z, lambda z: 1.0 if z > 0 else 0.25),
    "rrelu": (lambda z: z if z > 0 else 0.229 * z, lambda z: 1.0 if z > 0 else 0.229),
    "elu": (lambda z: z if z > 0 else math.expm1(z), lambda z: 1.0 if z > 0 else math.exp(z)),
    "celu": (lambda z: z if z > 0 else math.expm1(z), lambda z: 1.0 if z > 0 else math.exp(z)),
    "selu": (
        lambda z: _SELU_L * z if z > 0 else _SELU_L * _SELU_A * math.expm1(z),
        lambda z: _SELU_L if z > 0 else _SELU_L * _SELU_A * math.exp(z),
    ),
    "gelu": (lambda z: z * _Phi(z), lambda z: _Phi(z) + z * _phi(z)),
    "silu": (
        lambda z: z * _sigmoid(z),
        lambda z: _sigmoid(z) * (1.0 + z * (1.0 - _sigmoid(z))),
    ),
    "mish": (
        lambda z: z * math.tanh(_softplus(z)),
        lambda z: math.tanh(_softplus(z)) + z * _sigmoid(z) * (1.0 - math.tanh(_softplus(z)) ** 2),
    ),
    "softplus": (_softplus, _sigmoid),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "tanh": (math.tanh, lambda z: 1.0 - math.tanh(z) ** 2),
    "hardsigmoid": (lambda z: min(max(z / 6 + 0.5, 0.0), 1.0), lambda z: 1 / 6 if -3 < z < 3 else 0.0),
    "hardtanh": (lambda z: min(max(z, -1.0), 1.0), lambda z: 1.0 if -1 < z < 1 else 0.0),
    "softsign": (lambda z: z / (1 + abs(z)), lambda z: 1.0 / (1 + abs(z)) ** 2),
    "hardswish": (
        lambda z: z * min(max(z + 3, 0.0), 6.0) / 6,
        lambda z: 0.0 if z < -3 else 1.0 if z > 3 else (2 * z + 3) / 6,
    ),
}

# Quadrature: the midpoints of a fine grid over +-10 standard deviations (midpoints keep
# kinks at 0, like ReLU's, exact by symmetry).
_GRID = [(i + 0.5) / 20.0 for i in range(-200, 200)]
_WEIGHTS = [_phi(u) / 20.0 for u in _GRID]


def known(activation: str | None) -> bool:
    return (activation or "identity") in _FUNCS


#: bounded output: large pre-activations saturate instead of growing
BOUNDED = frozenset({"sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign", "relu6"})
_Q_MAX = 1e6


def moments(activation: str | None, q: float) -> tuple[float, float]:
    """``(E[f(z)^2], E[f'(z)^2])`` for ``z ~ N(0, q)``.

    Beyond ``q = 1e6`` unbounded activations are positively homogeneous (ReLU-like), so the
    output moment scales with ``q``; bounded ones stay saturated.
    """
    if q > _Q_MAX:
        m2, d2 = _moments(activation, _Q_MAX)
        if (activation or "identity") not in BOUNDED:
            m2 *= q / _Q_MAX
        return m2, d2
    return _moments(activation, q)


def mean(activation: str | None, q: float) -> float:
    """``E[f(z)]`` for ``z ~ N(0, q)``: the common offset a non-centred activation (ReLU,
    GELU, sigmoid) adds to every unit it feeds."""
    if q > _Q_MAX:
        m1 = _mean(activation, _Q_MAX)
        if (activation or "identity") not in BOUNDED:
            m1 *= math.sqrt(q / _Q_MAX)
        return m1
    return _mean(activation, q)


@lru_cache(maxsize=4096)
def _mean(activation: str | None, q: float) -> float:
    f, _ = _FUNCS[activation or "identity"]
    sd = math.sqrt(max(q, 0.0))
    return sum(w * f(sd * u) for u, w in zip(_GRID, _WEIGHTS))


@lru_cache(maxsize=4096)
def _moments(activation: str | None, q: float) -> tuple[float, float]:
    f, df = _FUNCS[activation or "identity"]
    sd = math.sqrt(max(q, 0.0))
    m2 = d2 = 0.0
    for u, w in zip(_GRID, _WEIGHTS):
        z = sd * u
        m2 += w * f(z) ** 2
        d2 += w * df(z) ** 2
    return m2, d2


@dataclass(frozen=True)
class StackEstimate:
    """Mean-field prediction for a plain stack at initialization."""

    #: ||grad W_first|| / ||grad W_last||
    weight_grad_ratio: float
    #: ||dL/dz_first|| / ||dL/dz_last||: how the backpropagated signal changes over the stack
    backward_gain: float
    #: E[z_last^2] / E[z_first^2]: how the forward signal changes over the stack
    forward_gain: float
    layers: int


def estimate_stack(scales: list[float], activations: list[str | None], fan_ratios: list[float] | None = None,
                   input_moment: float = 1.0, bias_vars: list[float] | None = None) -> StackEstimate:
    """Predict gradient flow through ``len(scales)`` weighted layers.

    ``scales[l]`` is layer ``l``'s weight-init scale ``sqrt(Var(W) * fan_in)``;
    ``activations[l]`` the activation applied after it (None: none); ``fan_ratios[l]`` its
    ``fan_out / fan_in`` (1 for square layers); ``bias_vars[l]`` the variance of its bias
    (PyTorch's default bias init ``U(+-1/sqrt(fan_in))`` has ``1 / (3 * fan_in)``; 0 when zeroed).
    """
    n = len(scales)
    if n == 0:
        return StackEstimate(1.0, 1.0, 1.0, 0)
    fan_ratios = fan_ratios or [1.0] * n
    bias_vars = bias_vars or [0.0] * n
    # forward: second moments of each layer's input (x) and pre-activation (q)
    x_moment = [input_moment]
    q = []
    for l in range(n):
        ql = min(scales[l] ** 2 * x_moment[-1] + bias_vars[l], 1e300)
        q.append(ql)
        m2, _ = moments(activations[l], ql)
        x_moment.append(min(m2, 1e300))
    # backward: second moment of dL/dz_l relative to the last layer's
    g = [0.0] * n
    g[-1] = 1.0
    for l in range(n - 2, -1, -1):
        _, d2 = moments(activations[l], q[l])
        g[l] = min(d2 * scales[l + 1] ** 2 * fan_ratios[l + 1] * g[l + 1], 1e300)
    tiny = 1e-300
    ratio = math.sqrt(max(g[0] * x_moment[0], tiny) / max(g[-1] * x_moment[n - 1], tiny))
    return StackEstimate(
        weight_grad_ratio=ratio,
        backward_gain=math.sqrt(max(g[0], tiny) / g[-1]),
        forward_gain=math.sqrt(max(q[-1], tiny) / max(q[0], tiny)),
        layers=n,
    )
