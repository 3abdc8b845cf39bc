from __future__ import annotations

from gradlint.flow.hazards import FIXED_SCALE
from gradlint.flow.moments import weight_moments
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
from gradlint.vocab import Category, Cause, Severity


class InitScaleMismatch(Rule):
    """## What it does
    Finds fixed-scale weight initializers — `normal_(0, 1)`, `normal_(std=0.01)`,
    `uniform_(-1, 1)`, `nn.Parameter(torch.randn(...))` — on a plain stack (no normalization, no
    skip connection) where the per-layer gain they give, compounded over the layers, makes the
    gradient vanish or explode at initialization.

    ## Why is this bad?
    A fixed standard deviation ignores the layer's width: the per-layer scale is
    `std * sqrt(fan_in)`, so `std = 1` on a 256-wide layer multiplies the signal by 16 and
    `std = 0.01` by 0.16, and the factor compounds with depth. With ReLU-family activations a
    large scale explodes (He et al. 2015: with a fixed std of 0.01, nets beyond about 8 layers
    were hard to train); with bounded activations it saturates them.

    A model the flow model predicts healthy is not reported: BERT's and GPT's
    `normal_(std=0.02)` sits between LayerNorms and residual adds, and is healthy. A fixed-scale
    init is named as the cause only when matching those layers alone cures the model.

    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `tanh/normal1/d10` | 1.5e+04 | 1.7e+04 | 8.7e+04 | 9.6e+04 | exploding / exploding |
    | `sigmoid/normal1/d30` | 8.3e+02 | 7.2e+02 | 3.2e+03 | 2.7e+03 | exploding / exploding |
    | `tanh/normal.01/d10` | 1.9e-06 | 1.8e-06 | 3.9e-07 | 3.7e-07 | vanishing / vanishing |
    | `relu/default/d10` | 0.012 | 0.011 | 1.9e-03 | 1.7e-03 | none / none |

    ## Example
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(256, 256) for _ in range(6)])
            for layer in self.layers:
                nn.init.normal_(layer.weight, 0.0, 1.0)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x).relu()
            return x
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(256, 256) for _ in range(6)])
            for layer in self.layers:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")

        def forward(self, x):
            for layer in self.layers:
                x = layer(x).relu()
            return x
    ```

    ## Options
    - `min-layers` (default `3`): stacks of fewer weighted layers are never reported.

    {shared-thresholds}

    ## References
    - He et al., *Delving Deep into Rectifiers*, ICCV 2015
    - Glorot & Bengio, *Understanding the difficulty of training deep feedforward neural networks*, AISTATS 2010
    - Schoenholz et al., *Deep Information Propagation*, ICLR 2017
    """

    code = "GL202"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "init-scale-mismatch"
    severity = Severity.WARNING
    severities = FLOW_SEVERITIES
    summary = "a fixed-scale initializer compounds over a plain stack: the gradient vanishes or explodes"
    claims = (Cause.INIT_SCALE,)
    options = {"min-layers": 3}

    VALID = [
        # std 0.02 between LayerNorms (transformer style)
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(12) for m in (nn.Linear(768, 768), nn.LayerNorm(768), nn.GELU())]
                    self.net = nn.Sequential(*layers)
                    for m in self.modules():
                        if isinstance(m, nn.Linear):
                            m.weight.data.normal_(0.0, 0.02)
                def forward(self, x):
                    return self.net(x)
            """
        ),
        # std 1 on two layers only
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(16, 16)
                    self.b = nn.Linear(16, 1)
                    nn.init.normal_(self.a.weight, 0, 1)
                def forward(self, x):
                    return self.b(self.a(x).relu())
            """
        ),
        # std matched to the width: 1/sqrt(64) * sqrt(2)
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(64, 64) for _ in range(10)])
                    for l in self.layers:
                        nn.init.normal_(l.weight, 0, 0.1767)
                def forward(self, x):
                    for l in self.layers:
                        x = l(x).relu()
                    return x
            """
        ),
    ]
    INVALID = [
        # raw parameters from torch.randn, ReLU
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    for i in range(6):
                        setattr(self, f'w{i}', nn.Parameter(torch.randn(128, 128)))
                def forward(self, x):
                    for i in range(5):
                        x = torch.relu(x @ getattr(self, f'w{i}'))
                    return x @ self.w5
            """,
            line=7,
        ),
        # std 0.01 on a deep tanh stack
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(100, 100), nn.Tanh())])
                    for m in self.net:
                        if isinstance(m, nn.Linear):
                            nn.init.normal_(m.weight, std=0.01)
                def forward(self, x):
                    return self.net(x)
            """,
            line=8,
        ),
    ]

    def check(self, graph, ctx) -> None:
        for h in stack_hazards(graph, ctx, Cause.INIT_SCALE):
            fixed = [(l, graph.init_of(l, "weight")) for l in h.layers]
            fixed = [(l, i) for l, i in fixed if i is not None and i.scheme in FIXED_SCALE]
            if not fixed:
                continue
            layer, init = fixed[0]
            scale = init_scale(graph, layer)
            matched, remedy = flow_matched_init(graph, h)
            scale_text = (
                f" (std × √fan_in = {scale:.2g} per layer, where about 1, or √2 before a ReLU, keeps the "
                f"signal's scale)"
                if scale is not None
                else ""
            )
            cured = flow_cured(h, matched)
            n, act, detail = flow_layer_count(graph, h)
            message = (
                f"fixed-scale init `{init.text}`{scale_text} on {n} {act} layers "
                f"({flow_names(h)}{detail}): {flow_direction(h)} — {flow_sentence(h)}{cured}"
            )
            remedy += " (a scale that follows the layer's width), or add normalization between the layers"
            flow_report(ctx, graph, h, init.span or layer.span, message, remedy, flow_related(ctx, h))


def init_scale(graph, layer) -> float | None:
    """``std(W) * sqrt(fan_in)`` as the flow model sees the weight (with its mean and any factor
    applied after the initializer): 1 keeps a linear map's variance, Kaiming is sqrt(2)."""
    fi = layer.fan_in
    if layer.category == Category.PARAMETER:
        shape = layer.params.get("shape")
        fi = shape[0] if isinstance(shape, tuple) and len(shape) == 2 and isinstance(shape[0], int) else None
    wm = weight_moments(graph, layer, fan_in=fi) if fi else None
    return ((wm[0] + wm[1] ** 2) * fi) ** 0.5 if wm else None
