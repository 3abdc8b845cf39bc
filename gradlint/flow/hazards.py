"""Judging the flow profile: which hazard a model has, and what causes it.

The profile of the model as written is judged by the tests of :mod:`gradlint.flow.convention`
(the ones ``--dynamic`` applies to measurements). A hazard is then attributed to its cause by
counterfactuals, each the profile of the same graph with one thing changed, the way a person
would fix it:

1. ``overflow`` / ``initializer``: every weighted layer given the initializer matched to the
   activation after it (Kaiming for ReLU-family units, Xavier otherwise). If that cures the
   model, the initializer is the cause: a fixed-scale one (``normal_(0, 1)``,
   ``uniform_``, ``torch.randn``) is *init-scale*, the default or a mismatched scheme
   *init-mismatch*.
2. ``activation``: the saturating activations (sigmoid, tanh, ...) replaced by ReLU with the
   matched init. If that cures a vanishing model, the activation is the cause.
3. Otherwise the architecture: an exponential activation that overflows; normalization with
   no skip connection that explodes (*norm-without-skips*); unnormalized residual adds that
   explode (*residual-growth*); a narrow ReLU net that is born dead (*narrow-width*); and
   else depth without normalization (*depth*).

One model gives at most one gradient hazard, plus saturated bounded layers (a warning of
its own: one backward pass at init may not show them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gradlint.flow import activations as A
from gradlint.flow.convention import THRESHOLDS, classify
from gradlint.flow.moments import weight_moments
from gradlint.flow.propagate import profile
from gradlint.flow.stats import Profile
from gradlint.graph.model import UnknownKind
from gradlint.graph.stacks import plain_chains
from gradlint.vocab import Category, Cause, Hazard

RELU_FAMILY = frozenset(
    {"relu", "relu6", "leaky_relu", "prelu", "rrelu", "elu", "celu", "gelu", "silu", "mish", "hardswish", "threshold"}
)
#: bounded activations whose derivative is well below 1 (at most 1/4): vanishing whatever the init
SIGMOID_LIKE = frozenset({"sigmoid", "hardsigmoid"})
SATURATING = frozenset({"sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign"})
FIXED_SCALE = frozenset({"normal", "uniform", "trunc_normal"})
UNBOUNDED_FAST = frozenset({"exp", "square"})
#: a bounded layer with more than this fraction of saturated units at init
SATURATED_FRACTION = 0.5


#: causes of a gradient hazard (a saturated layer is a warning about training, not about the gradient)
GRADIENT_CAUSES = tuple(c for c in Cause if c is not Cause.SATURATED_LAYER)


@dataclass(frozen=True)
class Numbers:
    """The judged quantities of one profile."""

    ratio: float | None
    first: float | None
    total: float | None
    gain: float | None
    finite: bool
    dead: float  # probability that the net is born dead

    @classmethod
    def of(cls, p: Profile) -> "Numbers":
        """The judged numbers. A net is dead when every layer below the output gets exactly 0
        (the measured definition): zero weights stopping the gradient for good, float32
        underflow, or a dead ReLU layer with no bias anywhere to feed the layers after it. When
        only the layers before a dead part get 0 (later layers still learn from their biases),
        the first layer's gradient is 0: a vanishing gradient by the first-layer test."""
        first, ratio = p.first, p.ratio
        if p.zeroed_below_head or p.underflows:
            dead = 1.0
        elif p.zeroed:
            dead, first, ratio = 0.0, 0.0, 0.0
        elif p.biased and p.dead_probability > THRESHOLDS["dead-probability"]:
            dead, first, ratio = 0.0, 0.0, 0.0
        else:
            dead = p.dead_probability
        return cls(ratio, first, p.total, p.gain, p.finite, dead)

    def judge(self, thresholds=None) -> tuple[Hazard, str | None]:
        t = {**THRESHOLDS, **(thresholds or {})}
        return classify(
            self.ratio, self.first, self.total, self.gain, self.finite, self.dead > t["dead-probability"], t
        )


@dataclass
class FlowHazard:
    hazard: Hazard
    test: str | None
    cause: Cause
    numbers: Numbers
    profile: Profile
    layers: tuple  # Layer objects involved, forward order (first, ..., last)
    nodes: tuple = ()  # forward nodes the cause points at (activations, merges, norms)
    #: the numbers of the counterfactual that cures it, when one does
    cured: Numbers | None = None
    detail: dict = field(default_factory=dict)

    def prediction(self) -> dict:
        n = self.numbers
        return {
            "ratio": n.ratio,
            "first": n.first,
            "total": n.total,
            "gain": n.gain,
            "test": self.test,
            "layers": tuple((l.name, l.grad_norm) for l in self.profile.certain_layers()),
        }


def _matched_var(graph, layer) -> tuple[float, float] | None:
    fi = layer.fan_in
    if layer.category == Category.PARAMETER:
        shape = layer.params.get("shape")
        shape = shape if isinstance(shape, tuple) else ()
        fi = shape[0] if len(shape) == 2 and isinstance(shape[0], int) else None
    if not fi:
        return None
    act = graph.next_activation(layer)
    return ((2.0 if act in RELU_FAMILY else 1.0) / fi, 0.0)


def _near(graph, layer, var: float, factor: float = 100.0) -> bool:
    """The layer's init variance is within ``factor`` of ``var``."""
    wm = weight_moments(graph, layer, fan_in=layer.fan_in)
    if wm is None or var <= 0:
        return False
    have = wm[0] + wm[1] ** 2
    return have > 0 and 1.0 / factor <= have / var <= factor


def _weighted(graph):
    return [
        l
        for l in graph.layers()
        if l.category in (Category.WEIGHTED, Category.PARAMETER)
        and l.kind not in ("Embedding", "EmbeddingBag", "MultiheadAttention")
    ]


def _init_of(graph, layer):
    return graph.init_of(layer, "weight")


class Judge:
    """Judges one graph; the profile is computed once and cached."""

    def __init__(self, graph, thresholds: dict | None = None, relative: bool = False):
        self.graph = graph
        self.relative = relative  # a stretch of a model: its input scale is assumed, not known
        self.t = {**THRESHOLDS, **(thresholds or {})}
        self._profile = None
        self._hazards = None

    @property
    def profile(self) -> Profile:
        if self._profile is None:
            try:
                self._profile = profile(self.graph)
            except ArithmeticError as exc:  # a moment out of float range: nothing judged, said so
                self.graph.add_unknown(
                    f"the flow model could not follow the magnitudes ({exc})", None, UnknownKind.FLOW
                )
                self._profile = Profile({}, {}, [])
        return self._profile

    def hazards(self) -> list[FlowHazard]:
        if self._hazards is None:
            try:
                self._hazards = self._find()
            except ArithmeticError as exc:  # a moment out of float range: no judgement, said so
                self.graph.add_unknown(
                    f"the flow model could not follow the magnitudes ({exc})", None, UnknownKind.FLOW
                )
                self._hazards = []
        return self._hazards

    # ------------------------------------------------------------ finding
    def _find(self) -> list[FlowHazard]:
        g = self.graph
        p = self.profile
        out: list[FlowHazard] = []
        if self.relative:
            nums = Numbers.of(p)
            nums = Numbers(nums.ratio, None, None, nums.gain, nums.finite, nums.dead)
        else:
            nums = Numbers.of(p)
        hazard, test = nums.judge(self.t)
        certain = p.certain_layers()
        by_name = {l.name: l for l in g.layers()}
        involved = tuple(by_name[l.name] for l in certain if l.name in by_name)
        if not involved and not nums.finite:
            involved = tuple(by_name[l.name] for l in p.layers if l.name in by_name)
        if hazard is not Hazard.NONE and involved:
            out.append(self._attribute(hazard, test, nums, involved))
        if not self.relative:
            out.extend(self._saturated(skip={h.cause for h in out}))
            if not p.complete:
                out.extend(self._local(skip={l.name for h in out for l in h.layers}))
        return out

    def _local(self, skip) -> list[FlowHazard]:
        """Where part of the model is not modelled, the plain stretches that are: each chain of
        weighted layers joined only by activations and shape-only layers, profiled on its own
        from a unit-variance input, judged by the relative tests (ratio and gain)."""
        out = []
        for chain in plain_chains(self.graph):
            layers = [
                self.graph.layer_of(n)
                for n in chain
                if self.graph.category_of(n) in (Category.WEIGHTED, Category.PARAMETER)
            ]
            if len(layers) < 3 or any(l.name in skip for l in layers):
                continue
            if any(n.id not in self.profile.stats for n in chain):
                continue  # the model-level pass stopped (a magnitude out of range): said so already
            if all(self.profile.stats[n.id].certain for n in chain) and all(
                lf.certain for lf in self.profile.layers if lf.name in {l.name for l in layers}
            ):
                continue  # the model-level judgement already covers it
            sub = Judge(self.graph.chain_graph(chain), self.t, relative=True)
            for h in sub.hazards():
                h.detail["local"] = True
                out.append(h)
        return out

    def _cf(self, inits=None, acts=None) -> Numbers:
        return Numbers.of(profile(self.graph, inits, acts))

    def _attribute(self, hazard, test, nums, involved) -> FlowHazard:
        g, p = self.graph, self.profile
        weighted = _weighted(g)
        act_nodes = [n for n in g.nodes() if n.op == "layer" and g.activation_of(n)]

        def make(cause, nodes=(), cured=None, **detail):
            return FlowHazard(hazard, test, cause, nums, p, involved, tuple(nodes), cured, detail)

        constant = [l for l in weighted if self._constant_hidden(l)]
        if constant:
            # the constant weights are the cause when giving them a random init cures the model
            fixed = {l.name: mv for l in constant if (mv := _matched_var(g, l)) is not None}
            cf_const = self._cf(inits=fixed) if fixed else None
            if cf_const is None or cf_const.judge(self.t)[0] is Hazard.NONE:
                return make(Cause.CONSTANT_INIT, [], cured=cf_const, layers=tuple(l.name for l in constant))
        if hazard is Hazard.DEAD or (nums.first == 0.0 and p.dead_probability > self.t["dead-probability"]):
            narrow = [n for n in act_nodes if p.stats[n.id].dead_layer > 0]
            narrow.sort(key=lambda n: -p.stats[n.id].dead_layer)
            return make(Cause.NARROW_WIDTH, narrow[:1], width=p.stats[narrow[0].id].width if narrow else None)
        if hazard is Hazard.EXPLODING:
            rec = self._recurrent_growth()
            if rec is not None:
                node, chi, steps = rec
                return make(
                    Cause.RECURRENT,
                    [node],
                    layer=g.layer_of(node).name,
                    chi=chi,
                    steps=steps,
                    steps_known=p.rnn_steps_known.get(node.id, False),
                )
        saturating = [n for n in act_nodes if g.activation_of(n) in SATURATING and not self._is_gate(n)]
        sigmoids = [n for n in saturating if g.activation_of(n) in SIGMOID_LIKE]
        if hazard is Hazard.VANISHING and sigmoids and 2 * len(saturating) >= len(act_nodes):
            # sigmoid' <= 1/4 shrinks the gradient whatever the init: the activation is the cause
            return make(Cause.ACTIVATION, saturating)
        # the initializer: every weighted layer with the init matched to its activation
        matched, everywhere = {}, {}
        head = p.layers[-1].name if p.layers else None
        for layer in weighted:
            mv = _matched_var(g, layer)
            if mv is not None:
                everywhere[layer.name] = mv
            # a layer a normalization follows is scale-invariant: its init's scale changes
            # nothing downstream, only its own ||grad W|| (inversely). An init whose std is within
            # 10x of the matched one (a fan mode: 4.6x on a 3-channel 7x7 stem) is then no
            # cause; a far smaller one is. So is the head's: its scale moves every gradient
            # below it alike (and the first/last ratio with it), which a few-fold change does
            # not make a hazard
            if mv is not None and not (
                (self._normalized_after(layer) or layer.name == head) and _near(g, layer, mv[0])
            ):
                matched[layer.name] = mv
        cf = self._cf(inits=matched) if matched else None
        if cf is not None and cf.judge(self.t)[0] is Hazard.NONE:
            fixed = [l for l in weighted if (_init_of(g, l) is not None and _init_of(g, l).scheme in FIXED_SCALE)]
            if fixed and len(fixed) < len(matched):
                # a fixed-scale init is the cause only if matching those layers alone cures it
                alone = self._cf(inits={l.name: matched[l.name] for l in fixed if l.name in matched})
                if alone.judge(self.t)[0] is not Hazard.NONE:
                    fixed = []
            cause = Cause.INIT_SCALE if fixed else Cause.INIT_MISMATCH
            # the number reported is what the fix gives: the matched init on every layer
            shown = self._cf(inits=everywhere) if everywhere != matched else cf
            return make(cause, cured=shown, fixed=tuple(l.name for l in fixed))
        overflowing = [n for n in act_nodes if g.activation_of(n) in UNBOUNDED_FAST]
        if hazard is Hazard.EXPLODING and overflowing:
            first = next((n for n in overflowing if p.stats[n.id].overflow), overflowing[0])
            return make(Cause.OVERFLOW, [first], activation=g.activation_of(first))
        if hazard is Hazard.VANISHING and saturating:
            relu = {n.id: "relu" for n in saturating}
            relu_init = {}
            for layer in weighted:
                fi = layer.fan_in
                if fi:
                    relu_init[layer.name] = (2.0 / fi, 0.0)
            cf_act = self._cf(inits=relu_init, acts=relu)
            if cf_act.judge(self.t)[0] is Hazard.NONE:
                return make(Cause.ACTIVATION, saturating, cured=cf_act)
        norms = [n for n in g.nodes() if g.category_of(n) == Category.NORM]
        skips = [n for n in g.nodes() if g.is_skip_merge(n)]
        if hazard is Hazard.EXPLODING and norms and not skips:
            return make(Cause.NORM_WITHOUT_SKIPS, norms, kinds=tuple(sorted({g.layer_of(n).kind for n in norms})))
        if hazard is Hazard.EXPLODING and skips:
            stream = self._growth(skips)
            normalized = all(self._branch_normalized(m) for m in skips)
            g_first, g_last = p.grads.get(skips[0].id), p.grads.get(skips[-1].id)
            back = math.sqrt(g_first / g_last) if g_first and g_last else None
            return make(
                Cause.RESIDUAL_GROWTH, skips, growth=stream, back_growth=back, blocks=len(skips), normalized=normalized
            )
        return make(Cause.DEPTH, [], normalized=bool(norms), skips=bool(skips))

    def _normalized_after(self, layer) -> bool:
        """Every application of ``layer`` feeds a normalization, past shape-only layers and
        positively homogeneous activations (``relu(a z) = a relu(z)``): the layer's scale
        cancels."""
        g = self.graph
        apps = g.applications(layer)
        if not apps:
            return False
        for node in apps:
            cur = node
            for _ in range(8):
                succ = g.successors(cur)
                if len(succ) != 1 or succ[0].op != "layer":
                    return False
                cur = succ[0]
                cat = g.category_of(cur)
                if cat == Category.ACTIVATION and g.activation_of(cur) in A.HOMOGENEOUS:
                    continue
                if cat != Category.OTHER:
                    break
            if g.category_of(cur) != Category.NORM:
                return False
        return True

    def _constant_hidden(self, layer) -> bool:
        """A constant-initialized weight that feeds other layers (a zero output layer or branch
        end recovers after one update and is not a cause)."""
        init = _init_of(self.graph, layer)
        if init is None or not init.is_constant:
            return False
        if init.value == 0.0 and self.graph.ends_in_skip(layer):
            return False
        return bool(self.graph.feeds_weighted(layer))

    def _recurrent_growth(self):
        """The recurrent layer whose gradient through time grows fastest per step, when it grows:
        ``(node, per-step gain of the gradient norm, steps)``."""
        from gradlint.flow import recurrent as R

        best = None
        p = self.profile
        for node in self.graph.nodes():
            layer = self.graph.layer_of(node) if node.op == "layer" else None
            if layer is None or layer.category != Category.RECURRENT:
                continue
            plan = p.rnn.get(node.id)
            if plan is None:
                continue
            spec, layers, inputs, steps = plan
            kind, nl = spec[0], spec[1]
            worst = 0.0
            for (fan_in, v_ih, v_hh, b, ident), q in zip(layers, inputs):
                u = R.unroll(kind, nl, fan_in, spec[3], v_ih, v_hh, b, q, None, steps, identity=ident)
                worst = max(worst, R.gain_per_step(u))
            if worst > 1.0 and (best is None or worst > best[1]):
                best = (node, worst, steps)
        return best

    def _branch_normalized(self, merge) -> bool:
        """Whether the residual branch ending at this add has a normalization in it."""
        return any(self.graph.category_of(n) == Category.NORM for n in self.graph.branch_nodes(merge))

    def _growth(self, merges) -> float:
        """RMS of the residual stream at the last add over that at the first add's input."""
        p = self.profile
        first = self.graph.predecessors(merges[0])
        q0 = min((p.stats[x.id].q for x in first), default=1.0) or 1.0
        q1 = p.stats[merges[-1].id].q
        return math.sqrt(q1 / q0) if q0 > 0 else math.inf

    def _is_gate(self, node) -> bool:
        return self.graph.is_gate(node)

    def _saturated(self, skip) -> list[FlowHazard]:
        """Bounded layers saturated at init (more than half their units beyond the linear
        range): one warning for the model even when it is shallow, unless the gradient hazard
        already found has the same remedy (its initializer or its activation)."""
        if skip & {Cause.ACTIVATION, Cause.INIT_SCALE, Cause.INIT_MISMATCH}:
            return []
        g, p = self.graph, self.profile
        layers, nodes, worst = [], [], None
        for n in g.nodes():
            act = g.activation_of(n) if n.op == "layer" else None
            if act not in SATURATING or self._is_gate(n):
                continue
            st = p.stats.get(n.id)
            if st is None or not st.certain or st.saturated <= SATURATED_FRACTION:
                continue
            pre = g.nearest_weighted_before(n)
            layer = g.layer_of(pre) if pre is not None else None
            if layer is None or layer in layers:
                continue
            layers.append(layer)
            nodes.append(n)
            pre_std = math.sqrt(max(p.stats[pre.id].q, 0.0))
            if worst is None or st.saturated > worst[0]:
                worst = (st.saturated, act, pre_std)
        if not layers:
            return []
        return [
            FlowHazard(
                Hazard.VANISHING,
                "saturation",
                Cause.SATURATED_LAYER,
                Numbers.of(p),
                p,
                tuple(layers),
                tuple(nodes),
                None,
                {"fraction": worst[0], "activation": worst[1], "pre_std": worst[2]},
            )
        ]


def judge(graph, thresholds: dict | None = None) -> Judge:
    """The graph's judge, cached on the graph (rules share it) until :func:`forget`."""
    key = tuple(sorted((thresholds or {}).items()))
    cache = graph.__dict__.setdefault("_flow_judges", {})
    if key not in cache:
        cache[key] = Judge(graph, thresholds)
    return cache[key]


def forget(graph) -> None:
    """Drop the judges cached on ``graph``. A cached judge refers back to its graph, a cycle
    that reference counting cannot free: whoever is done with the graph's rules breaks it."""
    graph.__dict__.pop("_flow_judges", None)


__all__ = ["A", "FlowHazard", "Judge", "Numbers", "forget", "judge"]
