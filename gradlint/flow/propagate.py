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
from dataclasses import dataclass, field

from gradlint.flow import activations as A
from gradlint.flow import recurrent as R
from gradlint.flow.convention import BATCH, FLOAT32_MAX, FLOAT32_SUBNORMAL
from gradlint.graph import catalog
from gradlint.vocab import WEIGHT_CARRYING, Category

#: spatial size per dimension that --dynamic feeds a convolutional model (dynamic/plan.py)
SPATIAL = {1: 64, 2: 64, 3: 16}
#: tokens per example that --dynamic feeds an embedding
TOKENS = 32
_BIG = 1e300
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
#: activations whose outputs are too heavy-tailed for the finite-width (log-normal) correction
_NO_SPREAD = frozenset({"exp", "square"})
_HEAVY_WHY = "heavy-tailed inputs"
_F32_EPS = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps: RMSNorm's eps=None
#: exactly 0 below a threshold: their outputs are a point mass at 0 and the rest
_RECTIFIERS = frozenset({"relu", "threshold"})
_OVERFLOW_Q = FLOAT32_MAX**2  # a second moment past this: values are inf in float32

#: layers that only move, select or drop values
_SHAPE_ONLY = (
    "Flatten",
    "Unflatten",
    "Identity",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ChannelShuffle",
    "PixelShuffle",
    "PixelUnshuffle",
)
_POOLS = (
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "Upsample",
    "UpsamplingNearest2d",
)
_BATCH_NORMS = catalog.BATCH_NORMS
_INSTANCE_NORMS = catalog.INSTANCE_NORMS


@dataclass
class Stat:
    """Forward statistics of one node's output (per element)."""

    m: float = 0.0
    q: float = 1.0
    c: float = 0.0
    pos: float = 1.0
    width: int | None = None
    certain: bool = True
    overflow: bool = False
    #: for activations: fraction of saturated / dead units, and the probability that every
    #: unit of the layer is dead for the whole batch
    saturated: float = 0.0
    dead: float = 0.0
    dead_layer: float = 0.0
    why: str | None = None  # why the node is uncertain
    #: dying activations (ReLU) passed since the last batch normalization: after one, a narrow
    #: layer's inputs have collapsed towards one direction
    dying: int = 0
    #: fourth-moment ratio E[x^4] / E[x^2]^2 of the values (3: a centred Gaussian). Sums over a
    #: small fan-in of heavy-tailed inputs stay heavy-tailed, which raises what ``x ** 2`` makes
    #: of them (tracked only in graphs that have one)
    r4: float = 3.0
    #: the part of ``c`` that varies from position to position (a padded convolution on a small
    #: map gives border positions fewer taps, so a channel's mean differs by position): BatchNorm
    #: removes only the channel's mean over positions, so this part counts as its variance
    cp: float = 0.0
    #: the values as a mixture of Gaussians ``((weight, mean, variance), ...)`` where one
    #: Gaussian would misjudge an activation: a rectified stream is exactly 0 in part, so a
    #: residual add ``branch + relu(...)`` has a thinner lower tail than a Gaussian of its
    #: moments, and a ReLU after it passes more. None: Gaussian
    atoms: tuple | None = None

    def copy(self, **kw) -> "Stat":
        d = dict(self.__dict__)
        d["atoms"] = None  # a transform of the values: the mixture is not carried unless said
        d.update(kw)
        return Stat(**d)


@dataclass
class LayerFlow:
    """The prediction for one weighted layer, in forward order."""

    name: str
    node: int  # id of its first application
    grad_norm: float  # predicted ‖∇W‖
    out_grad_rms: float  # predicted RMS of the gradient at its output (first application)
    input_rms: float  # predicted RMS of its input
    certain: bool
    #: its gradient is exactly 0 at step 0 only because a zero-initialized layer (or a zero
    #: normalization scale) downstream blocks it; the first update unblocks it
    blocked: bool = False
    #: its gradient is exactly 0 because zero weights (not at the output) stop it: dead
    zeroed: bool = False
    numel: int = 0  # entries of its weight


@dataclass
class Profile:
    """The flow profile of one graph."""

    stats: dict  # node id -> Stat
    grads: dict  # node id -> g (second moment of dL/d output), None when no gradient reaches it
    layers: list  # LayerFlow, forward order (weighted layers only)
    overflow_node: int | None = None
    notes: list = field(default_factory=list)
    #: recurrent node id -> (spec, per-layer weights, inputs, steps), as unrolled
    rnn: dict = field(default_factory=dict)
    #: recurrent node id -> whether its sequence length is known (else recurrent.STEPS)
    rnn_steps_known: dict = field(default_factory=dict)
    #: variance of log ||x||^2 over the plain stack (finite width; 0 when not corrected)
    fluctuation: float = 0.0
    #: some weighted layer has a bias that is not exactly 0: past a dead layer, later layers
    #: still see a (constant) input and learn, so the net is not dead as a whole
    biased: bool = False

    # ------------------------------------------------------------ summaries
    def certain_layers(self) -> list:
        """The layers the tests judge: certain, and not blocked by a zero-initialized layer for
        the first step only (a zero output layer is a deliberate trick that recovers after one
        update, not a vanishing gradient)."""
        return [l for l in self.layers if l.certain and not l.blocked]

    @property
    def complete(self) -> bool:
        """Every weighted layer's prediction rests on modelled operations only."""
        return bool(self.layers) and all(l.certain for l in self.layers)

    def _pair(self):
        ls = self.certain_layers()
        return (ls[0], ls[-1]) if len(ls) >= 2 else (None, None)

    @property
    def first(self) -> float | None:
        ls = self.certain_layers()
        return ls[0].grad_norm if ls else None

    @property
    def last(self) -> float | None:
        ls = self.certain_layers()
        return ls[-1].grad_norm if ls else None

    @property
    def ratio(self) -> float | None:
        a, b = self._pair()
        if a is None:
            return None
        if b.grad_norm <= 0:
            return math.inf if a.grad_norm > 0 else None
        return a.grad_norm / b.grad_norm

    @property
    def gain(self) -> float | None:
        a, b = self._pair()
        if a is None or b.out_grad_rms <= 0:
            return None
        return a.out_grad_rms / b.out_grad_rms

    @property
    def total(self) -> float | None:
        ls = self.certain_layers()
        if not ls:
            return None
        return math.sqrt(min(sum(min(l.grad_norm, 1e150) ** 2 for l in ls), _BIG))

    @property
    def finite(self) -> bool:
        return self.overflow_node is None

    @property
    def underflows(self) -> bool:
        """Every judged layer but the last gets a gradient below float32's smallest value
        (1.4e-45 per entry): torch computes exactly 0 for them, as for a dead net."""
        ls = self.certain_layers()
        if len(ls) < 2:
            return False
        return all(l.numel and l.grad_norm / math.sqrt(l.numel) < FLOAT32_SUBNORMAL for l in ls[:-1])

    @property
    def zeroed(self) -> bool:
        """The first judged layer's gradient is exactly 0, stopped by zero weights for good."""
        ls = self.certain_layers()
        return bool(ls) and ls[0].zeroed

    @property
    def zeroed_below_head(self) -> bool:
        """Every judged layer but the last gets exactly 0 (a dead net, as measured)."""
        ls = self.certain_layers()
        return len(ls) >= 2 and all(l.zeroed for l in ls[:-1])

    @property
    def dead_probability(self) -> float:
        """Probability that some activation layer is dead for the whole batch at init (certain
        nodes only): then every gradient below it is exactly 0."""
        alive = 1.0
        for st in self.stats.values():
            if st.certain and st.dead_layer > 0:
                alive *= 1.0 - st.dead_layer
        return 1.0 - alive


# ---------------------------------------------------------------- parameters
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
        frac = 1.0 if t > 6 else max(1e-6, 1 - 2 * t * A._phi(t) / (2 * A._Phi(t) - 1))
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


def _entry_kurtosis(init) -> float:
    """Fourth-moment ratio of one parameter entry: 1.8 for a uniform draw (torch's default),
    3 for a normal one (and orthogonal rows, near enough)."""
    if init is None or init.is_default or "uniform" in init.scheme:
        return 1.8
    return 3.0


def _mix_kurtosis(parts) -> float:
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


def _raw_ratio(k: float, m: float, q: float) -> float:
    """``E[x^4] / E[x^2]^2`` of values of mean ``m`` and second moment ``q`` whose centred part
    has ratio ``k`` (skew left out)."""
    sh = _shares(m, q)
    if sh is None:
        return 3.0
    mm, f = sh
    return mm * mm + 6 * mm * f + k * f * f


def _centred_ratio(r4: float, m: float, q: float) -> float:
    """The centred part's ratio from the raw one (the inverse of ``_raw_ratio``)."""
    sh = _shares(m, q)
    if sh is None or sh[1] < 1e-12:
        return 3.0
    mm, f = sh
    return min(max((r4 - mm * mm - 6 * mm * f) / (f * f), 1.0), A.R4_CAP)


def _kappa(n: float) -> float:
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


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _dims(kind: str) -> int:
    return 1 if "1d" in kind else 3 if "3d" in kind else 2


def _stride(layer) -> int:
    s = layer.params.get("stride", 1)
    if isinstance(s, tuple) and s and all(_int(x) for x in s):
        out = 1
        for x in s:
            out *= x
        return out
    s = _int(s)
    return s ** _dims(layer.kind) if s else 1


def _fans(layer):
    """``(fan_in, fan_out, n_out, out_width, positions factor)`` of a weighted layer, or None."""
    kind, p = layer.kind, layer.params
    if layer.category == Category.PARAMETER:
        shape = p.get("shape")
        shape = shape if isinstance(shape, tuple) else ()
        if len(shape) == 2 and all(_int(d) for d in shape):
            return shape[0], shape[1], shape[1], shape[1], 1.0
        return None
    if kind in ("Embedding", "EmbeddingBag"):
        d = _int(p.get("embedding_dim"))
        return (1, d, d, d, 1.0) if d else None
    fi, fo = layer.fan_in, layer.fan_out
    if not fi or not fo:
        return None
    if kind.startswith(("Conv", "LazyConv")):
        out_ch = _int(p.get("out_channels"))
        stride = _stride(layer)
        groups = layer.groups
        if not groups:
            return None
        back = fo / groups  # each input feeds out / groups channels over the kernel
        if kind.startswith(("ConvTranspose", "LazyConvTranspose")):
            return fi, back, out_ch, out_ch, float(stride)
        return fi, back / stride, out_ch, out_ch, 1.0 / stride
    if kind in ("Linear", "LazyLinear", "Bilinear"):
        out = _int(p.get("out_features"))
        return fi, fo, out, out, 1.0
    return None


# ---------------------------------------------------------------- the pass
class _Pass:
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
                floors = floors and bool(st.why) and st.why.startswith(_HEAVY_WHY)
            if st.q > _OVERFLOW_Q or st.overflow:
                st.overflow = True
                # past a heavy tail the Gaussian moments are a floor under the true ones: an
                # overflow of the floor is an overflow
                if self.overflow_node is None and (st.certain or floors):
                    self.overflow_node = node.id
            st.q = min(st.q, _BIG)
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
            fans = _fans(layer)
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
                k = _mix_kurtosis([(max(p.q - p.m * p.m, 0.0), _centred_ratio(p.r4, p.m, p.q)) for p in preds])
                r4 = _raw_ratio(k, m, q)
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
        fans = _fans(layer)
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
            pos = float(SPATIAL[_dims(layer.kind)] ** _dims(layer.kind))
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
            r4 = _raw_ratio(k, m, q)
        return Stat(m, q, min(c, q), out_pos, width, x.certain, x.overflow, dying=x.dying, r4=r4, cp=min(cp, c))

    def _sum_kurtosis(self, layer, n: float, a: float, x: Stat, b: float, rest: float) -> float:
        """Fourth-moment ratio of a layer's centred output: ``a`` from the random weights over
        ``n`` inputs (each a weight times an input: its ratio is the product of theirs, with the
        input's raw ratio, and the sum of ``n`` of them tends to 3 as ``1/n``), ``b`` from the
        bias, ``rest`` Gaussian."""
        if n <= 0 or a + b + rest <= 0:
            return 3.0
        k_a = 3.0 + (_entry_kurtosis(self.g.init_of(layer, "weight")) * x.r4 - 3.0) / n
        k_b = _entry_kurtosis(self.g.init_of(layer, "bias"))
        return _mix_kurtosis([(a, k_a), (b, k_b), (rest, 3.0)])

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
        dims = _dims(kind)
        p = layer.params

        def per_dim(v, default):
            v = p.get(v, default)
            if isinstance(v, tuple) and v and all(_int(a) is not None for a in v):
                return v[0] if len(set(v)) == 1 else None
            return _int(v)

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
            k = _centred_ratio(x.r4, x.m, x.q)
            tail = A.tail_moments(act, x.m, var, k)
            if tail is not None and not tail.typical:
                # the Gaussian moments go on (a floor under the mean: an overflow they reach is
                # seen), but nothing here on is a typical value
                return Stat(
                    mo.mean,
                    min(mo.second, _BIG),
                    min(c, mo.second, _BIG),
                    x.pos,
                    x.width,
                    False,
                    x.overflow or mo.overflow,
                    mo.saturated,
                    mo.dead,
                    why=(
                        f"{_HEAVY_WHY} to `{act}` (fourth moment {k / 3:.2g} times a Gaussian's): a few units "
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
            min(second, _BIG),
            min(c, second, _BIG),
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
        for u, w in zip(*A._GH_OUTER):
            mu = x.m + su * u
            if sw == 0:
                p = 1.0 if mu <= 0 else 0.0
            else:
                p = A._Phi(-mu / sw) ** n_examples
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
            collapsed = A._Phi(-x.m / spread) if spread > 0 else (1.0 if x.m <= 0 else 0.0)
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
        width = _int(layer.params.get("num_features")) or _int(layer.params.get("num_channels")) or x.width
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
        if kind in _BATCH_NORMS or (kind in _INSTANCE_NORMS and x.pos > 1):
            # BatchNorm removes each channel's mean over the batch and the positions: the
            # position-varying part of the means stays, as variance it divides by
            var = max(x.q - x.c + (x.cp if kind in _BATCH_NORMS else 0.0), 0.0)
            n = self.batch * x.pos if kind in _BATCH_NORMS else x.pos
            if var <= 1e-9 * x.q:
                # every unit constant over the batch (constant weights before it): the output is
                # beta, and the gradient is scaled by gamma / sqrt(eps), as torch computes it
                self.factor[node.id] = g2 / 1e-5
                return Stat(beta, beta * beta, beta * beta, x.pos, width, x.certain, dying=0)
            self.factor[node.id] = g2 / (var + eps) * _kappa(n)
            if kind in _BATCH_NORMS and n > 3:
                self.batch_norms[node.id] = (g2 / (var + eps) * n / (n - 3), n)
            cp = g2 * x.cp / (var + eps) if kind in _BATCH_NORMS else 0.0
            # units re-centred, but for the position-varying means
            return Stat(beta, g2 * var / (var + eps) + beta * beta, beta * beta + cp, x.pos, width, x.certain, cp=cp)
        if kind in ("LayerNorm", "GroupNorm") or kind in _INSTANCE_NORMS:
            var = max(x.q - x.m * x.m, 0.0)
            if kind == "GroupNorm":
                groups = _int(layer.params.get("num_groups"))
                chans = _int(layer.params.get("num_channels"))
                if not groups or not chans:
                    return x.copy(certain=False, why="a GroupNorm of unknown size")
                n = chans // groups * x.pos
            else:
                shape = layer.params.get("normalized_shape")
                n = _int(shape) or (x.width if x.width else None)
                if n is None:
                    return x.copy(certain=False, why="a LayerNorm of unknown size")
            self.factor[node.id] = g2 / (var + eps) * _kappa(n)
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
        if kind in _SHAPE_ONLY:
            return x.copy()
        if kind in _POOLS:
            return self.pool(node, layer, x)
        return x.copy(certain=False, why=f"nn.{kind} is not modelled")

    def pool(self, node, layer, x: Stat) -> Stat:
        kind = layer.kind
        dims = _dims(kind)
        if kind.startswith("Adaptive"):
            size = layer.params.get("output_size", 1)
            if isinstance(size, tuple) and size and all(_int(v) for v in size):
                cells = 1
                for v in size:
                    cells *= v
            else:
                cells = _int(size) ** dims if _int(size) else None
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
            ks = _int(ks)
            st = _int(layer.params.get("stride")) or ks
            if not ks:
                return x.copy(certain=False, why="a pooling of unknown size")
            k = float(st**dims)
            out_pos = max(x.pos / k, 1.0)
        if kind.startswith(("MaxPool", "AdaptiveMax")):
            # one input of each window gets the whole gradient
            self.factor[node.id] = 1.0 / k
            window = k
            if not kind.startswith("Adaptive"):
                ks = _int(layer.params.get("kernel_size"))
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
            w = n * A._phi(u) * A._Phi(u) ** (n - 1) * 12.0 / steps
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

    # ------------------------------------------------------------ backward
    def backward(self, nodes) -> None:
        outputs = [n for n in nodes if n.op == "output"]
        if not outputs:
            return
        out = outputs[-1]
        preds = self.g.predecessors(out)
        if not preds:
            return
        head = preds[0]
        st = self.stats[head.id]
        per_example = (st.width or 0) * st.pos
        g_out = 1.0 / (self.batch**2 * per_example) if per_example else None
        for node in reversed(nodes):
            if node.op == "output":
                continue
            total = 0.0
            coherent = 0.0
            reached = False
            certain = True
            blocked_any = zeroed_any = False
            if node.id == head.id:
                if g_out is None:
                    self.notes.append("the output's size is unknown: gradients are relative")
                    total, reached, certain = 1.0, True, False
                else:
                    total, reached = g_out, True
            for s in self.g.successors(node):
                if s.op == "output":
                    continue
                gs = self.grads.get(s.id)
                if gs is None:
                    continue
                contrib, ok = self.through(s, node, gs)
                if contrib is None:
                    continue
                if contrib == 0.0:
                    if self._is_zero(s):
                        if self._recoverable(s):
                            blocked_any = True  # a zero output layer or branch end: for one step
                        else:
                            zeroed_any = True  # a zero hidden layer: exactly 0, and it stays so
                    elif s.id in self.zeroed:
                        zeroed_any = True
                    elif s.id in self.blocked:
                        blocked_any = True
                reached = True
                total += contrib
                coherent += contrib * self._rho_through(s, node)
                certain = certain and ok and self.bwd_certain.get(s.id, False)
            self.grads[node.id] = min(total, _BIG) if reached else None
            self.rho[node.id] = min(max(coherent / total, 0.0), 1.0) if reached and total > 0 else 0.0
            self.bwd_certain[node.id] = certain and reached
            if reached and total == 0.0 and zeroed_any:
                self.zeroed.add(node.id)
            elif reached and total == 0.0 and blocked_any:
                self.blocked.add(node.id)

    def through(self, s, node, gs: float):
        """``(g at node's output from successor s, certain)``."""
        st = self.stats[s.id]
        x = self.stats[node.id]
        if s.op in ("unknown",):
            return gs, False
        if s.op == "scale":
            f = self._scale_factor(s)
            return (gs * f * f, True) if f is not None else (gs, False)
        if s.op == "merge":
            if s.merge == "split":
                return gs * (s.factor if s.factor is not None else 1.0), st.certain
            if s.merge == "add" and st.certain:
                # the coherent parts of the inputs (a mean their units share) add in amplitude,
                # and the gradient along that shared direction gains the same cross term: each
                # input gets the add's forward gain over its incoherent sum. Measured: a stream
                # x + relu(W x) grows 1.6-1.8x per block forward and backward alike
                preds = [self.stats[p.id] for p in self.g.predecessors(s)]
                incoherent = sum(p.q for p in preds)
                if incoherent > 0 and st.q > incoherent and self._transmits_mean(s):
                    return gs * st.q / incoherent, True
                return gs, True
            if s.merge == "mul":
                others = [self.stats[p.id] for p in self.g.predecessors(s) if p.id != node.id]
                if not st.certain or not others:
                    return gs, False
                return gs * others[0].q, True
            return gs, st.certain
        layer = self.g.layer_of(s)
        if layer is None:
            return gs, False
        cat = layer.category
        if cat in (Category.WEIGHTED, Category.PARAMETER):
            if layer.kind in ("Embedding", "EmbeddingBag"):
                return None, True  # token ids take no gradient
            fans = _fans(layer)
            wm = self.inits.get(layer.name) or (weight_moments(self.g, layer, fan_in=fans[0]) if fans else None)
            if fans is None or wm is None:
                return gs, False
            fo = fans[1] * self.taps.get(s.id, 1.0)
            return gs * (wm[0] + wm[1] ** 2) * fo, st.certain
        if cat == Category.ACTIVATION:
            act = self.acts.get(s.id, layer.activation)
            if act == "log_softmax":
                return gs, st.certain
            if act in ("softmax", "softmin"):
                return gs * st.q, st.certain
            if not A.known(act):
                return gs, False
            return gs * self._moments(act, x).d2, st.certain and not st.overflow
        if cat == Category.NORM and s.id in self.batch_norms:
            base, n = self.batch_norms[s.id]
            return gs * base * self._bn_keep(s, n), st.certain
        if cat in (Category.NORM, Category.OTHER):
            f = self.factor.get(s.id, 1.0)
            return gs * f, st.certain
        if cat == Category.RECURRENT and s.id in self.rnn:
            return self._rnn_backward(s, gs)[0], st.certain and not st.overflow
        return gs, False

    def _transmits_mean(self, merge) -> bool:
        """Whether the branches of an add pass the stream's shared-mean direction back: a
        branch with a normalization projects it out (LayerNorm removes the mean over features,
        BatchNorm over the batch), so only unnormalized branches add the coherent gain."""
        return not any(self.g.category_of(n) == Category.NORM for n in self.g.branch_nodes(merge))

    # ------------------------------------------------------------ spatial coherence of gradients
    def _bn_keep(self, s, n: float) -> float:
        """The share of the gradient's energy BatchNorm's backward keeps. It removes the batch
        mean of the gradient and its component along the normalized input: 2 of ``n`` directions
        for a gradient that varies from position to position, but for the part shared by all
        positions of an example (what a global average pool sends back) the mean is over the
        ``batch`` examples only, so 1 in ``batch`` of that part goes."""
        rho = self.rho.get(s.id, 0.0)
        return rho * (1.0 - 1.0 / self.batch) + (1.0 - rho) * (1.0 - 2.0 / n)

    def _rho_through(self, s, node) -> float:
        """The position-shared fraction of the gradient ``s`` sends back to ``node``."""
        rho = self.rho.get(s.id, 0.0)
        if s.op != "layer":
            return rho
        layer = self.g.layer_of(s)
        if layer is None:
            return 0.0
        cat, kind = layer.category, layer.kind
        if cat in (Category.WEIGHTED, Category.PARAMETER):
            return rho * 0.5 if _stride(layer) > 1 else rho
        if cat == Category.ACTIVATION:
            x = self.stats[node.id]
            act = self.acts.get(s.id, layer.activation)
            slope = A.mean_slope(act, x.m, max(x.q - x.m * x.m, 0.0))
            d2 = A.moments(act, x.m, max(x.q - x.m * x.m, 0.0)).d2 if A.known(act) else 0.0
            return rho * min(1.0, slope * slope / d2) if d2 > 0 else 0.0
        if cat == Category.NORM:
            if s.id in self.batch_norms:
                n = self.batch_norms[s.id][1]
                keep = self._bn_keep(s, n)
                return rho * (1.0 - 1.0 / self.batch) / keep if keep > 0 else 0.0
            return rho
        if cat == Category.OTHER:
            x = self.stats[node.id]
            if kind.startswith(("AdaptiveAvg", "AvgPool")):
                return 1.0 if self.stats[s.id].pos <= 1 < x.pos else rho
            if kind.startswith(("MaxPool", "AdaptiveMax")):
                return rho * self.factor.get(s.id, 1.0)
            if kind == "Flatten":
                return 0.0 if x.pos > 1 else rho
            if kind.startswith("Dropout"):
                return rho / self.factor.get(s.id, 1.0)
            return rho
        return 0.0

    def _is_zero(self, s) -> bool:
        """A node that multiplies the gradient by exactly 0: zero weights, a zero scale."""
        if s.op == "scale":
            return self._scale_factor(s) == 0
        layer = self.g.layer_of(s) if s.op == "layer" else None
        if layer is None:
            return False
        if layer.category in (Category.WEIGHTED, Category.PARAMETER):
            fans = _fans(layer)
            wm = self.inits.get(layer.name) or (weight_moments(self.g, layer, fan_in=fans[0]) if fans else None)
            return wm is not None and wm[0] == 0.0 and wm[1] == 0.0
        if layer.category == Category.NORM:
            return self.factor.get(s.id, 1.0) == 0.0
        return False

    def _recoverable(self, s) -> bool:
        """A zero-initialized layer (or zero normalization scale) that recovers after one
        update: the model's last weighted layer, or the last layer of a residual branch (zero
        init residual, Fixup, SkipInit). Any other zero layer starves what lies before it."""
        layer = self.g.layer_of(s) if s.op == "layer" else None
        if layer is None:
            return False
        if layer.category == Category.NORM:
            return True  # a zero gamma: the output scale of its branch or stack, learnt in one step
        if not self.g.feeds_weighted(layer):
            return True
        return self.g.ends_in_skip(layer)

    # ------------------------------------------------------------ weight gradients
    def weight_grads(self, nodes) -> list:
        order: dict[str, list] = {}
        for node in nodes:
            if node.op != "layer":
                continue
            layer = self.g.layer_of(node)
            if layer is None or layer.category not in WEIGHT_CARRYING:
                continue
            order.setdefault(layer.name, []).append(node)
        out = []
        for name, apps in order.items():
            layer = self.g.layer(name)
            total = 0.0
            certain = True
            rms = None
            in_rms = None
            numel = 0
            for node in apps:
                st = self.stats[node.id]
                gz = self.grads.get(node.id)
                preds = self.g.predecessors(node)
                x = self.stats[preds[0].id] if preds else None
                if layer.category == Category.RECURRENT:
                    ok = (
                        st.certain
                        and self.bwd_certain.get(node.id, False)
                        and gz is not None
                        and node.id in self.rnn
                        and x is not None
                    )
                    if not ok:
                        certain = False
                        continue
                    total += self.batch * self._rnn_backward(node, gz)[1]
                    if rms is None:
                        rms, in_rms = math.sqrt(gz), math.sqrt(x.q)
                    continue
                fans = _fans(layer)
                ok = (
                    st.certain
                    and self.bwd_certain.get(node.id, False)
                    and gz is not None
                    and fans is not None
                    and x is not None
                )
                if not ok:
                    certain = False
                    continue
                fi, _fo, n_out, _w, _pf = fans
                if layer.kind in ("Embedding", "EmbeddingBag"):
                    xmom = 1.0
                elif self._feeds_batch_norm(node):
                    xmom = max(x.q - x.c, 0.0)
                else:
                    xmom = x.q
                n_pos = self.batch * st.pos
                total += n_pos * n_out * fi * self.taps.get(node.id, 1.0) * gz * xmom
                numel = n_out * fi
                if rms is None:
                    rms = math.sqrt(gz)
                    in_rms = math.sqrt(x.q)
            out.append(
                LayerFlow(
                    name,
                    apps[0].id,
                    math.sqrt(min(total, _BIG)),
                    rms or 0.0,
                    in_rms or 0.0,
                    certain and rms is not None,
                    all(a.id in self.blocked for a in apps),
                    all(a.id in self.zeroed for a in apps),
                    numel,
                )
            )
        return out

    def _feeds_batch_norm(self, node) -> bool:
        nxt = self._next_past_shape_only(node)
        layer = self.g.layer_of(nxt) if nxt is not None else None
        return layer is not None and layer.kind in _BATCH_NORMS


def profile(graph, inits: dict | None = None, activations: dict | None = None, batch: int = BATCH) -> Profile:
    """The flow profile of ``graph``. ``inits`` (layer name -> (variance, mean)) and
    ``activations`` (node id -> activation) override what the source says: the counterfactuals
    that attribute a hazard to its cause."""
    return _Pass(graph, inits, activations, batch).run()
