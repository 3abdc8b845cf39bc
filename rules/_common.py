"""Wording and evidence helpers shared by rules (no rule lives here)."""

from __future__ import annotations


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


def confidence_of(graph) -> str:
    """``inferred`` when the builder resolved everything, ``heuristic`` otherwise."""
    return "heuristic" if graph.unknowns else "inferred"


def stack_names(hazard) -> str:
    return describe_names(hazard.layers[0].layer.name, hazard.layers[-1].layer.name)


def stack_activations(hazard) -> str:
    """``relu`` for a ReLU stack (a last layer without activation is the stack's output)."""
    acts = [s.activation for s in hazard.layers]
    if acts and acts[-1] is None and any(acts[:-1]):
        acts = acts[:-1]
    return "/".join(sorted({a or "linear" for a in acts}))


def stack_numbers(hazard) -> str:
    """``ratio ||∇W_first||/||∇W_last|| ≈ 1.4e-06, backward gain ≈ 4.1e-08``."""
    e = hazard.estimate
    return f"estimated ‖∇W first‖/‖∇W last‖ ≈ {e.weight_grad_ratio:.1e}, backward gain ≈ {e.backward_gain:.1e}"


def stack_severity(hazard, band: dict) -> str:
    """An error when the estimate is 100x beyond the band, else a warning."""
    e = hazard.estimate
    if hazard.direction == "vanishes":
        far = e.backward_gain < band["vanishing-gain"] * 1e-2
    else:
        far = e.backward_gain > band["exploding-gain"] * 1e2 or e.weight_grad_ratio > band["exploding-ratio"] * 1e2
    return "error" if far else "warning"



def matched_init(hazard) -> tuple[str, str]:
    """The initializer that suits the stack, and the remedy text naming it."""
    from gradlint.graph.stacks import RELU_FAMILY

    if any(s.activation in RELU_FAMILY for s in hazard.layers):
        return "Kaiming", 'initialize the weights with `nn.init.kaiming_normal_(w, nonlinearity="relu")`'
    return "Xavier", "initialize the weights with `nn.init.xavier_uniform_(w)`"


def stack_related(ctx, hazard, layers=None) -> tuple:
    """The first and last layers of a stack as related locations."""
    chosen = layers if layers is not None else hazard.layers[:1] + hazard.layers[-1:]
    return tuple(ctx.related(s.layer.span, f"{s.layer.name} in the stack") for s in chosen)


def stack_hazards_of(graph, ctx, cause: str):
    """The band from the rule's options, and the graph's stack hazards with this cause."""
    from gradlint.graph.stacks import DEFAULT_BAND

    band = {k: float(ctx.options[k]) for k in DEFAULT_BAND}
    hazards = graph.stack_hazards(band, int(ctx.options["min-layers"]))
    return band, [h for h in hazards if h.cause == cause]


def training_target(loop, clip=None) -> tuple:
    """What ``--dynamic`` measures for a training-loop finding: the trained model (a class of
    this file, or one imported from another file of the run) over a few BPTT steps, its
    gradients reaching the update unclipped (or clipped as ``clip = ("norm" | "value", max)``)."""
    if loop.model is None or loop.model[0] not in ("local", "import"):
        return ()
    kind, qualname = loop.model
    module, _, name = qualname.rpartition(".")
    target = [("model", name if kind == "import" else qualname), ("layers", ()), ("expect", "recurrent-exploding"), ("clip", clip)]
    if kind == "import":
        target.append(("module", module))
    return tuple(target)
