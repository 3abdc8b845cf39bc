from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import (
    FLOW_PROBES,
    FLOW_SEVERITIES,
    flow_direction,
    flow_hazards,
    flow_names,
    flow_report,
    flow_sentence,
)
from gradlint.vocab import Cause, Severity


class NarrowReluNet(Rule):
    """## What it does
    Finds deep, narrow ReLU nets that are likely *born dead*: some layer outputs exactly 0 for
    every example of the batch at initialization, so every gradient below it is exactly 0 and
    nothing before it ever learns.

    ## Why is this bad?
    A ReLU unit with a negative pre-activation outputs 0 and passes no gradient. In a narrow
    net the examples' representations collapse towards one direction after a few layers, and
    then each unit is negative for all of them with probability about 1/2: a layer of width
    `w` is wholly dead with probability about `2^-w`, and the chance that some layer is dies
    grows with depth (Lu, Shin, Su & Karniadakis, *Dying ReLU and Initialization*, 2019).
    Measured (torch, Kaiming init, zero biases, batch 8, 40 seeds): width 5 at 20 layers is
    dead in 50 % of seeds (predicted 47 %), width 3 at 15 layers in 85 % (predicted 86 %),
    width 8 at 30 layers in 10 % (predicted 11 %). gradlint reports when the predicted
    probability is over one half.

    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `w3/d15` | 1.6 | 1 | 2.6e-03 | 7.2e-04 | dead / dead |
    | `w3/d30` | 0.53 | 1 | 4.1e-05 | 1.4e-06 | dead / dead |
    | `w5/d20` | 1.5 | 1 | 5.8e-04 | 3.2e-03 | none / none |
    | `w5/d30` | 1.8 | 1 | 1.6e-04 | 2.7e-04 | dead / dead |

    (The notes of gradlint's calibration table give the dead fraction over 20 seeds, measured/predicted.)

    ## Example
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Linear(2, 4), nn.ReLU()]
            for _ in range(20):
                layers += [nn.Linear(4, 4), nn.ReLU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.body(x))
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Linear(2, 32), nn.LeakyReLU()]
            for _ in range(20):
                layers += [nn.Linear(32, 32), nn.LeakyReLU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(32, 1)

        def forward(self, x):
            return self.head(self.body(x))
    ```

    ## References
    - Lu, Shin, Su & Karniadakis, *Dying ReLU and Initialization: Theory and Numerical Examples*, 2019
    - Hanin, *Which Neural Net Architectures Give Rise to Exploding and Vanishing Gradients?*, NeurIPS 2018
    """

    code = "GL305"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "narrow-relu-net"
    severity = Severity.WARNING
    severities = FLOW_SEVERITIES
    summary = "a deep, narrow ReLU net is likely dead at initialization"
    claims = (Cause.NARROW_WIDTH,)

    VALID = [
        # wide
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.f = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(64, 64), nn.ReLU())])
                    for m in self.f:
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight)
                def forward(self, x):
                    return self.f(x)
            """
        ),
        # narrow but leaky
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.f = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(4, 4), nn.LeakyReLU())])
                    for m in self.f:
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight)
                def forward(self, x):
                    return self.f(x)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.f = nn.Sequential(*[m for _ in range(25) for m in (nn.Linear(3, 3), nn.ReLU())])
                    for m in self.f:
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight)
                            nn.init.zeros_(m.bias)
                def forward(self, x):
                    return self.f(x)
            """,
            line=5,
        ),
    ]

    def check(self, graph, ctx) -> None:
        for h in flow_hazards(graph, Cause.NARROW_WIDTH):
            node = h.nodes[0] if h.nodes else None
            width = h.detail.get("width")
            depth = sum(
                1
                for n in graph.nodes()
                if n.op == "layer" and graph.activation_of(n) in ("relu", "relu6", "threshold", "hardtanh")
            )
            dead_p = h.profile.dead_probability
            born = (
                f"; with a probability of about {dead_p:.0%} some layer is 0 for every example, and the "
                f"layers before it get no gradient"
                if str(h.hazard) != "dead"
                else ""
            )
            message = (
                f"{depth} ReLU layers of width {width if width else '?'} ({flow_names(h)}) are likely born dead: "
                f"{flow_direction(h)} — {flow_sentence(h)}{born}"
            )
            layer = graph.layer_of(node) if node is not None else None
            span = h.layers[0].span
            related = (
                [
                    ctx.related(
                        layer.span if not layer.functional else node.span, f"{layer.name}: the layer most likely dead"
                    )
                ]
                if layer is not None
                else []
            )
            flow_report(
                ctx,
                graph,
                h,
                span,
                message,
                "widen the layers, use LeakyReLU/ELU, or add normalization or skip connections",
                related,
            )
