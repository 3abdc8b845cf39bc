from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import (
    FLOW_PROBES,
    FLOW_SEVERITIES,
    flow_direction,
    flow_hazards,
    flow_layer_count,
    flow_names,
    flow_related,
    flow_report,
    flow_sentence,
    stack_hazards,
)
from gradlint.vocab import Cause, Severity

#: a taken-over hazard's cause, in words
_CAUSE_WORDS = {
    Cause.ACTIVATION: "its activation",
    Cause.OVERFLOW: "an activation that overflows",
    Cause.CONSTANT_INIT: "a constant init",
    Cause.INIT_SCALE: "a fixed-scale init",
    Cause.INIT_MISMATCH: "an init that does not suit the activation",
    Cause.RESIDUAL_GROWTH: "unscaled residual branches",
    Cause.NORM_WITHOUT_SKIPS: "normalization without skip connections",
    Cause.NARROW_WIDTH: "narrow ReLU layers",
}


class UnnormalizedDeepStack(Rule):
    """## What it does
    Finds a path of weighted layers with no normalization and no skip connection whose
    predicted gradient at initialization fails the shared tests even with the
    initializer matched to its activation: the depth itself is the problem.

    ## Why is this bad?
    The gradient reaching the first layer is the product of one factor per layer; unless every
    factor is exactly 1 the product drifts geometrically with depth. Matched initialization
    (He for ReLU, Xavier for tanh) makes ReLU and tanh stacks nearly gain-preserving, but
    smooth ReLU variants are not: with He init a plain GELU stack keeps shrinking the gradient
    (measured first/last weight-gradient ratio 1.6 at 30 layers of width 256, while the first
    layer's own gradient falls with depth), and SiLU faster. The depth limit
    follows from the gain, not from a fixed layer count: a 19-layer ReLU stack with Kaiming init
    is healthy. Normalization (BatchNorm, LayerNorm, GroupNorm) re-scales every layer and
    residual connections add an identity path, and either fixes it.

    Causes with a more specific rule are reported there instead, once: a mismatched or default
    initializer (GL203), a fixed-scale initializer (GL202), saturating activations (GL101).
    When that rule is not enabled (`--ignore GL203`), this rule reports the hazard itself and
    says which rule names its cause: switching one rule off never leaves a vanishing or
    exploding stack reported by nobody.

    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `relu/kaiming/d20` | 1.4 | 1 | 5.9 | 5.1 | none / none |

    ## Example
    ```python
    import torch.nn as nn

    class Tower(nn.Module):
        def __init__(self, depth=64):
            super().__init__()
            self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(512, 512), nn.GELU())])
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight)

        def forward(self, x):
            return self.net(x)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Tower(nn.Module):
        def __init__(self, depth=64):
            super().__init__()
            self.net = nn.Sequential(*[
                m for _ in range(depth) for m in (nn.Linear(512, 512), nn.LayerNorm(512), nn.GELU())
            ])
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight)

        def forward(self, x):
            return self.net(x)
    ```

    ## Options
    - `min-layers` (default `3`): stacks of fewer weighted layers are never reported.

    {shared-thresholds}

    ## References
    - Schoenholz et al., *Deep Information Propagation*, ICLR 2017
    - Ioffe & Szegedy, *Batch Normalization*, ICML 2015
    - He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016
    """

    code = "GL301"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "unnormalized-deep-stack"
    severity = Severity.WARNING
    severities = FLOW_SEVERITIES
    summary = "a deep plain stack without normalization or skips: the gradient vanishes or explodes"
    claims = (Cause.DEPTH,)
    #: a stack's gradient hazard whose own rule is switched off is still reported, here
    takes_over = (
        Cause.ACTIVATION,
        Cause.OVERFLOW,
        Cause.CONSTANT_INIT,
        Cause.INIT_SCALE,
        Cause.INIT_MISMATCH,
        Cause.RESIDUAL_GROWTH,
        Cause.NORM_WITHOUT_SKIPS,
        Cause.NARROW_WIDTH,
    )
    options = {"min-layers": 3}

    VALID = [
        # 19-layer ReLU with Kaiming
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(19) for m in (nn.Linear(64, 64), nn.ReLU())])
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight)
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # deep GELU with LayerNorm
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(64) for m in (nn.Linear(64, 64), nn.LayerNorm(64), nn.GELU())]
                    self.net = nn.Sequential(*layers)
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight)
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # deep GELU with residual connections
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.ModuleList([nn.Linear(64, 64) for _ in range(64)])
                    for m in self.fc:
                        nn.init.kaiming_normal_(m.weight)
                def forward(self, x):
                    for fc in self.fc:
                        x = x + nn.functional.gelu(fc(x))
                    return x
            """,
            also=("GL303",),
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class M(nn.Module):
                def __init__(self, depth=80):
                    super().__init__()
                    self.fc = nn.ModuleList([nn.Linear(64, 64) for _ in range(depth)])
                    for m in self.fc:
                        nn.init.kaiming_uniform_(m.weight, nonlinearity='relu')
                def forward(self, x):
                    for fc in self.fc:
                        x = F.silu(fc(x))
                    return x
            """,
            line=6,
        ),
    ]

    def check(self, graph, ctx) -> None:
        for h in stack_hazards(graph, ctx, Cause.DEPTH):
            if h.detail.get("skips"):
                without = "with skip connections" + (" and normalization" if h.detail.get("normalized") else "")
            elif h.detail.get("normalized"):
                without = "normalized but without skip connections"
            else:
                without = "without normalization or skip connections"
            n, act, detail = flow_layer_count(graph, h)
            kind = "" if act == "weighted" else f"{act} "
            message = (
                f"{n}-layer {'' if h.detail.get('skips') else 'plain '}{kind}stack ({flow_names(h)}{detail})"
                f" {without}: "
                f"{flow_direction(h)} — {flow_sentence(h)}, even with the initializer matched to the activation"
            )
            flow_report(
                ctx,
                graph,
                h,
                h.layers[0].span,
                message,
                "add normalization (nn.LayerNorm / nn.BatchNorm) between the layers, or residual connections",
                flow_related(ctx, h),
            )
        for h in flow_hazards(graph, *ctx.orphaned):
            self._taken_over(graph, ctx, h)

    @staticmethod
    def _taken_over(graph, ctx, h) -> None:
        """A hazard whose own rule (the one that names its cause) is not enabled."""
        from gradlint.rule import all_rules

        owner = next((r for r in all_rules() if h.cause in r.claims), None)
        n, act, detail = flow_layer_count(graph, h)
        who = f"{owner.code} ({owner.name})" if owner is not None else "the rule for its cause"
        message = (
            f"{n} {act} layers ({flow_names(h)}{detail}): {flow_direction(h)} — {flow_sentence(h)}; "
            f"{who}, which names the cause ({_CAUSE_WORDS.get(h.cause, str(h.cause))}), is not enabled"
        )
        remedy = (
            f"see `gradlint rule {owner.code}` for the cause and its remedy"
            if owner is not None
            else "add normalization between the layers, or residual connections"
        )
        flow_report(ctx, graph, h, h.layers[0].span, message, remedy, flow_related(ctx, h))
