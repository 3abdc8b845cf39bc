from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import (
    FLOW_PROBES,
    FLOW_SEVERITIES,
    flow_direction,
    flow_names,
    flow_related,
    flow_report,
    flow_sentence,
    stack_hazards,
)
from gradlint.vocab import Cause, Severity


class NormalizedPlainStack(Rule):
    """## What it does
    Finds deep stacks that are normalized (BatchNorm, LayerNorm, GroupNorm, RMSNorm,
    InstanceNorm) but have no skip connection, where the flow model predicts that the gradient
    explodes at initialization.

    ## Why is this bad?
    Normalization resets the forward scale at every layer, so the activations stay healthy,
    but it does not keep the backward pass at a gain of 1. Batch normalization divides by the
    variance *within* each unit over the batch, while ReLU outputs share a positive mean that
    the next layer turns into an offset of each unit: the backward pass gains about
    `E[f'(z)^2] / Var(f(z))` per layer (1.47 in squared norm for ReLU), and more with a small
    batch. In a plain BatchNorm network the gradient grows geometrically with depth at
    initialization (Yang et al., *A Mean Field Theory of Batch Normalization*, ICLR 2019).
    Measured (torch, at init, batch 8, 3 seeds): 50 × (`Linear(100, 100)` → `BatchNorm1d` →
    `ReLU`) gives a first/last weight-gradient ratio of 1.7e6 (predicted 1.1e6); tanh between
    LayerNorms gains about 1.08 per layer, GroupNorm about 1.04.

    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `batchnorm/relu/d10` | 13 | 14 | 31 | 35 | none / none |
    | `batchnorm/relu/d20` | 3.5e+02 | 2.4e+02 | 8.2e+02 | 5.9e+02 | exploding / exploding |
    | `batchnorm/relu/d40` | 6.5e+04 | 6.7e+04 | 1.5e+05 | 1.7e+05 | exploding / exploding |
    | `batchnorm/relu/d80` | 6.2e+09 | 5.5e+09 | 1.5e+10 | 1.4e+10 | exploding / exploding |
    | `batchnorm/tanh/d40` | 4.4e+02 | 1.0e+03 | 9.5e+02 | 2.2e+03 | exploding / exploding |
    | `layernorm/relu/d80` | 0.66 | 0.69 | 1.7 | 1.7 | none / none |
    | `layernorm/tanh/d80` | 1.6e+02 | 3.9e+02 | 3.5e+02 | 8.6e+02 | exploding / exploding |
    | `groupnorm/tanh/d40` | 1.3e+02 | 1.3e+02 | 2.9e+02 | 2.8e+02 | exploding / exploding |

    So adding normalization cures a vanishing gradient but, without skips, may trade it for an
    exploding one. Residual connections (`x = x + block(x)`) are the cure: ResNets are
    normalized *and* residual.

    ## Example
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for _ in range(50):
                layers += [nn.Linear(100, 100), nn.BatchNorm1d(100), nn.ReLU()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(100, 10)

        def forward(self, x):
            return self.head(self.body(x))
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(100, 100)
            self.bn = nn.BatchNorm1d(100)

        def forward(self, x):
            return x + self.bn(self.fc(x)).relu()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*[Block() for _ in range(50)])
            self.head = nn.Linear(100, 10)

        def forward(self, x):
            return self.head(self.body(x))
    ```

    ## Known problems
    GL302 reports very deep plain paths as an optimization difficulty (degradation) when the
    gradient itself is predicted healthy; on a path where this rule reports, GL302 stays silent.

    ## Options
    - `min-layers` (default `3`): stacks with fewer weighted layers are never reported.

    {shared-thresholds}

    ## References
    - Yang, Pennington, Rao, Sohl-Dickstein & Schoenholz, *A Mean Field Theory of Batch Normalization*, ICLR 2019
    - He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016
    """

    code = "GL304"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "normalized-plain-stack"
    severity = Severity.WARNING
    severities = FLOW_SEVERITIES
    summary = "a deep normalized stack without skip connections: the gradient explodes"
    claims = (Cause.NORM_WITHOUT_SKIPS,)
    options = {"min-layers": 3}

    VALID = [
        # shallow
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(8) for m in (nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU())]
                    self.f = nn.Sequential(*layers)
                def forward(self, x):
                    return self.f(x)
            """
        ),
        # deep LayerNorm + ReLU keeps a gain near 1
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(40) for m in (nn.Linear(64, 64), nn.LayerNorm(64), nn.ReLU())]
                    self.f = nn.Sequential(*layers)
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
                def __init__(self, depth=40):
                    super().__init__()
                    layers = [m for _ in range(depth) for m in (nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU())]
                    self.f = nn.Sequential(*layers)
                def forward(self, x):
                    return self.f(x)
            """,
            line=5,
        ),
    ]

    def check(self, graph, ctx) -> None:
        for h in stack_hazards(graph, ctx, Cause.NORM_WITHOUT_SKIPS):
            kinds = "/".join(h.detail.get("kinds", ()))
            message = (
                f"{len(h.layers)} weighted layers ({flow_names(h)}) normalized by {kinds} but with no skip "
                f"connection: {flow_direction(h)} — {flow_sentence(h)}"
            )
            flow_report(
                ctx,
                graph,
                h,
                h.layers[0].span,
                message,
                "add residual connections (`x = x + block(x)`) around the normalized blocks",
                flow_related(ctx, h),
            )
