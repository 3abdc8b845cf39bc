from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import (
    FLOW_PROBES,
    FLOW_SEVERITIES,
    flow_cured,
    flow_direction,
    flow_layer_count,
    flow_matched_init,
    flow_names,
    flow_related,
    flow_report,
    flow_sentence,
    stack_hazards,
)
from gradlint.vocab import Cause, Severity

_SCHEME_NAMES = {
    "default": "PyTorch's default",
    "xavier_uniform": "Xavier",
    "xavier_normal": "Xavier",
    "kaiming_uniform": "Kaiming",
    "kaiming_normal": "Kaiming",
    "orthogonal": "orthogonal",
}


class InitActivationMismatch(Rule):
    """## What it does
    Finds models whose weight initializer does not
    suit their activation — Xavier on ReLU-family layers, Kaiming on sigmoid/tanh, or PyTorch's
    default init on a deep stack — so that the gradient vanishes or explodes at initialization,
    while the matching initializer would keep it healthy.

    ## Why is this bad?
    Each layer multiplies the backpropagated gradient by about `scale * rms(f')`, where
    `scale = sqrt(Var(W) * fan_in)` comes from the initializer. Xavier (`scale = 1`) suits tanh;
    He/Kaiming (`scale = sqrt(2)`) suits ReLU, which zeroes half the signal. PyTorch's default
    `nn.Linear`/`nn.Conv` init (`U(±1/sqrt(fan_in))`, `scale = sqrt(1/3)`) is neither: with ReLU it
    loses a factor `sqrt(1/6) = 0.41` per layer. gradlint predicts each layer's weight gradient
    with the flow model (mean-field signal propagation, Poole et al. 2016, Schoenholz et al.
    2017) and reports when the shared tests find a vanishing or exploding gradient that the
    matched initializer would cure.

    So a ReLU stack with the default init is reported from about 15-20 layers, tanh from about
    20; with the matched initializer neither is.

    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `tanh/default/d20` | 4.5e-04 | 4.8e-04 | 1.2e-04 | 1.2e-04 | vanishing / vanishing |
    | `tanh/default/d30` | 1.9e-06 | 1.9e-06 | 4.9e-07 | 4.6e-07 | vanishing / vanishing |
    | `tanh/xavier/d30` | 0.9 | 0.8 | 0.83 | 0.73 | none / none |
    | `relu/default/d20` | 1.6e-06 | 1.4e-06 | 2.6e-07 | 2.1e-07 | vanishing / vanishing |
    | `relu/default/d30` | 2.0e-10 | 1.9e-10 | 3.2e-11 | 2.6e-11 | vanishing / vanishing |

    ## Example
    ```python
    import torch.nn as nn

    class Deep(nn.Module):
        def __init__(self, depth=20):
            super().__init__()
            self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(256, 256), nn.ReLU())])

        def forward(self, x):
            return self.net(x)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Deep(nn.Module):
        def __init__(self, depth=20):
            super().__init__()
            self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(256, 256), nn.ReLU())])
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

        def forward(self, x):
            return self.net(x)
    ```

    ## Options
    - `min-layers` (default `3`): stacks of fewer weighted layers are never reported.

    {shared-thresholds}

    ## References
    - Glorot & Bengio, *Understanding the difficulty of training deep feedforward neural networks*, AISTATS 2010
    - He et al., *Delving Deep into Rectifiers*, ICCV 2015
    - Schoenholz et al., *Deep Information Propagation*, ICLR 2017
    - Schoop et al., *AUTOTRAINER*, ICSE 2021 (the ratio thresholds)
    """

    code = "GL203"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "init-activation-mismatch"
    severity = Severity.WARNING
    severities = FLOW_SEVERITIES
    summary = "the weight initializer does not suit the stack's activation: the gradient vanishes or explodes"
    claims = (Cause.INIT_MISMATCH,)
    options = {"min-layers": 3}

    VALID = [
        # Kaiming with ReLU, deep
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(24) for m in (nn.Linear(64, 64), nn.ReLU())])
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # default init but shallow
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(
                        nn.Linear(64, 64),
                        nn.ReLU(),
                        nn.Linear(64, 64),
                        nn.ReLU(),
                        nn.Linear(64, 10),
                    )
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # default init, deep, but normalized
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(20) for m in (nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU())]
                    self.net = nn.Sequential(*layers)
                def forward(self, x):
                    return self.net(x)
            """
        ),
    ]
    INVALID = [
        # Xavier on a very deep ReLU stack
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(128, 128) for _ in range(40)])
                    for l in self.layers:
                        nn.init.xavier_uniform_(l.weight)
                def forward(self, x):
                    for l in self.layers:
                        x = l(x).relu()
                    return x
            """,
            line=7,
        ),
        # default init, deep tanh
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self, n=24):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(128, 128) for _ in range(n)])
                def forward(self, x):
                    for l in self.layers:
                        x = torch.tanh(l(x))
                    return x
            """,
            line=6,
        ),
    ]

    def check(self, graph, ctx) -> None:
        for h in stack_hazards(graph, ctx, Cause.INIT_MISMATCH):
            inits = [graph.init_of(l, "weight") for l in h.layers]
            names = sorted({_SCHEME_NAMES.get(i.scheme, i.scheme) for i in inits if i is not None})
            explicit = next((i for i in inits if i is not None and i.span is not None), None)
            span = explicit.span if explicit is not None else h.layers[0].span
            matched, remedy = flow_matched_init(graph, h)
            cured = flow_cured(h, matched)
            n, act, detail = flow_layer_count(graph, h)
            message = (
                f"{n} {act} layers ({flow_names(h)}{detail}) with {'/'.join(names)} init: "
                f"{flow_direction(h)} — {flow_sentence(h)}{cured}"
            )
            flow_report(
                ctx, graph, h, span, message, remedy + ", or add normalization between the layers", flow_related(ctx, h)
            )
