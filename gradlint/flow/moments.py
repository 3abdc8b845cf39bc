"""The moments of a layer's parameters at initialization, as the flow model uses them: the
variance and mean of a weight's entries under its initializer (:func:`weight_moments`), the
bias's (:func:`bias_moments`), their fourth moments (kurtosis) and a layer's fans and geometry."""

from __future__ import annotations

import math

from gradlint.flow import activations as A
from gradlint.flow.gaussian import cdf, pdf
from gradlint.vocab import Category


def weight_moments(graph, layer, param: str = "weight", fan_in: int | None = None, fan_out: int | None = None):
    """``(variance, mean)`` of a parameter's entries at init (after any factor applied to it),
    or None when unknown."""
    init = graph.init_of(layer, param)
    if init is None:
        return None
    base = _moments_of(init, layer, fan_in, fan_out)
    if base is None or init.scale == 1.0:
        return base
    return base[0] * init.scale**2, base[1] * init.scale


def _moments_of(init, layer, fan_in, fan_out):
    fi = fan_in if fan_in is not None else layer.fan_in
    fo = fan_out if fan_out is not None else layer.fan_out
    s = init.scheme
    if s == "default":
        if layer.category in (Category.WEIGHTED, Category.RECURRENT):
            if layer.kind in ("Embedding", "EmbeddingBag"):
                return 1.0, 0.0
            if layer.kind == "MultiheadAttention":
                return (2.0 / (fi + fo), 0.0) if fi and fo else None  # xavier_uniform_ in_proj
            if layer.category == Category.RECURRENT:
                h = layer.params.get("hidden_size")
                return (1.0 / (3 * h), 0.0) if isinstance(h, int) and h > 0 else None
            return (1.0 / (3 * fi), 0.0) if fi else None
        return None
    if init.is_constant:
        return (0.0, init.value) if init.value is not None else None
    if init.gain is not None and init.gain != init.gain:
        return None  # a gain given but not resolved
    if s.startswith("xavier"):
        g = init.gain if init.gain is not None else 1.0
        return (g * g * 2.0 / (fi + fo), 0.0) if fi and fo else None
    if s.startswith("kaiming"):
        g = init.gain if init.gain is not None else math.sqrt(2.0)
        fan = fo if init.mode == "fan_out" else fi
        return (g * g / fan, 0.0) if fan else None
    if s in ("orthogonal", "eye", "dirac"):
        g = init.gain if init.gain is not None and s == "orthogonal" else 1.0
        n = max(fi or 0, fo or 0)
        return (g * g / n, 0.0) if n else None
    mean = init.mean or 0.0
    if s == "normal" and init.std is not None:
        return init.std**2, mean
    if s == "trunc_normal" and init.std is not None:
        # torch's trunc_normal_ cuts at absolute a=-2, b=2: only a wide std loses variance
        t = 2.0 / init.std if init.std > 0 else math.inf
        frac = 1.0 if t > 6 else max(1e-6, 1 - 2 * t * pdf(t) / (2 * cdf(t) - 1))
        return init.std**2 * frac, mean
    if s == "uniform" and init.bound is not None:
        half = max(init.bound - abs(mean), 0.0)
        return half * half / 3.0, mean
    return None


def bias_moments(graph, layer) -> tuple[float, float] | None:
    """``(variance, mean)`` of the bias; (0, 0) when there is none."""
    if layer.category == Category.PARAMETER or layer.params.get("bias", True) is False:
        return 0.0, 0.0
    if layer.kind in ("Embedding", "EmbeddingBag"):
        return 0.0, 0.0
    init = graph.init_of(layer, "bias")
    if init is None or init.is_default:
        fi = layer.fan_in
        return (1.0 / (3 * fi), 0.0) if fi else None
    return weight_moments(graph, layer, "bias")


def entry_kurtosis(init) -> float:
    """Fourth-moment ratio of one parameter entry: 1.8 for a uniform draw (torch's default),
    3 for a normal one (and orthogonal rows, near enough)."""
    if init is None or init.is_default or "uniform" in init.scheme:
        return 1.8
    return 3.0


def mix_kurtosis(parts) -> float:
    """Fourth-moment ratio of a sum of independent centred parts ``(variance, ratio)``."""
    tot = sum(v for v, _ in parts)
    if not tot > 0 or not math.isfinite(tot):
        return 3.0
    w = [(v / tot, k) for v, k in parts]  # shares of the variance: no underflow
    return sum(k * f * f for f, k in w) + 6 * sum(
        w[i][0] * w[j][0] for i in range(len(w)) for j in range(i + 1, len(w))
    )


def _shares(m: float, q: float):
    """``(m^2 / q, var / q)``: the mean's and the spread's shares of the second moment."""
    if not q > 0 or not math.isfinite(q):
        return None
    mm = min(m * m / q, 1.0)
    return mm, 1.0 - mm


def raw_ratio(k: float, m: float, q: float) -> float:
    """``E[x^4] / E[x^2]^2`` of values of mean ``m`` and second moment ``q`` whose centred part
    has ratio ``k`` (skew left out)."""
    sh = _shares(m, q)
    if sh is None:
        return 3.0
    mm, f = sh
    return mm * mm + 6 * mm * f + k * f * f


def centred_ratio(r4: float, m: float, q: float) -> float:
    """The centred part's ratio from the raw one (the inverse of ``raw_ratio``)."""
    sh = _shares(m, q)
    if sh is None or sh[1] < 1e-12:
        return 3.0
    mm, f = sh
    return min(max((r4 - mm * mm - 6 * mm * f) / (f * f), 1.0), A.R4_CAP)


def kappa(n: float) -> float:
    """The backward factor of normalizing over ``n`` values, beyond ``gamma^2 / variance``.

    The statistics are estimated from the ``n`` values themselves: their biased variance ``s^2``
    has ``E[sigma^2 / s^2] = n / (n - 3)``, and the backward pass removes two of the ``n``
    directions (the mean and the normalized input itself), keeping ``(n - 2) / n`` of the
    gradient's energy: ``(n - 2) / (n - 3)`` together. Three values keep one direction
    (taken as 1); two keep none: the output is only the sign of their difference, and the
    gradient is what ``eps`` leaves (taken as 1e-6).
    """
    if n <= 2:
        return 1e-6
    if n <= 3:
        return 1.0
    return (n - 2) / (n - 3)


def as_int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def spatial_dims(kind: str) -> int:
    return 1 if "1d" in kind else 3 if "3d" in kind else 2


def layer_stride(layer) -> int:
    s = layer.params.get("stride", 1)
    if isinstance(s, tuple) and s and all(as_int(x) for x in s):
        out = 1
        for x in s:
            out *= x
        return out
    s = as_int(s)
    return s ** spatial_dims(layer.kind) if s else 1


def layer_fans(layer):
    """``(fan_in, fan_out, n_out, out_width, positions factor)`` of a weighted layer, or None."""
    kind, p = layer.kind, layer.params
    if layer.category == Category.PARAMETER:
        shape = p.get("shape")
        shape = shape if isinstance(shape, tuple) else ()
        if len(shape) == 2 and all(as_int(d) for d in shape):
            return shape[0], shape[1], shape[1], shape[1], 1.0
        return None
    if kind in ("Embedding", "EmbeddingBag"):
        d = as_int(p.get("embedding_dim"))
        return (1, d, d, d, 1.0) if d else None
    fi, fo = layer.fan_in, layer.fan_out
    if not fi or not fo:
        return None
    if kind.startswith(("Conv", "LazyConv")):
        out_ch = as_int(p.get("out_channels"))
        stride = layer_stride(layer)
        groups = layer.groups
        if not groups:
            return None
        back = fo / groups  # each input feeds out / groups channels over the kernel
        if kind.startswith(("ConvTranspose", "LazyConvTranspose")):
            return fi, back, out_ch, out_ch, float(stride)
        return fi, back / stride, out_ch, out_ch, 1.0 / stride
    if kind in ("Linear", "LazyLinear", "Bilinear"):
        out = as_int(p.get("out_features"))
        return fi, fo, out, out, 1.0
    return None
