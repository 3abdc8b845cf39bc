"""Wording and evidence helpers shared by rules (no rule lives here)."""

from __future__ import annotations

from gradlint.vocab import Confidence, Hazard, ModelKind, Probe, Severity


def describe_names(first: str, last: str) -> str:
    return first if first == last else f"{first} … {last}"


def repeat_related(ctx, layers) -> list:
    """Related locations for the constants that set how often layers repeat."""
    out, seen = [], set()
    for layer in layers:
        for prov in layer.repeat:
            key = (prov.name, prov.line)
            if key not in seen:
                seen.add(key)
                out.append(ctx.related(None, f"{prov.name} = {prov.value!r}", line=prov.line))
    return out


def confidence_of(graph) -> Confidence:
    """``inferred`` when the builder resolved everything, ``heuristic`` otherwise."""
    return Confidence.HEURISTIC if graph.unknowns else Confidence.INFERRED


def training_target(loop, clip=None, length=None) -> tuple:
    """What ``--dynamic`` measures for a training-loop finding: the trained model (a class of
    this file, or one imported from another file of the run) over a few BPTT steps, its
    gradients reaching the update unclipped (or clipped as ``clip = ("norm" | "value", max)``)."""
    if loop.model is None or loop.model[0] not in (ModelKind.LOCAL, ModelKind.IMPORT):
        return ()
    kind, qualname = loop.model
    module, _, name = qualname.rpartition(".")
    target = [
        ("model", name if kind == ModelKind.IMPORT else qualname),
        ("layers", ()),
        ("expect", Probe.RECURRENT_EXPLODING),
        ("clip", clip),
    ]
    if length:
        target.append(("length", int(length)))  # the sequence length the code trains on
    if kind == ModelKind.IMPORT:
        target.append(("module", module))
    return tuple(target)


# ---------------------------------------------------------------- the flow profile's hazards
def flow_hazards(graph, *causes):
    """The graph's flow hazards with one of these causes (:mod:`gradlint.flow.hazards`)."""
    from gradlint.flow.hazards import judge

    return [h for h in judge(graph).hazards() if h.cause in causes]


def stack_hazards(graph, ctx, *causes):
    """:func:`flow_hazards` over at least the rule's ``min-layers`` weighted layers (the option
    of the stack rules)."""
    least = int(ctx.options["min-layers"])
    return [h for h in flow_hazards(graph, *causes) if len(h.layers) >= least]


def flow_cured(h, matched: str) -> str:
    """``"; with Kaiming init the ‖∇W‖ ratio would be 3.2e-01"``: what the flow model predicts
    with the matched initializer, when it predicted it; else empty."""
    if h.cured is None or h.cured.ratio is None:
        return ""
    return f"; with {matched} init the ‖∇W‖ ratio would be {h.cured.ratio:.1e}"


def flow_names(h) -> str:
    return describe_names(h.layers[0].name, h.layers[-1].name)


_DIRECTION = {
    "vanishing": "vanishes",
    "exploding": "explodes",
    "dead": "is exactly 0 below a dead layer",
    "none": "is healthy",
}


def flow_direction(h) -> str:
    """``the gradient vanishes`` / ``explodes`` / ``is exactly 0 below a dead layer``: from the hazard class
    the numbers decided, so the words cannot disagree with them."""
    return f"the gradient {_DIRECTION[str(h.hazard)]}"


def flow_sentence(h) -> str:
    """The quantity that crossed its threshold, in words, with its threshold."""
    from gradlint.flow.convention import THRESHOLDS as T

    n, test = h.numbers, h.test
    first, last = h.layers[0].name, h.layers[-1].name
    vanishing = str(h.hazard) == "vanishing"
    if test == "ratio":
        if vanishing:
            return (
                f"{first} gets about {n.ratio:.1e} of the weight gradient {last} gets "
                f"(‖∇W‖ ratio; vanishing below {T['vanishing-ratio']:.0e})"
            )
        return (
            f"{first} gets about {n.ratio:.1e} times the weight gradient {last} gets "
            f"(‖∇W‖ ratio; exploding above {T['exploding-ratio']:g})"
        )
    if test == "first":
        limit = (
            f"vanishing below {T['vanishing-absolute']:.0e}"
            if vanishing
            else f"exploding above {T['exploding-absolute']:.0e}"
        )
        return f"the weight gradient of {first} has a norm of about {n.first:.1e} ({limit})"
    if test == "total":
        return (
            f"the gradient of all the weights together has a norm of about {n.total:.1e} "
            f"(exploding above {T['exploding-total']:.0e})"
        )
    if test == "overflow":
        return "activations overflow float32, so the output and every gradient are inf or NaN"
    if test == "dead":
        return (
            f"with a probability of about {n.dead:.0%} every unit of some layer is 0 for the whole "
            f"batch, so every gradient below it is exactly 0"
        )
    return ""


#: the levels of a finding judged by the flow model (:func:`flow_severity`)
FLOW_SEVERITIES = {
    Severity.ERROR: "the predicted gradient is more than 100x beyond its threshold, overflows float32, "
    "or the net is dead "
    "with a probability over 90 %",
    Severity.WARNING: "the prediction is beyond its threshold, by less than that",
}


def flow_severity(h) -> str:
    """An error when the prediction is 100x beyond its threshold (or overflows, or the net is
    almost surely dead); a warning otherwise."""
    from gradlint.flow.convention import THRESHOLDS as T

    n, kind = h.numbers, str(h.hazard)
    if h.test == "overflow":
        return Severity.ERROR
    if kind == "dead":
        return Severity.ERROR if n.dead > 0.9 else Severity.WARNING
    if h.test == "saturation":
        return Severity.WARNING
    if kind == "vanishing":
        far = (n.ratio is not None and n.ratio < T["vanishing-ratio"] / 100) or (
            n.first is not None and n.first < T["vanishing-absolute"] / 100
        )
    else:
        far = (
            (n.first is not None and n.first > T["exploding-absolute"] * 100)
            or (n.total is not None and n.total > T["exploding-total"] * 100)
            or (n.ratio is not None and n.ratio > T["exploding-ratio"] * 100)
        )
    return Severity.ERROR if far else Severity.WARNING


def flow_confidence(graph, h) -> Confidence:
    return Confidence.HEURISTIC if graph.unknowns or h.detail.get("local") else Confidence.INFERRED


#: the probes of the rules that report the flow model's hazards (:func:`flow_report`)
FLOW_PROBES = (Probe.VANISHING, Probe.EXPLODING, Probe.DEAD)
#: the probe that confirms each hazard class of the flow model
_HAZARD_PROBES = {Hazard.VANISHING: Probe.VANISHING, Hazard.EXPLODING: Probe.EXPLODING, Hazard.DEAD: Probe.DEAD}


def flow_report(ctx, graph, h, span, message, help, related=(), severity=None) -> None:
    """Report one flow hazard with its class, its prediction and what --dynamic measures."""
    expect = _HAZARD_PROBES.get(h.hazard)
    ctx.report(
        span,
        message,
        severity=severity or flow_severity(h),
        confidence=flow_confidence(graph, h),
        help=help,
        related=tuple(related),
        layers=(h.layers[0].name, h.layers[-1].name),
        expect=expect,
        hazard=h.hazard,
        prediction=h.prediction(),
    )


def flow_related(ctx, h) -> list:
    chosen = list(h.layers[:1]) + (list(h.layers[-1:]) if len(h.layers) > 1 else [])
    return [ctx.related(l.span, f"{l.name} in the stack") for l in chosen]


def flow_matched_init(graph, h) -> tuple[str, str]:
    """The initializer that suits the stack's activations, and the remedy naming it."""
    from gradlint.flow.hazards import RELU_FAMILY

    acts = {graph.next_activation(l) for l in h.layers}
    if acts & RELU_FAMILY:
        return "Kaiming", 'initialize the weights with `nn.init.kaiming_normal_(w, nonlinearity="relu")`'
    return "Xavier", "initialize the weights with `nn.init.xavier_uniform_(w)`"


def flow_layer_count(graph, h) -> tuple[int, str, str]:
    """``(n, activation, detail)`` for naming a hazard's weighted layers as the user wrote them.

    When every layer is followed by the same activation: ``(40, "tanh", "")``, read "40 tanh
    layers". Otherwise the activation is "weighted" and the detail counts the activations that
    are there: ``(41, "weighted", "; tanh after 40 of them")`` for 40 tanh layers and a head,
    ``(14, "weighted", "; relu after 9, sigmoid after 4")``."""
    acts = [graph.next_activation(l) for l in h.layers]
    n = len(acts)
    named = [a for a in acts if a]
    kinds = sorted(set(named), key=lambda a: (-named.count(a), a))
    if len(kinds) == 1 and len(named) == n:
        return n, kinds[0], ""
    if not kinds:
        return n, "weighted", "; no activation between them"
    if len(kinds) == 1:
        return n, "weighted", f"; {kinds[0]} after {len(named)} of them"
    return n, "weighted", "; " + ", ".join(f"{a} after {named.count(a)}" for a in kinds)


def measured_rule(rule):
    """Class decorator of the rules whose findings ``--dynamic`` makes (GL9xx): engine-emitted,
    measured, and their examples the documented ones (measured by tests/test_dynamic.py)."""
    if rule.measures is None or not rule.measured_help:
        raise TypeError(f"{rule.code}: a measured rule declares `measures` and `measured_help`")
    rule.engine_emitted = True
    rule.measured = True
    rule.INVALID, rule.VALID = doc_examples(rule)
    return rule


def doc_examples(rule) -> tuple[list[str], list[str]]:
    """``(invalid, valid)``: the code blocks of a rule's ``## Example`` section, before and after
    its "Use instead:" (for rules whose examples are measured rather than linted)."""
    import re

    example = rule.doc_sections().get("Example", "")
    before, _, after = example.partition("Use instead:")
    blocks = re.compile(r"```python\n(.*?)```", re.S)
    return blocks.findall(before), blocks.findall(after)


# ---------------------------------------------------------------- fixers of training loops
def fix_position(ctx, span) -> tuple:
    """A span as 1-based character positions (what a fixer locates nodes by)."""
    e = ctx.edit(span, "")
    return (e.line, e.column, e.end_line, e.end_column)


def is_autograd(source, receiver) -> bool:
    """``torch.autograd.backward(loss)``: the receiver is the autograd module."""
    return source.code(receiver).endswith("autograd")


def runs_before(source, backward, step) -> bool:
    """The backward call runs before the update: earlier in the text, or inside the closure
    the update calls (LBFGS)."""
    import libcst

    if source.before(backward, step):
        return True
    closure = source.enclosing(backward, (libcst.FunctionDef,))
    return closure is not None and not source.contains(closure, step)


def amp_unscale(source, backward, step):
    """With a ``GradScaler`` (``scaler.scale(loss).backward()``): the ``scaler.unscale_(opt)``
    statement clipping needs first, "" when the loop unscales already, False when the update
    is not ``scaler.step(opt)``. "" without a scaler."""
    import libcst

    func = backward.func
    if not (
        isinstance(func, libcst.Attribute)
        and isinstance(func.value, libcst.Call)
        and isinstance(func.value.func, libcst.Attribute)
        and func.value.func.attr.value == "scale"
    ):
        return ""
    scaler = source.code(func.value.func.value)
    if not (
        isinstance(step, libcst.Call)
        and isinstance(step.func, libcst.Attribute)
        and step.func.attr.value == "step"
        and source.code(step.func.value) == scaler
        and step.args
    ):
        return False
    loop = source.enclosing(backward, (libcst.For, libcst.While)) or source.module
    if source.calls_in(loop, "unscale_"):
        return ""
    return f"{scaler}.unscale_({source.code(step.args[0].value)})"
