"""The forward pass through the layers with no weight matrix: activations (Gaussian
pre-activations mapped by :mod:`gradlint.flow.activations`, with the finite-width and
dead-layer corrections), normalizations (batch statistics included), shape-only layers and
pooling. A mixin of the propagation pass (:class:`gradlint.flow.propagate._Pass`)."""

from __future__ import annotations

import math

from gradlint.flow import activations as A
from gradlint.flow.gaussian import GH_OUTER, cdf, pdf
from gradlint.flow.moments import as_int, centred_ratio, kappa, spatial_dims, weight_moments
from gradlint.flow.stats import BIG, HEAVY_WHY, Stat
from gradlint.graph import catalog

#: non-decreasing activations: the max of their outputs is the activation of the max
_MONOTONE = frozenset(
    {
        "relu",
        "relu6",
        "leaky_relu",
        "prelu",
        "rrelu",
        "elu",
        "celu",
        "selu",
        "sigmoid",
        "tanh",
        "hardtanh",
        "hardsigmoid",
        "softplus",
        "softsign",
        "identity",
    }
)
_F32_EPS = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps: RMSNorm's eps=None
#: exactly 0 below a threshold: their outputs are a point mass at 0 and the rest
_RECTIFIERS = frozenset({"relu", "threshold"})


class LayerMixin:
    """``activation``, ``norm``, ``other`` and ``pool``: one node's output statistics from its
    input's."""

    def activation(self, act, x: Stat) -> Stat:
        if act in ("softmax", "log_softmax", "softmin"):
            d = x.width
            if act == "log_softmax":
                # the output layer's usual read-out: the gradient passes almost unchanged
                return x.copy(certain=x.certain)
            if not d:
                return x.copy(certain=False, why="a softmax over an unknown size")
            return Stat(1.0 / d, 1.0 / (d * d), 1.0 / (d * d), x.pos, d, x.certain)
        if not A.known(act):
            return x.copy(certain=False, why=f"the activation `{act}` is not modelled")
        var = max(x.q - x.m * x.m, 0.0)
        mo = self._moments(act, x)
        units_var = max(x.c - x.m * x.m, 0.0)
        within = max(x.q - x.c, 0.0)
        c = A.coherent(act, x.m, units_var, within)
        mean, second, over, r4 = mo.mean, mo.second, x.overflow or mo.overflow, 3.0
        if self.tails and var > 1e-12 * x.q:
            k = centred_ratio(x.r4, x.m, x.q)
            tail = A.tail_moments(act, x.m, var, k)
            if tail is not None and not tail.typical:
                # the Gaussian moments go on (a floor under the mean: an overflow they reach is
                # seen), but nothing here on is a typical value
                return Stat(
                    mo.mean,
                    min(mo.second, BIG),
                    min(c, mo.second, BIG),
                    x.pos,
                    x.width,
                    False,
                    x.overflow or mo.overflow,
                    mo.saturated,
                    mo.dead,
                    why=(
                        f"{HEAVY_WHY} to `{act}` (fourth moment {k / 3:.2g} times a Gaussian's): a few units "
                        "carry most of the signal and seeds differ by orders of magnitude, which mean-field "
                        "moments do not describe"
                    ),
                )
            if tail is not None:
                mean, second = tail.mean, tail.second
                c = c * tail.second / mo.second if mo.second > 0 else c
                over = over or math.log(max(second, 1e-300)) / 2 > A.LOG_F32_MAX
                r4 = tail.r4
            else:
                r4 = A.tail_kurtosis(act, x.m, var, k)
        cp = 0.0
        if x.cp > 1e-3 * x.c:
            # the means shared by a channel's positions, and what varies on top of them
            level = max(x.c - x.cp, 0.0)
            cp = max(c - A.coherent(act, x.m, max(level - x.m * x.m, 0.0), max(x.q - level, 0.0)), 0.0)
        atoms = None
        if act in _RECTIFIERS and 0.0 < mo.dead < 1.0 and mo.second > 0:
            # exactly 0 where the input is below 0, and the rest (as one Gaussian)
            live = 1.0 - mo.dead
            m_live, q_live = mo.mean / live, mo.second / live
            atoms = ((mo.dead, 0.0, 0.0), (live, m_live, max(q_live - m_live * m_live, 0.0)))
        st = Stat(
            mean,
            min(second, BIG),
            min(c, second, BIG),
            x.pos,
            x.width,
            x.certain,
            over,
            mo.saturated,
            mo.dead,
            r4=r4,
            cp=min(cp, c),
            atoms=atoms,
        )
        st.dying = x.dying + (1 if act in A.DYING else 0)
        if act in A.DYING and x.width and x.q > 0:
            # (an exactly-zero input comes from a zero-initialized layer: blocked for one step,
            # which the backward pass accounts for, not dead)
            st.dead_layer = self._dead_layer(act, x, units_var, within)
        return st

    def _moments(self, act, x: Stat):
        """The activation's moments for the input ``x``: Gaussian, or over its mixture."""
        var = max(x.q - x.m * x.m, 0.0)
        if not x.atoms or not A.piecewise(act):
            # (the mixture matters for the piecewise-linear activations after a rectified
            # stream, whose moments are closed forms; a smooth one reads it close to a Gaussian)
            return A.moments(act, x.m, var)
        parts = [(w, A.moments(act, m, v)) for w, m, v in x.atoms]
        return A.Moments(
            sum(w * mo.mean for w, mo in parts),
            sum(w * mo.second for w, mo in parts),
            sum(w * mo.d2 for w, mo in parts),
            sum(w * mo.saturated for w, mo in parts),
            sum(w * mo.dead for w, mo in parts),
            any(mo.overflow for _, mo in parts),
        )

    def _dead_layer(self, act, x: Stat, units_var: float, within: float) -> float:
        """Probability that all ``width`` units give 0 for every example of the batch: a unit is
        dead for the batch when its offset and every example's deviation are negative. Units
        are taken independent (Lu et al., "Dying ReLU and Initialization", 2019)."""
        n_examples = self.batch * max(1, int(min(x.pos, 64)))
        su, sw = math.sqrt(units_var), math.sqrt(within)
        p_unit = 0.0
        for u, w in zip(*GH_OUTER):
            mu = x.m + su * u
            if sw == 0:
                p = 1.0 if mu <= 0 else 0.0
            else:
                p = cdf(-mu / sw) ** n_examples
            p_unit += w * p
        p_unit = min(max(p_unit, 0.0), 1.0)
        p_layer = p_unit**x.width
        if x.dying:
            # past a few ReLUs, a narrow net's examples collapse towards one direction (finite
            # width, which mean-field misses): a unit is then dead for all of them when its own
            # offset is, ``P(mu_i < 0)``, 1/2 for zero-mean pre-activations (Lu et al.). The
            # collapse takes about 8 layers: measured over 200 seeds, the per-layer death rate
            # is 2^-width after 8 ReLU layers and lower before (ramped in linearly)
            spread = math.sqrt(max(x.q - x.m * x.m, 0.0))
            collapsed = cdf(-x.m / spread) if spread > 0 else (1.0 if x.m <= 0 else 0.0)
            ramp = min(1.0, x.dying / 8.0)
            p_layer = max(p_layer, ramp * collapsed**x.width)
        return p_layer

    def norm(self, node, layer, x: Stat) -> Stat:
        gamma = 1.0
        init = layer.inits.get("weight")
        if init is not None and init.is_constant and init.value is not None:
            gamma = init.value
        elif init is not None and not init.is_default:
            wm = weight_moments(self.g, layer, "weight", 1, 1)
            gamma = math.sqrt(wm[0] + wm[1] ** 2) if wm else gamma
        beta = 0.0
        binit = layer.inits.get("bias")
        if binit is not None and binit.is_constant and binit.value is not None:
            beta = binit.value
        kind = layer.kind
        width = as_int(layer.params.get("num_features")) or as_int(layer.params.get("num_channels")) or x.width
        g2 = gamma * gamma
        # the eps added to the variance: below it, the input is not scaled up to unit variance
        eps = layer.params.get("eps")
        eps = (
            float(eps)
            if isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps >= 0
            else (_F32_EPS if kind == "RMSNorm" else 1e-5)
        )
        if max(x.q - x.m * x.m, 0.0) <= 1e-30 * max(x.q, 1e-300) or x.q == 0.0:
            # a constant input (zero weights before it): the output is beta, and the gradient
            # is scaled by gamma / sqrt(eps)
            self.factor[node.id] = g2 / 1e-5
            return Stat(beta, beta * beta, beta * beta, x.pos, width, x.certain, dying=x.dying)
        if kind in catalog.BATCH_NORMS or (kind in catalog.INSTANCE_NORMS and x.pos > 1):
            # BatchNorm removes each channel's mean over the batch and the positions: the
            # position-varying part of the means stays, as variance it divides by
            var = max(x.q - x.c + (x.cp if kind in catalog.BATCH_NORMS else 0.0), 0.0)
            n = self.batch * x.pos if kind in catalog.BATCH_NORMS else x.pos
            if var <= 1e-9 * x.q:
                # every unit constant over the batch (constant weights before it): the output is
                # beta, and the gradient is scaled by gamma / sqrt(eps), as torch computes it
                self.factor[node.id] = g2 / 1e-5
                return Stat(beta, beta * beta, beta * beta, x.pos, width, x.certain, dying=0)
            self.factor[node.id] = g2 / (var + eps) * kappa(n)
            if kind in catalog.BATCH_NORMS and n > 3:
                self.batch_norms[node.id] = (g2 / (var + eps) * n / (n - 3), n)
            cp = g2 * x.cp / (var + eps) if kind in catalog.BATCH_NORMS else 0.0
            # units re-centred, but for the position-varying means
            return Stat(beta, g2 * var / (var + eps) + beta * beta, beta * beta + cp, x.pos, width, x.certain, cp=cp)
        if kind in ("LayerNorm", "GroupNorm") or kind in catalog.INSTANCE_NORMS:
            var = max(x.q - x.m * x.m, 0.0)
            if kind == "GroupNorm":
                groups = as_int(layer.params.get("num_groups"))
                chans = as_int(layer.params.get("num_channels"))
                if not groups or not chans:
                    return x.copy(certain=False, why="a GroupNorm of unknown size")
                n = chans // groups * x.pos
            else:
                shape = layer.params.get("normalized_shape")
                n = as_int(shape) or (x.width if x.width else None)
                if n is None:
                    return x.copy(certain=False, why="a LayerNorm of unknown size")
            self.factor[node.id] = g2 / (var + eps) * kappa(n)
            c = g2 * max(x.c - x.m * x.m, 0.0) / (var + eps)
            q = g2 * var / (var + eps) + beta * beta
            return Stat(beta, q, min(c + beta * beta, q), x.pos, width, x.certain, dying=x.dying)
        if kind == "RMSNorm":
            ms = x.q + eps
            self.factor[node.id] = g2 / ms
            return Stat(
                x.m * gamma / math.sqrt(ms), g2 * x.q / ms, g2 * x.c / ms, x.pos, width, x.certain, dying=x.dying
            )
        return x.copy()  # LocalResponseNorm: nearly the identity at init

    def other(self, node, layer, x: Stat) -> Stat:
        kind = layer.kind
        if kind.startswith(("Dropout", "AlphaDropout", "FeatureAlphaDropout")):
            p = layer.params.get("p", 0.5)
            p = p if isinstance(p, (int, float)) and 0 <= p < 1 else None
            if p is None:
                return x.copy(certain=False, why="a dropout rate of unknown size")
            self.factor[node.id] = 1.0 / (1.0 - p)
            return x.copy(q=x.q / (1 - p), c=x.c)
        if kind == "Flatten":
            width = int(x.width * x.pos) if x.width else None
            return x.copy(pos=1.0, width=width)
        if kind in catalog.SHAPE_ONLY:
            return x.copy()
        if kind in catalog.POOLS:
            return self.pool(node, layer, x)
        return x.copy(certain=False, why=f"nn.{kind} is not modelled")

    def pool(self, node, layer, x: Stat) -> Stat:
        kind = layer.kind
        dims = spatial_dims(kind)
        if kind.startswith("Adaptive"):
            size = layer.params.get("output_size", 1)
            if isinstance(size, tuple) and size and all(as_int(v) for v in size):
                cells = 1
                for v in size:
                    cells *= v
            else:
                cells = as_int(size) ** dims if as_int(size) else None
            if cells is None:
                return x.copy(certain=False, why="an adaptive pooling of unknown size")
            out_pos = float(cells) if x.pos > 1 else 1.0
            if out_pos > x.pos > 0:
                # a larger output than input (VGG's 7x7 pool on a 2x2 map): each value is copied
                # to out/in places, and their gradients add
                self.factor[node.id] = out_pos / x.pos
                return x.copy(pos=out_pos)
            k = max(x.pos / out_pos, 1.0)
        elif kind.startswith(("Upsample", "UpsamplingNearest")):
            s = layer.params.get("scale_factor")
            s = s if isinstance(s, (int, float)) and s > 0 else None
            if s is None:
                return x.copy(certain=False, why="an upsampling of unknown size")
            k = 1.0 / (s**dims)
            out_pos = x.pos * s**dims
        else:
            ks = layer.params.get("kernel_size")
            ks = as_int(ks)
            st = as_int(layer.params.get("stride")) or ks
            if not ks:
                return x.copy(certain=False, why="a pooling of unknown size")
            k = float(st**dims)
            out_pos = max(x.pos / k, 1.0)
        if kind.startswith(("MaxPool", "AdaptiveMax")):
            # one input of each window gets the whole gradient
            self.factor[node.id] = 1.0 / k
            window = k
            if not kind.startswith("Adaptive"):
                ks = as_int(layer.params.get("kernel_size"))
                window = float(ks**dims) if ks else k
            return self._max_of(node, x, window, out_pos)
        if k >= 1:
            # an average of k values: their common part stays, the rest shrinks (neighbouring
            # values are taken independent)
            self.factor[node.id] = 1.0 / (k * k)
            if x.pos > 1 and out_pos <= 1:
                # a global average: the position-varying means average out with the rest
                level = max(x.c - x.cp, 0.0)
                return x.copy(q=level + (x.q - level) / k, c=level, cp=0.0, pos=out_pos)
            q = x.c + (x.q - x.c) / k if x.pos > 1 else x.q
            return x.copy(q=q, pos=out_pos)
        self.factor[node.id] = 1.0 / k  # nearest upsampling: each value copied 1/k times
        return x.copy(pos=out_pos)

    def _max_of(self, node, x: Stat, window: float, out_pos: float) -> Stat:
        """The max of ``window`` values. Through a non-decreasing activation the max commutes
        with it (``max relu(z) = relu(max z)``), so the max of the Gaussian pre-activations is
        taken and then activated; the one input that gets the gradient sits at that max, where
        the activation's slope is larger than on average."""
        preds = self.g.predecessors(node)
        act, pre = None, x
        if len(preds) == 1 and self.g.activation_of(preds[0]) in _MONOTONE and len(self.g.successors(preds[0])) == 1:
            act_node = preds[0]
            act = self.acts.get(act_node.id, self.g.activation_of(act_node))
            before = self.g.predecessors(act_node)
            if len(before) == 1:
                pre = self.stats[before[0].id]
            else:
                act, pre = None, x
        n = max(1, int(round(window)))
        if n == 1:
            return x.copy(pos=out_pos)
        sd = math.sqrt(max(pre.q - pre.m * pre.m, 0.0))
        fns = A.pointwise(act) if act is not None else None
        if act is not None and fns is None:
            return x.copy(pos=out_pos)
        m1 = m2 = d2 = 0.0
        steps = 240
        for i in range(steps):
            u = -6.0 + 12.0 * (i + 0.5) / steps
            w = n * pdf(u) * cdf(u) ** (n - 1) * 12.0 / steps
            z = pre.m + sd * u
            fz, dz = (fns[0](z), fns[1](z)) if fns else (z, 1.0)
            m1 += w * fz
            m2 += w * fz * fz
            d2 += w * dz * dz
        if act is not None:
            marginal = A.moments(act, pre.m, sd * sd).d2
            if marginal > 0:
                self.factor[node.id] *= d2 / marginal  # the gradient reaches the max's slope
        # every unit shares the max's mean; the units' own offsets scale with the values
        spread = max(x.c - x.m * x.m, 0.0) * (m2 / x.q if x.q > 0 else 0.0)
        return x.copy(m=m1, q=max(m2, 0.0), c=min(m1 * m1 + spread, 0.99 * m2), pos=out_pos)
