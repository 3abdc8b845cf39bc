from __future__ import annotations

from gradlint.flow import activations as A
from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import (
    FLOW_PROBES,
    FLOW_SEVERITIES,
    flow_direction,
    flow_hazards,
    flow_names,
    flow_report,
    flow_sentence,
    repeat_related,
)
from gradlint.vocab import Cause, Severity


class SaturatingActivationStack(Rule):
    """## What it does
    Finds stacks of saturating activations (sigmoid, tanh, hardsigmoid, hardtanh, softsign)
    along the forward pass, with no normalization and no skip connection between them, deep
    enough that the gradient reaching the first layer of the stack shrinks below a threshold.

    ## Why is this bad?
    Backpropagation multiplies one factor per layer: the activation's derivative times the
    layer's weight scale. The sigmoid's derivative is at most 0.25, so through `L` sigmoid
    layers the gradient shrinks by up to `0.25^L` (L=5: 9.8e-04, L=8: 1.5e-05, L=10: 9.5e-07).
    The weight scale multiplies in: PyTorch's default `nn.Linear` init has a per-layer scale of
    `sqrt(1/3) = 0.58`, Xavier about 1, Kaiming `sqrt(2)`; large weights do not help, as bounded
    activations then saturate and their derivative falls towards 0. gradlint estimates the
    gradient with the flow model (mean-field signal propagation over the whole model: the
    activation's derivative averaged over the pre-activations the init produces) and states the
    derivative bound too.
    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `sigmoid/default/d5` | 7.8e-04 | 7.5e-04 | 2.2e-03 | 2.1e-03 | vanishing / vanishing |
    | `sigmoid/default/d10` | 4.3e-08 | 4.3e-08 | 1.3e-07 | 1.2e-07 | vanishing / vanishing |
    | `sigmoid/xavier/d10` | 4.2e-06 | 3.9e-06 | 1.2e-05 | 1.1e-05 | vanishing / vanishing |
    | `sigmoid/kaiming/d10` | 5.4e-05 | 5.3e-05 | 1.6e-04 | 1.6e-04 | vanishing / vanishing |
    | `sigmoid/kaiming/d30` | 5.2e-15 | 5.8e-15 | 1.6e-14 | 1.7e-14 | vanishing / vanishing |
    | `tanh/xavier/d30` | 0.9 | 0.8 | 0.83 | 0.73 | none / none |

    tanh (derivative up to 1) with Xavier init stays healthy even when deep, and is not reported.

    A tanh stack vanishes only through its weight scale (tanh' ≤ 1): when the matched (Xavier)
    initializer would keep it healthy, the finding is GL203's (the init is what to change), not
    this rule's.

    Not a stack: a sigmoid used as a gate (`x * torch.sigmoid(g)`, squeeze-excitation, GLU),
    a single activation at the output, or activations the flow model does not find vanishing
    (a residual add carries the gradient past them). Normalization resets the scale the next
    layer sees but does not make a sigmoid's derivative larger: a LayerNorm'ed sigmoid stack
    still vanishes when deep, and is reported.

    ## Example
    ```python
    import torch.nn as nn

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for _ in range(8):
                layers += [nn.Linear(64, 64), nn.Sigmoid()]
            self.net = nn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for _ in range(8):
                layers += [nn.Linear(64, 64), nn.ReLU()]
            self.net = nn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)
    ```

    ## Options
    - `min-layers` (default `2`): stacks of fewer saturating activations are never reported.

    {shared-thresholds}

    ## References
    - Glorot & Bengio, *Understanding the difficulty of training deep feedforward neural networks*, AISTATS 2010
    - Hochreiter et al., *Gradient flow in recurrent nets: the difficulty of learning long-term dependencies*, 2001
    - [torch.nn.init](https://pytorch.org/docs/stable/nn.init.html)
    """

    code = "GL101"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "saturating-activation-stack"
    severity = Severity.WARNING
    severities = FLOW_SEVERITIES
    summary = "stacked sigmoid/tanh layers make the gradient to the first layer vanish"
    claims = (Cause.ACTIVATION,)
    options = {"min-layers": 2}

    VALID = [
        # ReLU stack
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(8, 8), nn.ReLU())])
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # gates are not a stack
        Valid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.ModuleList([nn.Linear(8, 8) for _ in range(10)])
                    self.g = nn.ModuleList([nn.Linear(8, 8) for _ in range(10)])
                def forward(self, x):
                    for fc, g in zip(self.fc, self.g):
                        x = torch.relu(fc(x)) * torch.sigmoid(g(x))
                    return x
            """
        ),
        # residual connections
        Valid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.ModuleList([nn.Linear(8, 8) for _ in range(10)])
                def forward(self, x):
                    for fc in self.fc:
                        x = x + torch.sigmoid(fc(x))
                    return x
            """
        ),
        # normalization between the layers
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(6) for m in (nn.Linear(8, 8), nn.LayerNorm(8), nn.Sigmoid())]
                    self.net = nn.Sequential(*layers)
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # tanh with Xavier init
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(8, 8), nn.Tanh())])
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            nn.init.xavier_normal_(m.weight)
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # tanh with the default init, deep: the init is the cause (GL203 reports it)
        Valid(
            """
            import torch.nn as nn
            DEPTH = 24
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(DEPTH) for m in (nn.Linear(64, 64), nn.Tanh())])
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # a sigmoid only at the output
        Valid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.b = nn.Linear(8, 1)
                def forward(self, x):
                    return torch.sigmoid(self.b(torch.relu(self.a(x))))
            """
        ),
    ]
    INVALID = [
        # functional sigmoid on explicit attributes
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(8, 8)
                    self.fc2 = nn.Linear(8, 8)
                    self.fc3 = nn.Linear(8, 8)
                    self.fc4 = nn.Linear(8, 8)
                    self.fc5 = nn.Linear(8, 8)
                def forward(self, x):
                    x = torch.sigmoid(self.fc1(x))
                    x = torch.sigmoid(self.fc2(x))
                    x = torch.sigmoid(self.fc3(x))
                    x = torch.sigmoid(self.fc4(x))
                    return torch.sigmoid(self.fc5(x))
            """,
            line=12,
        ),
        # depth from a default argument, method activation
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self, depth=6):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(depth)])
                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x).sigmoid()
                    return x
            """,
            line=8,
        ),
        # hardsigmoid (derivative 1/6) with Xavier init
        Invalid(
            """
            import torch.nn as nn
            DEPTH = 6
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(DEPTH) for m in (nn.Linear(8, 8), nn.Hardsigmoid())])
                    for m in self.net:
                        if isinstance(m, nn.Linear):
                            nn.init.xavier_uniform_(m.weight)
                def forward(self, x):
                    return self.net(x)
            """,
            line=6,
        ),
    ]

    def check(self, graph, ctx) -> None:
        min_layers = int(ctx.options["min-layers"])
        for h in flow_hazards(graph, Cause.ACTIVATION):
            nodes = [n for n in h.nodes if graph.layer_of(n) is not None]
            if len(nodes) < min_layers:
                continue
            act_layers = [graph.layer_of(n) for n in nodes]
            acts = sorted({l.activation for l in act_layers})
            bounds = [A.max_derivative(l.activation) for l in act_layers]
            bound = 1.0
            for b in bounds:
                bound *= b
            if len(set(bounds)) == 1:
                why = f"its derivative is at most {bounds[0]:.3g}, so {len(nodes)} layers give at most {bound:.1e}"
            else:
                why = f"their derivatives alone give at most {bound:.1e}"
            message = (
                f"{len(nodes)} stacked {'/'.join(acts)} layers ({flow_names(h)}): {flow_direction(h)} — "
                f"{flow_sentence(h)}; {why}"
            )
            span = act_layers[0].span if not act_layers[0].functional else nodes[0].span
            related, seen = [], {(span.line, span.col)}
            for layer, node in zip(act_layers, nodes):
                where = layer.span if not layer.functional else node.span
                if (where.line, where.col) not in seen and len(related) < 8:
                    seen.add((where.line, where.col))
                    related.append(ctx.related(where, f"{layer.activation} in the stack ({layer.name})"))
            related.extend(repeat_related(ctx, act_layers))
            flow_report(
                ctx,
                graph,
                h,
                span,
                message,
                "use a ReLU-family activation, or add normalization or skip connections between the layers",
                related,
            )
