from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import (
    FLOW_PROBES,
    FLOW_SEVERITIES,
    flow_direction,
    flow_hazards,
    flow_report,
    flow_sentence,
)
from gradlint.vocab import Cause, Severity


class OverflowingActivation(Rule):
    """## What it does
    Finds activations that grow faster than any power of their input — `torch.exp`, `x ** 2`,
    `torch.square` — used between layers, where the flow model predicts that the activations
    overflow float32 at initialization.

    ## Why is this bad?
    `exp` maps a pre-activation of variance `v` to a second moment of `exp(2 v)`, and the next
    layer feeds that back in: the magnitude grows doubly exponentially with depth. A value
    beyond 3.4e38 is `inf` in float32; the loss is then `inf` or `NaN` and so is every gradient.
    Measured (torch, at init, 3 seeds): 9–10 layers of `torch.exp` as the activation (width
    5–16) give inf/NaN in every seed. gradlint predicts the second moment of every activation
    in closed form (lognormal moments for `exp`; for `x ** 2`, `E[z^4]` from the fourth-moment
    ratio the flow model carries, which grows over a narrow fan-in) and reports the first one
    that passes the float32 limit. Where a narrow `x ** 2` stack's tail makes its moments
    untypical, the layers are left uncertain, but a Gaussian floor that overflows still counts.

    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `exp/w5/d6` | 9.2 | - | 13 | 5.4e+149 | exploding / exploding |
    | `exp/w16/d10` | nan | - | nan | 9.6e+149 | exploding / exploding |
    | `softplus/kaiming/w16/d10` | 0.27 | 0.089 | 0.05 | 0.086 | none / none |

    A `-` is a ratio that is not finite: the activations overflowed (inf/NaN).

    ## Example
    ```python
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(10)])

        def forward(self, x):
            for layer in self.layers:
                x = torch.exp(layer(x))
            return x
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(10)])

        def forward(self, x):
            for layer in self.layers:
                x = torch.nn.functional.softplus(layer(x))
            return x
    ```

    ## Known problems
    An `exp` whose input is bounded first (`torch.exp(torch.tanh(x))`, `exp(-x ** 2)` as a
    kernel) does not overflow; the flow model follows the bound when it sees it.

    ## References
    - Goodfellow, Bengio & Courville, *Deep Learning*, §4.1 (overflow and underflow), 2016
    - [torch.finfo](https://pytorch.org/docs/stable/type_info.html) (float32 max 3.4e38)
    """

    code = "GL103"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "overflowing-activation"
    severity = Severity.ERROR
    severities = FLOW_SEVERITIES
    summary = "an exponential activation between layers overflows float32 at initialization"
    claims = (Cause.OVERFLOW,)

    VALID = [
        # softplus grows linearly
        Valid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(10)])
                def forward(self, x):
                    for l in self.layers:
                        x = F.softplus(l(x))
                    return x
            """
        ),
        # one exp at the output (a rate, a variance) is fine
        Valid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(16, 16)
                    self.b = nn.Linear(16, 1)
                def forward(self, x):
                    return torch.exp(self.b(torch.relu(self.a(x))))
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(16, 16) for _ in range(10)])
                def forward(self, x):
                    for l in self.layers:
                        x = torch.exp(l(x))  # error: GL103
                    return x
            """,
            line=9,
        ),
        # a custom activation module whose forward is exp, written as a method call
        Invalid(
            """
            import torch.nn as nn
            class Exp(nn.Module):
                def forward(self, x):
                    return x.exp()
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(9) for m in (nn.Linear(8, 8), Exp())])
                def forward(self, x):
                    return self.net(x)
            """,
            line=4,
        ),
    ]

    def check(self, graph, ctx) -> None:
        for h in flow_hazards(graph, Cause.OVERFLOW):
            node = h.nodes[0]
            layer = graph.layer_of(node)
            act = h.detail.get("activation") or (layer.activation if layer else "exp")
            chain = [n for n in graph.nodes() if n.op == "layer" and graph.activation_of(n) == act]
            over = next((i for i, n in enumerate(chain, 1) if h.profile.stats[n.id].overflow), None)
            where = f" (the predicted activations pass 3.4e38 at the {_ordinal(over)} of them)" if over else ""
            message = (
                f"{len(chain)} `{act}` activations between layers: {flow_direction(h)} — {flow_sentence(h)}{where}"
            )
            span = node.span or (layer.span if layer else graph.span)
            flow_report(
                ctx,
                graph,
                h,
                span,
                message,
                "use a bounded or linearly growing activation (softplus, ReLU, tanh), or bound the input of `exp`",
            )


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
