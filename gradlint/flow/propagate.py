"""The propagation pass: forward and backward moments over a layer graph at initialization.

Mean-field signal propagation (Poole et al. 2016; Schoenholz et al., ICLR 2017; Yang et al.,
ICLR 2019 for batch normalization), over the weight ensemble of the initializers the builder
found, in the convention of :mod:`gradlint.flow.convention`.

**Forward**, per node, per element of its output:

- ``m``: the mean; ``q``: the second moment ``E[x^2]``;
- ``c``: the *coherent* second moment, ``E_units[(E_batch x)^2]``: what a unit keeps in common
  over the batch (ReLU outputs share a positive mean; each unit of the next layer then gets an
  offset of its own). Batch normalization divides by the within-unit variance ``q - c``, which
  is why plain BatchNorm stacks explode (the offsets feed the backward pass, not the scale);
- ``pos``: spatial positions (or tokens) per example; ``width``: features or channels.

A weighted layer ``z = W x + b`` with weight variance ``s^2``, weight mean ``u``, fan-in ``n``:
``q_z = s^2 n q_x + u^2 (n (q_x - m_x^2) + n^2 m_x^2) + E[b^2]`` and alike for ``c``. An
activation maps a Gaussian pre-activation by :mod:`gradlint.flow.activations`.

**Backward**, per node: ``g``, the second moment of the loss gradient at the node's output,
starting from ``1 / (BATCH^2 P)`` at the model's output. Through a weighted layer
``g_x = (s^2 + u^2) fan_out g_z``; through an activation ``g_z = E[f'(z)^2] g_x``; through a
normalization ``g_x = gamma^2 g_y / var`` (times the finite-batch factor of batch statistics);
forks add the second moments of their branches (independent paths).

**Weight gradients**: ``‖∇W‖^2 = N · n_out · fan_in · g_z · X`` with ``N`` the output positions
of the batch and ``X = q_x`` (``q_x - c_x`` when the layer feeds a batch normalization, whose
backward removes the batch mean of the gradient). A layer applied several times adds up.

What the pass cannot model (an unresolved call, attention products, recurrent layers) makes
the node *uncertain*: its statistics are carried on as a guess so that the rest of the graph
is still computed, but every node whose forward or backward statistics depend on a guess is
marked, and the hazard tests use only certain layers.
"""

from __future__ import annotations

import math

from gradlint.flow import activations as A
from gradlint.flow import recurrent as R
from gradlint.flow.backward import BackwardMixin
from gradlint.flow.convention import BATCH, FLOAT32_MAX, SPATIAL, TOKENS
from gradlint.flow.layer_moments import LayerMixin
from gradlint.flow.moments import (
    as_int,
    bias_moments,
    centred_ratio,
    entry_kurtosis,
    layer_fans,
    mix_kurtosis,
    raw_ratio,
    spatial_dims,
    weight_moments,
)
from gradlint.flow.stats import BIG, HEAVY_WHY, Profile, Stat
from gradlint.vocab import Category

#: activations whose outputs are too heavy-tailed for the finite-width (log-normal) correction
_NO_SPREAD = frozenset({"exp", "square"})
_OVERFLOW_Q = FLOAT32_MAX**2  # a second moment past this: values are inf in float32


# ---------------------------------------------------------------- the pass
class _Pass(LayerMixin, BackwardMixin):
    def __init__(self, graph, inits=None, activations=None, batch: int = BATCH):
        self.g = graph
        self.inits = inits or {}  # layer name -> (var, mean) override
        self.acts = activations or {}  # node id -> activation override
        self.batch = batch
        # heavy tails only change what x ** 2 makes of its input: tracked where one is
        self.tails = any(a in A.HEAVY_TAILED for a in self.acts.values()) or any(
            graph.activation_of(n) in A.HEAVY_TAILED
            for n in graph.nodes()
            if n.op == "layer" and graph.category_of(n) == Category.ACTIVATION
        )
        self.stats: dict[int, Stat] = {}
        self.grads: dict[int, float | None] = {}
        self.bwd_certain: dict[int, bool] = {}
        self.factor: dict[int, float] = {}  # node id -> backward factor applied to g of its output
        self.blocked: set[int] = set()  # nodes whose gradient a zero-initialized layer stops at step 0
        self.zeroed: set[int] = set()  # nodes whose gradient zero weights stop for good (exactly 0)
        self.rnn: dict = {}  # recurrent node id -> (spec, per-layer weights, inputs, steps)
        self.rnn_steps_known: dict = {}  # recurrent node id -> whether the sequence length is known
        self.taps: dict = {}  # conv node id -> fraction of its kernel taps inside the map
        self.batch_norms: dict = {}  # BatchNorm node id -> (gamma^2 / var * n / (n - 3), n)
        self.rho: dict = {}  # node id -> fraction of its output gradient shared by all positions
        self.rnn_back: dict = {}  # recurrent node id -> (g at its input, sum of ||grad W||^2 / batch)
        self.overflow_node = None
        self.notes: list[str] = []

    # ------------------------------------------------------------ forward
    def run(self) -> Profile:
        nodes = self.g.nodes()
        floors = True  # every uncertainty so far is a heavy tail's
        for node in nodes:
            preds = [self.stats[p.id] for p in self.g.predecessors(node) if p.id in self.stats]
            st = self.forward(node, preds)
            if not st.certain and all(p.certain for p in preds):
                floors = floors and bool(st.why) and st.why.startswith(HEAVY_WHY)
            if st.q > _OVERFLOW_Q or st.overflow:
                st.overflow = True
                # past a heavy tail the Gaussian moments are a floor under the true ones: an
                # overflow of the floor is an overflow
                if self.overflow_node is None and (st.certain or floors):
                    self.overflow_node = node.id
            st.q = min(st.q, BIG)
            st.c = min(st.c, st.q)
            self.stats[node.id] = st
        self.backward(nodes)
        layers = self.weight_grads(nodes)
        beta = self.fluctuation(nodes, layers)
        if beta > 0:
            # the typical (geometric-mean) gradient of a narrow plain stack is below the mean-field
            # one: log ||x||^2 spreads with variance beta and its mean sits beta / 2 below
            shrink = math.exp(-beta / 4)
            for lf in layers:
                lf.grad_norm *= shrink
        prof = Profile(self.stats, self.grads, layers, self.overflow_node, self.notes, self.rnn)
        prof.fluctuation = beta
        prof.rnn_steps_known = dict(self.rnn_steps_known)
        prof.biased = any(
            (bias_moments(self.g, self.g.layer(l.name)) or (0.0, 0.0)) != (0.0, 0.0)
            for l in layers
            if l.name in self.g._layers
        )
        return prof

    def fluctuation(self, nodes, layers) -> float:
        """Hanin & Nica (2019): over a plain stack of finite width, the squared norm of the signal
        is log-normal, each layer of ``n`` units adding ``(kurtosis - 1) / n`` to the variance of
        its log (5/n for ReLU, 2/n for a linear layer). Normalization and residual adds undo the
        compounding, so only plain stacks (no norm, no merge) are corrected."""
        if any(n.op == "merge" for n in nodes) or any(self.g.category_of(n) == Category.NORM for n in nodes):
            return 0.0
        if not layers or not all(l.certain for l in layers):
            return 0.0
        beta = 0.0
        for node in nodes:
            if node.op != "layer":
                continue
            layer = self.g.layer_of(node)
            if layer is None or layer.category not in (Category.WEIGHTED, Category.PARAMETER):
                continue
            fans = layer_fans(layer)
            if fans is None or not fans[3]:
                return 0.0
            act_node = self._activation_after(node)
            st = self.stats[node.id]
            if act_node is not None:
                act = self.acts.get(act_node.id, self.g.activation_of(act_node))
                if act in _NO_SPREAD or not A.known(act):
                    return 0.0  # a heavy-tailed activation: the log-normal picture does not hold
                kurt = min(A.kurtosis(act, st.m, max(st.q - st.m * st.m, 0.0)), 20.0)
            else:
                kurt = 3.0
            beta += (kurt - 1.0) / fans[3]
        return beta

    def _next_past_shape_only(self, node):
        """The first node after ``node`` along a single-successor chain that is not a
        shape-only layer (dropout, pooling, flatten), or None."""
        cur = node
        for _ in range(8):
            succ = self.g.successors(cur)
            if len(succ) != 1 or succ[0].op != "layer":
                return None
            cur = succ[0]
            if self.g.category_of(cur) != Category.OTHER:
                return cur
        return None

    def _activation_after(self, node):
        nxt = self._next_past_shape_only(node)
        return nxt if nxt is not None and self.g.category_of(nxt) == Category.ACTIVATION else None

    def _input_of(self, preds) -> Stat:
        if not preds:
            return Stat(certain=False, why="no input reaches it")
        if len(preds) == 1:
            return preds[0]
        # several tensors into one call: their features side by side
        n = len(preds)
        return Stat(
            sum(p.m for p in preds) / n,
            sum(p.q for p in preds) / n,
            sum(p.c for p in preds) / n,
            max(p.pos for p in preds),
            None,
            all(p.certain for p in preds),
            any(p.overflow for p in preds),
        )

    def forward(self, node, preds) -> Stat:
        op = node.op
        if op == "input":
            return Stat(0.0, 1.0, 0.0, 1.0, None, True)
        if op == "output":
            return preds[0] if preds else Stat(certain=False)
        if op == "unknown":
            base = self._input_of(preds)
            return base.copy(certain=False, why="an operation gradlint does not model")
        if op == "scale":
            base = self._input_of(preds)
            f = self._scale_factor(node)
            if f is None:
                return base.copy(certain=False, why="a scale factor of unknown size")
            return base.copy(m=base.m * f, q=base.q * f * f, c=base.c * f * f)
        if op == "merge":
            return self.merge(node, preds)
        layer = self.g.layer_of(node)
        x = self._input_of(preds)
        if layer is None:
            return x.copy(certain=False, why="an unresolved layer")
        cat = layer.category
        if cat in (Category.WEIGHTED, Category.PARAMETER):
            return self.weighted(node, layer, x)
        if cat == Category.ACTIVATION:
            act = self.acts.get(node.id, layer.activation)
            return self.activation(act, x)
        if cat == Category.NORM:
            return self.norm(node, layer, x)
        if cat == Category.OTHER:
            return self.other(node, layer, x)
        if cat == Category.RECURRENT:
            return self.recurrent(node, layer, x)
        return x.copy(certain=False, why="an unresolved layer")

    # ------------------------------------------------------------ recurrent layers
    def _rnn_layers(self, layer, spec):
        kind, nl, inp, hid, n, dirs = spec
        rows = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
        out = []
        for k in range(n):
            fan_in = inp if k == 0 else hid * dirs
            w_ih = weight_moments(self.g, layer, f"weight_ih_l{k}", fan_in, rows * hid)
            w_hh = weight_moments(self.g, layer, f"weight_hh_l{k}", hid, rows * hid)
            b_ih = weight_moments(self.g, layer, f"bias_ih_l{k}", hid, hid)
            b_hh = weight_moments(self.g, layer, f"bias_hh_l{k}", hid, hid)
            if layer.params.get("bias", True) is False:
                b_ih = b_hh = (0.0, 0.0)
            if None in (w_ih, w_hh, b_ih, b_hh):
                return None
            bias_var = b_ih[0] + b_ih[1] ** 2 + b_hh[0] + b_hh[1] ** 2
            hh = self.g.init_of(layer, f"weight_hh_l{k}")
            identity = kind == "RNN" and hh is not None and hh.scheme == "eye" and hh.scale == 1.0
            out.append((fan_in, w_ih[0] + w_ih[1] ** 2, w_hh[0] + w_hh[1] ** 2, bias_var, identity))
        return out

    def recurrent(self, node, layer, x: Stat) -> Stat:
        spec = R.spec(layer)
        plan = self._rnn_layers(layer, spec) if spec else None
        if plan is None:
            return x.copy(certain=False, why=f"nn.{layer.kind} with arguments gradlint does not model")
        kind, nl, inp, hid, n, dirs = spec
        seq = self.g.sequence
        steps = seq[0] if seq else int(x.pos) if x.pos > 1 else R.STEPS
        q = x.q
        inputs = []
        over = x.overflow
        for i, (fan_in, v_ih, v_hh, b, ident) in enumerate(plan):
            inputs.append(q)
            top = i == len(plan) - 1
            u = R.unroll(kind, nl, fan_in, hid, v_ih, v_hh, b, q, None, steps, read_last=top, identity=ident)
            q = u.q_out
            over = over or u.overflow
        self.rnn[node.id] = (spec, plan, inputs, steps)
        self.rnn_steps_known[node.id] = bool(seq) or x.pos > 1
        # the top layer is read at its last step: one position per example
        return Stat(0.0, q, 0.0, 1.0, hid * dirs, x.certain, over)

    def _rnn_backward(self, s, gs: float):
        if s.id in self.rnn_back:
            return self.rnn_back[s.id]
        spec, plan, inputs, steps = self.rnn[s.id]
        kind, nl, inp, hid, n, dirs = spec
        g = gs
        weight_sq = 0.0
        for i, ((fan_in, v_ih, v_hh, b, ident), q) in reversed(list(enumerate(zip(plan, inputs)))):
            top = i == len(plan) - 1
            u = R.unroll(kind, nl, fan_in, hid, v_ih, v_hh, b, q, g, steps, read_last=top, identity=ident)
            weight_sq += dirs * u.weight_sq
            g = u.g_x * dirs
        self.rnn_back[s.id] = (g, weight_sq)
        return g, weight_sq

    def _scale_factor(self, node):
        if node.factor is not None:
            return node.factor
        if node.layer:
            layer = self.g._layers.get(node.layer)
            if layer is not None:
                init = layer.inits.get("weight")
                if init is not None and init.is_constant and init.value is not None:
                    return init.value
        return None

    def merge(self, node, preds) -> Stat:
        if not preds:
            return Stat(certain=False)
        certain = all(p.certain for p in preds)
        over = any(p.overflow for p in preds)
        pos = max(p.pos for p in preds)
        width = next((p.width for p in preds if p.width), None)
        kind = node.merge
        if kind == "split":  # one of the disjoint pieces of a tensor (``x.chunk(n)``)
            base = preds[0]
            parts = round(1.0 / node.factor) if node.factor else 1
            return base.copy(width=base.width // parts if base.width and parts else base.width)
        if kind == "add":
            m = sum(p.m for p in preds)
            cross = sum(preds[i].m * preds[j].m for i in range(len(preds)) for j in range(i + 1, len(preds)))
            q = sum(p.q for p in preds) + 2 * cross
            c = sum(p.c for p in preds) + 2 * cross
            cp = sum(p.cp for p in preds)
            atoms = None
            mixed = [p for p in preds if p.atoms]
            if len(mixed) == 1:
                # a mixture plus independent Gaussians: each component shifts and widens
                rest = [p for p in preds if p is not mixed[0]]
                dm = sum(p.m for p in rest)
                dv = sum(max(p.q - p.m * p.m, 0.0) for p in rest)
                atoms = tuple((w, mu + dm, v + dv) for w, mu, v in mixed[0].atoms)
            r4 = 3.0
            if self.tails:
                k = mix_kurtosis([(max(p.q - p.m * p.m, 0.0), centred_ratio(p.r4, p.m, p.q)) for p in preds])
                r4 = raw_ratio(k, m, q)
            return Stat(
                m, q, c, pos, width, certain, over, dying=max(p.dying for p in preds), r4=r4, cp=min(cp, c), atoms=atoms
            )
        if kind in ("cat", "select"):
            widths = [p.width for p in preds]
            if all(widths) and kind == "cat":
                tot = sum(widths)
                w = [x / tot for x in widths]
                width = tot
            else:
                w = [1 / len(preds)] * len(preds)
            return Stat(
                sum(a * p.m for a, p in zip(w, preds)),
                sum(a * p.q for a, p in zip(w, preds)),
                sum(a * p.c for a, p in zip(w, preds)),
                pos,
                width,
                certain,
                over,
                cp=sum(a * p.cp for a, p in zip(w, preds)),
            )
        if kind == "mul" and len(preds) == 2:
            gates = [self._is_gate_source(p) for p in self.g.predecessors(node)]
            if any(gates) and not all(gates):
                a, b = preds
                return Stat(a.m * b.m, a.q * b.q, a.c * b.c, pos, width, certain, over, dying=max(a.dying, b.dying))
        base = self._input_of(preds)
        return base.copy(certain=False, why="a product of two tensors (attention or a bilinear form)")

    def _is_gate_source(self, node) -> bool:
        """An elementwise gate: the output of a bounded activation (sigmoid, tanh)."""
        act = self.g.activation_of(node) if node.op == "layer" else None
        return act in ("sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign")

    def weighted(self, node, layer, x: Stat) -> Stat:
        fans = layer_fans(layer)
        if layer.name in self.inits:
            wm = self.inits[layer.name]
        else:
            wm = weight_moments(graph=self.g, layer=layer, fan_in=fans[0] if fans else None) if fans else None
        bm = bias_moments(self.g, layer)
        if fans is None or wm is None or bm is None:
            why = "the layer's size is unknown" if fans is None else "its initializer's scale is unknown"
            return x.copy(certain=False, why=why)
        fi, _fo, n_out, width, pos_factor = fans
        var, mu = wm
        bvar, bmu = bm
        if layer.kind in ("Embedding", "EmbeddingBag"):
            # a row per token: the rows' moments (token ids carry no gradient)
            q = var + mu * mu
            pos = float(TOKENS) if self._reads_input(node) else x.pos
            return Stat(mu, q, mu * mu, pos, width, x.certain)
        pos = x.pos
        if x.width is None and layer.kind.startswith(("Conv", "LazyConv")) and pos == 1.0 and self._reads_input(node):
            pos = float(SPATIAL[spatial_dims(layer.kind)] ** spatial_dims(layer.kind))
        frac, out_pos, share = self._conv_geometry(layer, pos)
        self.taps[node.id] = frac
        n = fi * frac  # zero padding: border outputs see fewer inputs
        var_x = max(x.q - x.c, 0.0)
        # a mean weight sums the inputs' shared means coherently (n^2), but not the means that
        # vary by position (n: a box filter over a ragged border pattern)
        level = max(x.c - x.cp, 0.0)
        shared = n * n * level + n * x.cp
        q = var * n * x.q + mu * mu * (n * var_x + shared) + bvar + bmu * bmu + 2 * bmu * mu * n * x.m
        c = var * n * x.c + mu * mu * shared + bvar + bmu * bmu + 2 * bmu * mu * n * x.m
        # the input's position-varying means stay so; its channel-level ones become partly so
        cp = (var * n + mu * mu * n) * x.cp + (var * n + mu * mu * n * n) * level * (1.0 - share)
        m = mu * n * x.m + bmu
        out_pos = out_pos if out_pos is not None else pos * pos_factor
        r4 = 3.0
        if self.tails:
            k = self._sum_kurtosis(layer, n, var * n * x.q, x, bvar, max(q - var * n * x.q - bvar - m * m, 0.0))
            r4 = raw_ratio(k, m, q)
        return Stat(m, q, min(c, q), out_pos, width, x.certain, x.overflow, dying=x.dying, r4=r4, cp=min(cp, c))

    def _sum_kurtosis(self, layer, n: float, a: float, x: Stat, b: float, rest: float) -> float:
        """Fourth-moment ratio of a layer's centred output: ``a`` from the random weights over
        ``n`` inputs (each a weight times an input: its ratio is the product of theirs, with the
        input's raw ratio, and the sum of ``n`` of them tends to 3 as ``1/n``), ``b`` from the
        bias, ``rest`` Gaussian."""
        if n <= 0 or a + b + rest <= 0:
            return 3.0
        k_a = 3.0 + (entry_kurtosis(self.g.init_of(layer, "weight")) * x.r4 - 3.0) / n
        k_b = entry_kurtosis(self.g.init_of(layer, "bias"))
        return mix_kurtosis([(a, k_a), (b, k_b), (rest, 3.0)])

    def _conv_geometry(self, layer, pos: float):
        """``(fraction of kernel taps inside the input, output positions, share)`` of a
        convolution on a square map of ``pos`` positions: zero padding on a small map (a 3x3
        kernel on 4x4 keeps 69 % of its taps, on 2x2 44 %) lowers the output's variance and the
        gradient alike; ``share`` is the part of a per-channel input mean's energy that stays the
        same at every output position (72 % for a 3x3 kernel on 4x4). ``(1, None, 1)`` when it
        does not apply or the sizes are unknown."""
        kind = layer.kind
        if (
            not kind.startswith(("Conv", "LazyConv"))
            or kind.startswith(("ConvTranspose", "LazyConvTranspose"))
            or pos <= 1
        ):
            return 1.0, None, 1.0
        dims = spatial_dims(kind)
        p = layer.params

        def per_dim(v, default):
            v = p.get(v, default)
            if isinstance(v, tuple) and v and all(as_int(a) is not None for a in v):
                return v[0] if len(set(v)) == 1 else None
            return as_int(v)

        k, st, pad, dil = (
            per_dim("kernel_size", None),
            per_dim("stride", 1),
            per_dim("padding", 0),
            per_dim("dilation", 1),
        )
        if not k or not st or pad is None or not dil:
            return 1.0, None, 1.0
        side = round(pos ** (1.0 / dims))
        if side < 1:
            return 1.0, None, 1.0
        span = dil * (k - 1) + 1
        out_side = (side + 2 * pad - span) // st + 1
        if out_side < 1:
            return 1.0, None, 1.0
        per_tap = [0] * k  # output positions where each tap falls inside the map
        for i in range(out_side):
            start = i * st - pad
            for t in range(k):
                if 0 <= start + t * dil < side:
                    per_tap[t] += 1
        inside = sum(per_tap)
        frac = (inside / (out_side * k)) ** dims
        # a channel's mean over positions keeps sum(f^2) / sum(f) of the per-position means'
        # energy (f: the share of positions a tap reaches): the rest varies by position
        shares = [n / out_side for n in per_tap]
        share = (sum(f * f for f in shares) / sum(shares)) ** dims if inside else 1.0
        return frac, float(out_side**dims), share

    def _reads_input(self, node) -> bool:
        preds = self.g.predecessors(node)
        return len(preds) == 1 and preds[0].op == "input"


def profile(graph, inits: dict | None = None, activations: dict | None = None, batch: int = BATCH) -> Profile:
    """The flow profile of ``graph``. ``inits`` (layer name -> (variance, mean)) and
    ``activations`` (node id -> activation) override what the source says: the counterfactuals
    that attribute a hazard to its cause."""
    return _Pass(graph, inits, activations, batch).run()
