"""Integrals over a Gaussian, for the activation moments (:mod:`gradlint.flow.activations`)
and the flow model's order statistics: the standard normal's density and distribution function,
Gauss–Hermite rules, a midpoint rule for wide pre-activations, and the moments of a truncated
normal. Pure Python."""

from __future__ import annotations

import math
from functools import lru_cache

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


def pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / _SQRT2PI


def cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / _SQRT2)


def gauss_hermite(n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and weights of the probabilists' Gauss–Hermite rule: ``E[g(Z)] ≈ Σ w_i g(x_i)``
    for ``Z ~ N(0, 1)``. Newton's method on the orthonormal Hermite recurrence, from the usual
    asymptotic first guesses (the roots of the physicists' polynomial, scaled by √2)."""
    xs: list[float] = []
    ws: list[float] = []
    pim4 = math.pi**-0.25
    z = 0.0
    for i in range((n + 1) // 2):
        if i == 0:
            z = math.sqrt(2 * n + 1) - 1.85575 * (2 * n + 1) ** (-1 / 6)
        elif i == 1:
            z -= 1.14 * n**0.426 / z
        elif i == 2:
            z = 1.86 * z - 0.86 * xs[0]
        elif i == 3:
            z = 1.91 * z - 0.91 * xs[1]
        else:
            z = 2.0 * z - xs[i - 2]
        for _ in range(100):
            p1, p2 = pim4, 0.0
            for j in range(1, n + 1):
                p1, p2 = z * math.sqrt(2.0 / j) * p1 - math.sqrt((j - 1) / j) * p2, p1
            pp = math.sqrt(2.0 * n) * p2
            dz = p1 / pp
            z -= dz
            if abs(dz) < 1e-14:
                break
        xs.append(z)
        ws.append(2.0 / (pp * pp))
    nodes, weights = [], []
    for x, w in zip(xs, ws):
        nodes += [x * _SQRT2, -x * _SQRT2]
        weights += [w / math.sqrt(math.pi)] * 2
    if n % 2:  # the middle root (0) was counted twice
        nodes.pop()
        weights.pop()
    order = sorted(range(len(nodes)), key=nodes.__getitem__)
    return tuple(nodes[i] for i in order), tuple(weights[i] for i in order)


GH = gauss_hermite(48)
GH_OUTER = gauss_hermite(16)
GH_OUTER_SMALL = gauss_hermite(10)


def round4(x: float) -> float:
    """Four significant digits: the cache key (moments vary smoothly)."""
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.4g}")


def wide_rule(mean: float, sd: float) -> list[tuple[float, float]]:
    """Points and weights for ``E[g(z)]``, ``z ~ N(mean, sd^2)``, when ``sd`` is wide: the
    activation's own features (a saturation spike of width about 1 around 0) would fall
    between Gauss–Hermite nodes, so a midpoint rule runs on the union of a grid over the
    Gaussian and a fine grid over ``|z| < 12``, weighted by the density."""
    if sd == 0.0:
        return [(mean, 1.0)]
    return _wide_rule_cached(round4(mean), round4(sd))


@lru_cache(maxsize=2048)
def _wide_rule_cached(mean: float, sd: float) -> tuple:
    lo, hi = mean - 8 * sd, mean + 8 * sd
    edges = {lo, hi}
    step = (hi - lo) / 160
    edges.update(lo + i * step for i in range(1, 160))
    a, b = max(lo, -8.0), min(hi, 8.0)
    if a < b:
        n = max(2, int((b - a) / 0.05))
        edges.update(a + i * (b - a) / n for i in range(n + 1))
    edges = sorted(edges)
    probs = [cdf((x - mean) / sd) for x in edges]
    out = []
    for i in range(len(edges) - 1):
        p = probs[i + 1] - probs[i]
        if p > 0:
            out.append((0.5 * (edges[i] + edges[i + 1]), p))
    total = sum(w for _, w in out) or 1.0
    return tuple((z, w / total) for z, w in out)


def truncated_moments(lo: float, hi: float, mean: float, sd: float) -> tuple[float, float, float]:
    """``(P, E[z; lo<z<hi], E[z^2; lo<z<hi])`` for ``z ~ N(mean, sd^2)``."""
    if sd == 0.0:
        inside = lo < mean < hi
        return (1.0, mean, mean * mean) if inside else (0.0, 0.0, 0.0)
    a = (lo - mean) / sd if lo > -math.inf else -math.inf
    b = (hi - mean) / sd if hi < math.inf else math.inf
    pa, pb = (pdf(a) if math.isfinite(a) else 0.0), (pdf(b) if math.isfinite(b) else 0.0)
    p = (cdf(b) if math.isfinite(b) else 1.0) - (cdf(a) if math.isfinite(a) else 0.0)
    # moments of the standard normal on (a, b), then shifted and scaled
    e1 = pa - pb
    ea = a * pa if math.isfinite(a) else 0.0
    eb = b * pb if math.isfinite(b) else 0.0
    e2 = p + ea - eb
    m1 = mean * p + sd * e1
    m2 = mean * mean * p + 2 * mean * sd * e1 + sd * sd * e2
    return max(p, 0.0), m1, max(m2, 0.0)
