"""Plain stacks and their gradient flow: the analysis behind GL202, GL203 and GL301.

A *plain segment* is a maximal chain of weighted layers along the forward dataflow joined only
through activations and shape-only layers (dropout, pooling, flatten): normalization, merges
(residual adds, concatenations), recurrent layers and unresolved calls end it. Its gradient
flow at initialization is estimated with the mean-field recursions of
:mod:`gradlint.graph.gain`, from each layer's weight-init scale and activation; the estimate is
calibrated against torch by ``benchmarks/calibrate.py``.

A segment whose estimate leaves the healthy band is a *stack hazard*. Its cause decides which
rule reports it, so that one hazard gives one finding:

- ``init-scale``: a fixed-scale initializer (``normal_(0, 1)``, ``uniform_(-a, a)``,
  ``torch.randn``) — with the initializer matched to the activation the stack is healthy (GL202);
- ``init-mismatch``: Xavier on ReLU-family layers, Kaiming on sigmoid/tanh, or PyTorch's default
  init — the matched initializer makes it healthy (GL203);
- ``saturating``: sigmoid-like activations (derivative at most 1/4) make it vanish whatever the
  init, or no initializer would help a saturating stack (GL101 reports it);
- ``depth``: neither a matched init nor other activations would fix it (GL301).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradlint.graph import gain

#: weighted layer kinds that form stacks (lookups and attention do not)
_STACK_KINDS_EXCLUDED = frozenset({"Embedding", "EmbeddingBag", "MultiheadAttention"})
RELU_FAMILY = frozenset({"relu", "relu6", "leaky_relu", "prelu", "rrelu", "elu", "celu", "gelu", "silu", "mish", "hardswish", "softplus"})
SATURATING = frozenset({"sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign"})
#: derivative bounded well below 1: they vanish through the activation itself
SIGMOID_LIKE = frozenset({"sigmoid", "hardsigmoid"})
FIXED_SCALE = frozenset({"normal", "uniform", "trunc_normal"})

#: healthy band, after gradient-flow monitors (AUTOTRAINER: vanishing when the first/last
#: weight-gradient ratio < 1e-3 and the first layer's gradient is tiny; exploding above 70)
DEFAULT_BAND = {
    "vanishing-ratio": 1e-3,
    "vanishing-gain": 1e-4,
    "exploding-ratio": 70.0,
    "exploding-gain": 1e4,
}


@dataclass(frozen=True)
class StackLayer:
    node: object  # Node
    layer: object  # Layer
    activation: str | None  # applied after this layer, before the next weighted one


@dataclass(frozen=True)
class StackHazard:
    layers: tuple[StackLayer, ...]
    estimate: gain.StackEstimate
    direction: str  # "vanishes" | "explodes"
    cause: str  # init-scale | init-mismatch | saturating | depth
    #: the estimate with every layer's init matched to its activation
    matched: gain.StackEstimate


def _is_stack_layer(graph, node) -> bool:
    if node.op != "layer":
        return False
    layer = graph.layer_of(node)
    if layer is None:
        return False
    if layer.category == "weighted":
        return layer.kind not in _STACK_KINDS_EXCLUDED
    return layer.category == "parameter"


def plain_segments(graph) -> list[tuple[StackLayer, ...]]:
    """Maximal plain segments, in forward order (see the module docstring)."""
    nxt: dict[int, tuple] = {}
    has_prev: set[int] = set()
    stack_nodes = [n for n in graph.nodes() if _is_stack_layer(graph, n)]
    after_act: dict[int, str | None] = {}
    for w in stack_nodes:
        act = None
        cur = w
        while True:
            succ = graph.successors(cur)
            if len(succ) != 1:
                break
            s = succ[0]
            if len(graph.predecessors(s)) != 1 or s.op != "layer":
                break
            if _is_stack_layer(graph, s):
                nxt[w.id] = (s, act)
                has_prev.add(s.id)
                break
            cat = graph.category_of(s)
            if cat == "activation":
                act = graph.activation_of(s)
            elif cat != "other":
                break  # norm, recurrent, unknown
            cur = s
        after_act[w.id] = act
    segments = []
    for w in stack_nodes:
        if w.id in has_prev:
            continue
        chain = []
        cur = w
        seen = set()
        while cur is not None and cur.id not in seen:
            seen.add(cur.id)
            step = nxt.get(cur.id)
            act = step[1] if step else after_act.get(cur.id)
            chain.append(StackLayer(cur, graph.layer_of(cur), act))
            cur = step[0] if step else None
        segments.append(tuple(chain))
    return segments


def matched_scale(activation: str | None) -> float:
    """The init scale that suits an activation: He for ReLU-like, Xavier otherwise."""
    return 2**0.5 if activation in RELU_FAMILY else 1.0


def _bias_var(graph, layer) -> float:
    if layer.category == "parameter" or layer.params.get("bias", True) is False:
        return 0.0
    init = graph.init_of(layer, "bias")
    if init is None or init.is_default:
        fan_in = layer.fan_in
        return 1.0 / (3 * fan_in) if fan_in else 0.0
    return 0.0


def estimate(graph, segment, scales=None) -> gain.StackEstimate | None:
    """The mean-field estimate for a segment, or None when a scale or activation is unknown."""
    if scales is None:
        scales = [graph.init_scale(s.layer) for s in segment]
    if any(sc is None for sc in scales):
        return None
    acts = [s.activation for s in segment]
    if not all(gain.known(a) for a in acts):
        return None
    ratios, biases = [], []
    for s in segment:
        fi, fo = s.layer.fan_in, s.layer.fan_out
        ratios.append(fo / fi if fi and fo else 1.0)
        biases.append(_bias_var(graph, s.layer))
    return gain.estimate_stack(list(scales), acts, ratios, bias_vars=biases)


def direction_of(est: gain.StackEstimate, band: dict) -> str | None:
    """``vanishes`` when the first/last weight-gradient ratio *or* the backward gain is below
    its threshold: a ratio test alone misses uniform vanishing, where the forward signal and
    every gradient shrink together and the ratio stays near 1."""
    if est.weight_grad_ratio < band["vanishing-ratio"] or est.backward_gain < band["vanishing-gain"]:
        return "vanishes"
    if est.weight_grad_ratio > band["exploding-ratio"] or est.backward_gain > band["exploding-gain"]:
        return "explodes"
    return None


def stack_hazards(graph, band: dict | None = None, min_layers: int = 3) -> list[StackHazard]:
    """Plain segments whose estimated gradient flow leaves the band, with their cause."""
    band = {**DEFAULT_BAND, **(band or {})}
    out = []
    for seg in plain_segments(graph):
        if len(seg) < min_layers:
            continue
        est = estimate(graph, seg)
        if est is None:
            continue
        direction = direction_of(est, band)
        if direction is None:
            continue
        matched = estimate(graph, seg, [matched_scale(s.activation) for s in seg])
        if direction == "vanishes" and any(s.activation in SIGMOID_LIKE for s in seg):
            # sigmoid' <= 1/4 shrinks the gradient whatever the init: the activation is the cause
            cause = "saturating"
        elif matched is not None and direction_of(matched, band) is None:
            fixed = any(
                (graph.init_of(s.layer, "weight") is not None and graph.init_of(s.layer, "weight").scheme in FIXED_SCALE)
                for s in seg
            )
            cause = "init-scale" if fixed else "init-mismatch"
        elif any(s.activation in SATURATING for s in seg):
            cause = "saturating"
        else:
            cause = "depth"
        out.append(StackHazard(seg, est, direction, cause, matched))
    return out


@dataclass(frozen=True)
class PlainPath:
    """The deepest path of weighted layers the gradient must cross with no skip connection."""

    depth: int
    first: object  # Node
    last: object  # Node
    normalized: bool  # some normalization lies on it


def deepest_plain_path(graph) -> PlainPath | None:
    """Weighted layers counted along the forward dataflow; at a merge the gradient takes the
    shallowest incoming path (a residual add's identity path resets the count)."""
    best: dict[int, tuple] = {}  # node id -> (depth, first node, normalized)
    top = None
    for node in graph.nodes():
        preds = [best[p.id] for p in graph.predecessors(node) if p.id in best]
        if not preds:
            incoming = (0, None, False)
        elif node.op == "merge":
            incoming = min(preds, key=lambda t: t[0])
        else:
            incoming = max(preds, key=lambda t: t[0])
        depth, first, normalized = incoming
        if _is_stack_layer(graph, node):
            depth += 1
            first = first or node
        elif graph.category_of(node) == "norm":
            normalized = True
        best[node.id] = (depth, first, normalized)
        if depth and (top is None or depth > top.depth):
            top = PlainPath(depth, first, node, normalized)
    return top


@dataclass(frozen=True)
class ResidualBlock:
    merge: object  # the add Node
    branch: tuple  # Nodes of the residual branch, in forward order
    normalized: bool
    scaled: bool  # LayerScale / a constant factor / a zero-initialized last layer / a gate
    #: squared backward gain of the branch at init (mean-field; 0 when unknown)
    chi: float


def _branch_chi(graph, branch) -> float | None:
    """Squared gain of a branch: prod over its weighted layers of scale^2 * E[f'^2]."""
    chi = 1.0
    weighted = [n for n in branch if _is_stack_layer(graph, n)]
    if not weighted:
        return None
    for node in weighted:
        scale = graph.init_scale(graph.layer_of(node))
        if scale is None:
            return None
        act = None
        cur = node
        for _ in range(8):  # the activation right after the layer, if any
            succ = graph.successors(cur)
            if len(succ) != 1 or succ[0].op != "layer":
                break
            cur = succ[0]
            if graph.category_of(cur) == "activation":
                act = graph.activation_of(cur)
                break
            if graph.category_of(cur) != "other":
                break
        if not gain.known(act):
            return None
        chi *= scale**2 * (gain.moments(act, 1.0)[1] if act else 1.0)
    return chi


def residual_blocks(graph) -> list[ResidualBlock]:
    """Every ``x + f(x)``-shaped add: the branch is what lies between the fork and the add."""
    import networkx as nx

    g = graph._g
    out = []
    for node in graph.nodes():
        if node.op != "merge" or node.merge != "add":
            continue
        preds = [p.id for p in graph.predecessors(node)]
        if len(preds) != 2:
            continue
        a, b = preds
        if nx.has_path(g, a, b):
            identity, tip = a, b
        elif nx.has_path(g, b, a):
            identity, tip = b, a
        else:
            continue
        members = (nx.descendants(g, identity) & (nx.ancestors(g, tip) | {tip}))
        branch = tuple(graph._nodes[i] for i in sorted(members))
        normalized = any(graph.category_of(n) == "norm" for n in branch)
        scaled = any(n.op == "scale" or (n.op == "merge" and n.merge == "mul") for n in branch)
        weighted = [n for n in branch if _is_stack_layer(graph, n)]
        if weighted:
            init = graph.init_of(graph.layer_of(weighted[-1]), "weight")
            if init is not None and init.is_constant and not init.value:
                scaled = True  # zero-init residual / Fixup
        chi = _branch_chi(graph, branch)
        out.append(ResidualBlock(node, branch, normalized, scaled, chi if chi is not None else 0.0))
    return out


def unnormalized_residual_chain(graph) -> list[ResidualBlock]:
    """The longest run of consecutive residual blocks with neither normalization nor scaling."""
    import networkx as nx

    blocks = [b for b in residual_blocks(graph) if not b.normalized and not b.scaled]
    best: list[ResidualBlock] = []
    run: list[ResidualBlock] = []
    for block in blocks:
        if run and not nx.has_path(graph._g, run[-1].merge.id, block.merge.id):
            run = []
        run.append(block)
        if len(run) > len(best):
            best = list(run)
    return best


def chain_estimate(graph, chain) -> float:
    """Backward gain through a chain of saturating activations (GL101), mean-field.

    Each link contributes its activation's derivative and the weight-init scale of the layer
    feeding the next activation; an unknown scale counts as 1 (Xavier).
    """
    def scale_of(node):
        layer = graph.layer_of(node) if node is not None else None
        scale = graph.init_scale(layer) if layer is not None else None
        return 1.0 if scale is None else scale

    scales = [scale_of(link.weighted) for link in chain]
    acts = [graph.activation_of(link.activation) for link in chain]
    # the layer the last activation feeds closes the chain (its scale is the last factor)
    after = None
    cur = chain[-1].activation
    for _ in range(16):
        succ = graph.successors(cur)
        if len(succ) != 1:
            break
        cur = succ[0]
        if _is_stack_layer(graph, cur):
            after = cur
            break
    scales.append(scale_of(after))
    biases = [_bias_var(graph, graph.layer_of(l.weighted)) if l.weighted is not None else 0.0 for l in chain]
    return gain.estimate_stack(scales, acts + [None], bias_vars=biases + [0.0]).backward_gain


def residual_chain_gain(graph, chain) -> float | None:
    """Backward gain over a run of residual blocks, from its last block to its first.

    Mean-field over the residual stream, tracking both its second moment ``q`` and the mean
    ``m`` its units share. Each block adds its branch output ``b`` to the stream:
    ``q <- q + E[b^2] + 2 m E[b]`` and ``m <- m + E[b]``, so bounded activations in later
    branches see larger pre-activations and saturate, and the block's backward factor is
    ``sqrt(1 + chi_b)`` with the branch gain ``chi_b`` at that scale.

    A non-centred branch (ReLU, GELU, sigmoid) makes the stream and its branches correlated
    through that shared mean, which the independent-unit recursion alone misses: measured
    30-block ReLU stacks grew about 10x more than ``prod sqrt(1 + chi_b)``. The backward pass
    picks up half of the forward growth the mean adds (in log scale):
    ``((q + E[b^2] + 2 m E[b]) / (q + E[b^2])) ** (1/4)`` per block, an empirical correction
    that ``make calibrate`` checks (within 3x on every residual cell; 1 for centred ones such
    as tanh). None when a branch layer's init or activation is unknown.
    """
    q_stream, m_stream = 1.0, 0.0
    log_gain = 0.0
    for i, block in enumerate(chain):
        layers = []
        for node in block.branch:
            if _is_stack_layer(graph, node):
                layers.append([node, None])
            elif layers and graph.category_of(node) == "activation":
                layers[-1][1] = graph.activation_of(node)
        if not layers:
            return None
        m_in, chi, b_mean = q_stream, 1.0, 0.0
        for node, act in layers:
            layer = graph.layer_of(node)
            scale = graph.init_scale(layer)
            if scale is None or not gain.known(act):
                return None
            q_pre = scale**2 * m_in + _bias_var(graph, layer)
            m_out, d2 = gain.moments(act, q_pre) if act else (q_pre, 1.0)
            b_mean = gain.mean(act, q_pre) if act else 0.0  # zero-mean weights centre a bare layer
            chi *= scale**2 * d2
            m_in = m_out
        plain = q_stream + m_in
        grown = plain + 2.0 * m_stream * b_mean
        if i > 0:  # from the last block back to the first block's branch
            log_gain += 0.5 * math.log1p(chi)
            if grown > plain > 0:
                log_gain += 0.25 * math.log(grown / plain)
        q_stream = min(grown, 1e300)
        m_stream = min(m_stream + b_mean, 1e150)
        post = _post_activation(graph, block.merge)
        if post is not None and gain.known(post):
            # post-activation blocks (torchvision's ResNet: ``relu(x + f(x))``): the stream itself
            # passes the activation, forward and backward
            second, d2 = gain.moments(post, q_stream)
            if i > 0:
                log_gain += 0.5 * math.log(max(d2, 1e-300))
            m_stream = gain.mean(post, q_stream)
            q_stream = max(second, 1e-300)
    return math.exp(log_gain)


def _post_activation(graph, merge) -> str | None:
    """The activation applied to a residual add's output before anything else, if any."""
    nxt = graph.successors(merge)
    if len(nxt) == 1 and nxt[0].op == "layer":
        return graph.activation_of(nxt[0])
    return None
