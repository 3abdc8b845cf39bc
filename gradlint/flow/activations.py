"""Moments of every activation of the catalog under a Gaussian pre-activation.

For ``z ~ N(mean, var)`` the flow model needs ``E[f(z)]``, ``E[f(z)^2]``, ``E[f'(z)^2]``, the
fraction of saturated units (``|f'(z)|`` below 1 % of its largest value, for bounded
activations) and the fraction of dead ones (``f'(z) = 0``), plus the *coherent* second moment
``E_mu[(E_eps f(mu + s eps))^2]``: what every unit keeps in common over the batch when each
unit has its own offset ``mu ~ N(mean, var_units)``.

Three ways of integrating, by the shape of ``f``:

- piecewise-linear activations (ReLU, leaky ReLU, ReLU6, hardtanh, the identity) in closed
  form, from the moments of a truncated normal: a quadrature rule misplaces the kink;
- ``exp`` (and so ``x ** 2``) in closed form, in log space, so that overflow is seen rather than
  raised;
- smooth activations (sigmoid, tanh, GELU, SiLU, softplus, ...) by Gauss–Hermite quadrature
  (48 nodes) while the pre-activation is narrow (std <= 2); wider ones, and the few with a
  kink in the derivative (SELU, hardsigmoid, hardswish), by a midpoint rule that also resolves
  the activation's own features around 0 (a saturated tanh's derivative is a spike that
  Gauss–Hermite nodes 5-10 apart step over).

Pure Python; results are cached on rounded arguments because every save recomputes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from gradlint.flow.gaussian import GH, GH_OUTER_SMALL, cdf, pdf, round4, truncated_moments, wide_rule

_SELU_L, _SELU_A = 1.0507009873554805, 1.6732632423543772
#: beyond this log-magnitude a value is inf in float32 (log(3.4e38) = 88.7)
LOG_F32_MAX = 88.72


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softplus(z: float) -> float:
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


def _tanh_softplus(z: float) -> float:
    return math.tanh(_softplus(z))


#: smooth activations: (f, f', bounded, largest |f'|)
_SMOOTH = {
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z)), True, 0.25),
    "tanh": (math.tanh, lambda z: 1.0 - math.tanh(z) ** 2, True, 1.0),
    "softsign": (lambda z: z / (1 + abs(z)), lambda z: 1.0 / (1 + abs(z)) ** 2, True, 1.0),
    "gelu": (lambda z: z * cdf(z), lambda z: cdf(z) + z * pdf(z), False, 1.13),
    "silu": (lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1.0 + z * (1.0 - _sigmoid(z))), False, 1.1),
    "mish": (
        lambda z: z * _tanh_softplus(z),
        lambda z: _tanh_softplus(z) + z * _sigmoid(z) * (1.0 - _tanh_softplus(z) ** 2),
        False,
        1.09,
    ),
    "softplus": (_softplus, _sigmoid, False, 1.0),
    "elu": (lambda z: z if z > 0 else math.expm1(z), lambda z: 1.0 if z > 0 else math.exp(z), False, 1.0),
    "celu": (lambda z: z if z > 0 else math.expm1(z), lambda z: 1.0 if z > 0 else math.exp(z), False, 1.0),
    "tanhshrink": (lambda z: z - math.tanh(z), lambda z: math.tanh(z) ** 2, False, 1.0),
    "logsigmoid": (lambda z: -_softplus(-z), lambda z: 1.0 - _sigmoid(z), False, 1.0),
}
#: activations with a jump in the derivative, integrated on a fine grid
_KINKED = {
    "selu": (
        lambda z: _SELU_L * z if z > 0 else _SELU_L * _SELU_A * math.expm1(z),
        lambda z: _SELU_L if z > 0 else _SELU_L * _SELU_A * math.exp(z),
        False,
        _SELU_L * _SELU_A,
    ),
    "hardsigmoid": (lambda z: min(max(z / 6 + 0.5, 0.0), 1.0), lambda z: 1 / 6 if -3 < z < 3 else 0.0, True, 1 / 6),
    "hardswish": (
        lambda z: z * min(max(z + 3, 0.0), 6.0) / 6,
        lambda z: 0.0 if z < -3 else 1.0 if z > 3 else (2 * z + 3) / 6,
        False,
        1.5,
    ),
}
#: piecewise-linear activations: slopes on (-inf, lo), (lo, hi), (hi, inf) and the clip points
_PIECEWISE = {
    "identity": ((1.0, 1.0, 1.0), (-math.inf, math.inf)),
    "relu": ((0.0, 1.0, 1.0), (0.0, math.inf)),
    "threshold": ((0.0, 1.0, 1.0), (0.0, math.inf)),
    "leaky_relu": ((0.01, 1.0, 1.0), (0.0, math.inf)),
    "prelu": ((0.25, 1.0, 1.0), (0.0, math.inf)),
    "rrelu": ((0.229, 1.0, 1.0), (0.0, math.inf)),
    "relu6": ((0.0, 1.0, 0.0), (0.0, 6.0)),
    "hardtanh": ((0.0, 1.0, 0.0), (-1.0, 1.0)),
}
#: grow without bound faster than any power: moments in closed form, overflow detected
_EXPONENTIAL = {"exp", "square"}
#: their second moment depends on the input's tails, not only on its variance
HEAVY_TAILED = frozenset({"square"})

BOUNDED = frozenset(
    {k for k, v in _SMOOTH.items() if v[2]} | {k for k, v in _KINKED.items() if v[2]} | {"relu6", "hardtanh"}
)
#: f'(z) = 0 on a half-line: units can be dead
DYING = frozenset({"relu", "relu6", "threshold", "hardtanh", "hardsigmoid", "hardswish"})
#: positively homogeneous: f(a z) = a f(z) for a > 0
HOMOGENEOUS = frozenset({"identity", "relu", "threshold", "leaky_relu", "prelu", "rrelu"})
#: positively homogeneous for large inputs: beyond the grid their moments scale with var
_LINEAR_TAIL = frozenset({"gelu", "silu", "mish", "softplus", "elu", "celu", "selu", "hardswish", "tanhshrink"})


def piecewise(activation: str | None) -> bool:
    """Piecewise linear (ReLU, leaky ReLU, hardtanh ...): moments in closed form."""
    return (activation or "identity") in _PIECEWISE


def known(activation: str | None) -> bool:
    a = activation or "identity"
    return a in _SMOOTH or a in _KINKED or a in _PIECEWISE or a in _EXPONENTIAL


def max_derivative(activation: str | None) -> float:
    a = activation or "identity"
    for table in (_SMOOTH, _KINKED):
        if a in table:
            return table[a][3]
    if a in _PIECEWISE:
        return max(_PIECEWISE[a][0])
    return math.inf


@dataclass(frozen=True)
class Moments:
    """Statistics of ``f(z)`` for a Gaussian pre-activation (see the module docstring)."""

    mean: float  # E[f(z)]
    second: float  # E[f(z)^2]
    d2: float  # E[f'(z)^2]
    saturated: float  # fraction of units whose |f'| is below 1 % of its largest value
    dead: float  # fraction of units with f'(z) = 0
    overflow: bool = False  # some moment is beyond float32


def moments(activation: str | None, mean: float, var: float) -> Moments:
    a = activation or "identity"
    return _moments(a, round4(mean), round4(max(var, 0.0)))


@lru_cache(maxsize=8192)
def _moments(a: str, mean: float, var: float) -> Moments:
    if a in _PIECEWISE:
        return _piecewise(a, mean, var)
    if a in _EXPONENTIAL:
        return _exponential(a, mean, var)
    table = _SMOOTH if a in _SMOOTH else _KINKED
    f, df, bounded, dmax = table[a]
    sd = math.sqrt(var)
    big = 1e12
    if not bounded and a in _LINEAR_TAIL and (sd > big or abs(mean) > big):
        # far beyond the grid: the activation is its linear tail (ReLU-like, or identity-like)
        slope_neg = 0.0 if a not in ("tanhshrink",) else 1.0
        lin = _piecewise_generic((slope_neg, 1.0, 1.0), (0.0, math.inf), mean, var)
        return lin
    if table is _SMOOTH and sd <= 2.0:
        points = [(mean + sd * u, w) for u, w in zip(*GH)]
    else:
        points = wide_rule(mean, sd)
    m1 = m2 = d2 = sat = dead = 0.0
    for z, w in points:
        fz, dz = f(z), df(z)
        m1 += w * fz
        m2 += w * fz * fz
        d2 += w * dz * dz
        if bounded and abs(dz) < 0.01 * dmax:
            sat += w
        if dz == 0.0 and a in DYING:
            dead += w
    return Moments(m1, m2, d2, sat, dead)


def _piecewise_generic(slopes, clips, mean, var) -> Moments:
    lo, hi = clips
    s0, s1, s2 = slopes
    sd = math.sqrt(var)
    pieces = [(-math.inf, lo, s0, lo), (lo, hi, s1, None), (hi, math.inf, s2, hi)]
    m1 = m2 = d2 = dead = 0.0
    for a, b, slope, anchor in pieces:
        if not a < b:
            continue
        p, e1, e2 = truncated_moments(a, b, mean, sd)
        if p <= 0:
            continue
        if anchor is None or not math.isfinite(anchor):
            # f(z) = slope * z on the piece (the middle piece goes through 0)
            f1, f2 = slope * e1, slope * slope * e2
        else:
            # f(z) = f(anchor) + slope * (z - anchor), continuous at the clip point, where the
            # middle piece (through 0) gives f(anchor) = s1 * anchor
            base = s1 * anchor
            f1 = base * p + slope * (e1 - anchor * p)
            f2 = (
                base * base * p
                + 2 * base * slope * (e1 - anchor * p)
                + slope * slope * (e2 - 2 * anchor * e1 + anchor * anchor * p)
            )
        m1 += f1
        m2 += f2
        d2 += slope * slope * p
        if slope == 0.0:
            dead += p
    dmax = max(slopes)
    bounded = s0 == 0.0 and s2 == 0.0
    sat = dead if bounded else 0.0
    return Moments(m1, max(m2, 0.0), d2, sat if dmax else 0.0, dead)


def _piecewise(a: str, mean: float, var: float) -> Moments:
    slopes, clips = _PIECEWISE[a]
    return _piecewise_generic(slopes, clips, mean, var)


def _exponential(a: str, mean: float, var: float) -> Moments:
    """``exp``: lognormal moments; ``square``: Gaussian moments of z^2 and (2z)^2."""
    if a == "square":
        if abs(mean) > 1e70 or var > 1e140:  # the fourth moment would overflow float64
            return Moments(1e300, 1e300, 1e300, 0.0, 0.0, True)
        m1 = mean * mean + var
        m2 = mean**4 + 6 * mean * mean * var + 3 * var * var
        d2 = 4 * (mean * mean + var)
        over = m2 > math.exp(2 * LOG_F32_MAX)
        return Moments(m1, min(m2, 1e300), d2, 0.0, 0.0, over)
    log_m1 = mean + var / 2
    log_m2 = 2 * mean + 2 * var
    over = log_m2 / 2 > LOG_F32_MAX
    cap = 690.0
    m1 = math.exp(min(log_m1, cap))
    m2 = math.exp(min(log_m2, cap))
    return Moments(m1, m2, m2, 0.0, 0.0, over)


def coherent(activation: str | None, mean: float, var_units: float, var_within: float) -> float:
    """``E_mu[(E_eps f(mu + s eps))^2]`` with ``mu ~ N(mean, var_units)`` and ``s^2 = var_within``:
    the second moment of the per-unit batch means of ``f``'s output."""
    a = activation or "identity"
    return _coherent(a, round4(mean), round4(max(var_units, 0.0)), round4(max(var_within, 0.0)))


@lru_cache(maxsize=8192)
def _coherent(a: str, mean: float, var_units: float, var_within: float) -> float:
    if a == "identity":
        return mean * mean + var_units
    if a == "exp":
        log = var_within + 2 * mean + 2 * var_units
        return math.exp(min(log, 690.0))
    su = math.sqrt(var_units)
    total = 0.0
    for u, w in zip(*GH_OUTER_SMALL):
        mu = mean + su * u
        m = min(abs(_mean_fast(a, mu, var_within)), 1e150)
        total += w * m * m
    return min(total, 1e300)


def _mean_fast(a: str, mean: float, var: float) -> float:
    """``E[f(z)]`` for the coherent moment: closed forms where there are, else Gauss–Hermite
    (a mean is smooth in its arguments even where the derivative is not)."""
    if a in _PIECEWISE or a in _EXPONENTIAL:
        return moments(a, mean, var).mean
    f = (_SMOOTH.get(a) or _KINKED[a])[0]
    sd = math.sqrt(max(var, 0.0))
    return sum(w * f(mean + sd * u) for u, w in zip(*GH))


def kurtosis(activation: str | None, mean: float, var: float) -> float:
    """``E[f(z)^4] / E[f(z)^2]^2`` for ``z ~ N(mean, var)``: how unevenly a layer's units share
    its output's energy (3 for a Gaussian, 6 for ReLU of a centred Gaussian). Over ``n`` units
    the squared norm of a layer's output then fluctuates with a relative variance of
    ``(kurtosis - 1) / n``, which compounds with depth (Hanin & Nica, 2019)."""
    return _kurtosis(activation or "identity", round4(mean), round4(max(var, 0.0)))


@lru_cache(maxsize=4096)
def _kurtosis(a: str, mean: float, var: float) -> float:
    if a == "exp":
        return math.exp(min(4 * var, 690.0))
    if a == "square":
        return 105.0 / 9.0 if mean == 0 else 11.0
    if not known(a):
        return 3.0
    if a in _PIECEWISE:
        slopes, clips = _PIECEWISE[a]

        def f(z):
            lo, hi = clips
            s0, s1, s2 = slopes
            if z < lo:
                return s1 * lo + s0 * (z - lo)
            if z > hi:
                return s1 * hi + s2 * (z - hi)
            return s1 * z
    else:
        f = (_SMOOTH.get(a) or _KINKED[a])[0]
    sd = math.sqrt(var)
    m2 = m4 = 0.0
    for z, w in wide_rule(mean, sd) if sd > 0 else [(mean, 1.0)]:
        v = f(z) ** 2
        m2 += w * v
        m4 += w * v * v
    return (m4 / m2) / m2 if m2 > 1e-300 else 3.0


#: beyond this factor between a heavy-tailed and a Gaussian pre-activation's moments, the
#: mean-field picture does not hold: a few units carry most of the signal, and one seed differs
#: from the next by orders of magnitude
TAIL_LIMIT = 10.0
#: fourth-moment ratios are capped here: far past TAIL_LIMIT, only "heavy" matters
R4_CAP = 1e30


def tail_degree(activation: str | None) -> float:
    """How a heavy tail of ``z`` passes to ``f(z)``: ``f(s z) ~ s^p f(z)`` for large ``s``.
    0 for bounded activations (the tail is clipped), 2 for ``x ** 2``, 1 for the others that
    grow like ``|z|``; ``inf`` for ``exp``."""
    a = activation or "identity"
    if a == "exp":
        return math.inf
    if a == "square":
        return 2.0
    return 0.0 if a in BOUNDED else 1.0


@dataclass(frozen=True)
class Tail:
    """Moments of ``f(z)`` for a heavy-tailed ``z`` (see ``tail_moments``)."""

    mean: float  # E[f]
    second: float  # E[f^2]
    r4: float  # E[f^4] / E[f^2]^2
    factor: float  # E[f^2] over its value for a Gaussian z of the same variance
    typical: bool  # factor <= TAIL_LIMIT: the mean-field value still describes a typical seed


def tail_moments(activation: str | None, mean: float, var: float, r4: float) -> Tail | None:
    """Moments of ``f(z)`` for ``z = mean + y`` whose centred part ``y`` has fourth-moment
    ratio ``r4`` (3 for a Gaussian), for the activations whose second moment is a higher moment
    of ``z`` (``x ** 2``: ``E[f^2] = E[z^4]``); None for the others and for a Gaussian ``z``.

    (``exp`` is left to its Gaussian closed form: a heavy tail only raises its moments, which
    already overflow float32 within a few layers.)"""
    a = activation or "identity"
    if a not in HEAVY_TAILED or r4 <= 3.0 * (1 + 1e-9) or var <= 0:
        return None
    q = mean * mean + var
    if not (q > 0 and math.isfinite(q)) or var < 1e-12 * q:
        return None
    # in shares of the second moment q (no overflow): mm = mean^2 / q, f = var / q
    mm, f = mean * mean / q, var / q
    e = min(r4, R4_CAP) / 3.0
    m2 = mm * mm + 6 * mm * f + 3 * e * f * f  # E[z^4] / q^2
    m2g = mm * mm + 6 * mm * f + 3 * f * f
    factor = m2 / m2g
    if factor > TAIL_LIMIT:
        return Tail(q, min(m2 * q * q, 1e300), R4_CAP, factor, False)
    # E[z^8] / q^4 of a Gaussian scale mixture: the Gaussian's terms scaled by
    # E[s^(2k)] = (r4 / 3)^(k(k-1)/2)
    m4 = mm**4 + 28 * mm**3 * f + 210 * mm * mm * f * f * e + 420 * mm * f**3 * e**3 + 105 * f**4 * e**6
    return Tail(q, min(m2 * q * q, 1e300), min(m4 / (m2 * m2), R4_CAP), factor, True)


def tail_kurtosis(activation: str | None, mean: float, var: float, r4: float) -> float:
    """Fourth-moment ratio ``E[f^4] / E[f^2]^2`` of ``f(z)``, where ``z``'s centred part has
    ratio ``r4``: the Gaussian value, scaled as the tail passes (``tail_degree``)."""
    base = kurtosis(activation, mean, var)
    p = tail_degree(activation)
    if r4 <= 3.0 or p == 0 or not math.isfinite(p):
        return base
    return min(base * math.exp(min(p * p * math.log(r4 / 3.0), 700.0)), R4_CAP)


def pointwise(activation: str | None):
    """``(f, f')`` of an activation as plain functions of one number (None when unknown)."""
    a = activation or "identity"
    if a in _SMOOTH or a in _KINKED:
        f, df = (_SMOOTH.get(a) or _KINKED[a])[:2]
        return f, df
    if a in _PIECEWISE:
        (s0, s1, s2), (lo, hi) = _PIECEWISE[a]

        def f(z):
            if z < lo:
                return s1 * lo + s0 * (z - lo)
            if z > hi:
                return s1 * hi + s2 * (z - hi)
            return s1 * z

        def df(z):
            return s0 if z < lo else s2 if z > hi else s1

        return f, df
    return None


def mean_slope(activation: str | None, mean: float, var: float) -> float:
    """``E[f'(z)]`` for ``z ~ N(mean, var)``: how much of a gradient shared by all positions
    an activation's mask keeps shared."""
    return _mean_slope(activation or "identity", round4(mean), round4(max(var, 0.0)))


@lru_cache(maxsize=4096)
def _mean_slope(a: str, mean: float, var: float) -> float:
    fns = pointwise(a)
    if fns is None:
        return 0.0
    df = fns[1]
    sd = math.sqrt(var)
    if a in _PIECEWISE:
        (s0, s1, s2), (lo, hi) = _PIECEWISE[a]
        if sd == 0:
            return df(mean)
        p_lo = cdf((lo - mean) / sd) if math.isfinite(lo) else 0.0
        p_hi = 1.0 - cdf((hi - mean) / sd) if math.isfinite(hi) else 0.0
        return s0 * p_lo + s2 * p_hi + s1 * (1.0 - p_lo - p_hi)
    points = [(mean + sd * u, w) for u, w in zip(*GH)] if sd <= 2 else wide_rule(mean, sd)
    return sum(w * df(z) for z, w in points)
