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


class UnnormalizedResidualStack(Rule):
    """## What it does
    Finds residual blocks in a row (`x = x + f(x)`) whose branches are not scaled down at
    initialization — no normalization in the branch, or one whose scale starts at 1 — where the
    flow model predicts that the activations and the gradient grow so much that the gradient
    explodes.

    ## Why is this bad?
    A skip connection passes the gradient back undiminished, but each block also adds its
    branch: going back through a block, the gradient's norm is multiplied by about
    `sqrt(1 + chi)`, where `chi` is how much the branch alone multiplies the squared norm of
    what passes through it (about 1 for a He-initialized ReLU branch). Over `N` blocks that compounds
    to `(1 + chi)^(N/2)`: with `chi = 1` the gradient grows about 180x over 15 blocks and
    3e4x over 30. The forward signal grows too: a ReLU branch adds a positive mean that every
    unit of the stream shares, so stream and branch add in amplitude, not only in energy, and
    the gradient along that shared direction grows at the same rate (measured: 1.6-1.8x per
    block, forward and backward alike). `x = x + relu(W x)` with Kaiming init over 20 blocks:
    the first/last ratio stays near 0.1-0.6, yet the first layer's gradient is about 1e4-1e5,
    so a ratio test alone would miss it. gradlint's flow model follows the stream's mean,
    second moment and the units' shared part block by block:

    {calibration-note}

    | cell | ratio meas | ratio pred | first meas | first pred | hazard meas / pred |
    |---|---|---|---|---|---|
    | `plain/b1/relu/kaiming/d20` | 0.096 | 0.5 | 1.5e+04 | 8.6e+04 | exploding / exploding |
    | `plain/b1/relu/kaiming/d40` | 0.084 | 0.5 | 5.7e+08 | 3.7e+09 | exploding / exploding |
    | `plain/b2/relu/kaiming/d20` | 0.59 | 0.5 | 1.8e+05 | 1.7e+05 | exploding / exploding |
    | `plain/b2/relu/kaiming/d80` | 0.63 | 0.5 | 1.6e+19 | 3.4e+19 | exploding / exploding |
    | `ln/b1/relu/kaiming/d40` | 0.22 | 0.21 | 19 | 19 | none / none |
    | `zero-last/b1/relu/kaiming/d40` | 0.42 | 0.49 | 2.6 | 3.2 | none / none |
    | `x0.1/b2/relu/kaiming/d40` | 0.52 | 0.5 | 3.9 | 4.2 | none / none |

    Normalized branches (`x + BN(conv(x))` without a zero-initialized last BatchNorm) still add
    a unit-variance branch per block: deep BatchNorm ResNets grow their gradient with depth too
    (measured, torchvision at init, batch 8, 64x64: ResNet-50 first-layer gradient 9.4e2,
    ResNet-101 4.7e3, ResNet-152 1.6e4). GL303 reports those as normalized but unscaled
    branches, with `zero_init_residual=True` as the remedy. The rule's code is kept from when it
    covered unnormalized branches only; its meaning now follows the flow model's cause
    (residual growth).

    Every residual cell of gradlint's calibration grid agrees within 7x. LayerNorm inside the branch
    (pre-LN transformers) keeps the stream from compounding, and so do scaled branches (Fixup,
    ReZero, LayerScale, a zero-initialized last layer, `1/sqrt(N)` branch factors).

    ## Example
    ```python
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, d=256):
            super().__init__()
            self.fc1 = nn.Linear(d, d)
            self.fc2 = nn.Linear(d, d)
            for fc in (self.fc1, self.fc2):
                nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")

        def forward(self, x):
            return x + self.fc2(torch.relu(self.fc1(x)))

    class Net(nn.Module):
        def __init__(self, n_blocks=40):
            super().__init__()
            self.blocks = nn.Sequential(*[Block() for _ in range(n_blocks)])

        def forward(self, x):
            return self.blocks(x)
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, d=256):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, d)
            self.fc2 = nn.Linear(d, d)

        def forward(self, x):
            return x + self.fc2(torch.relu(self.fc1(self.norm(x))))

    class Net(nn.Module):
        def __init__(self, n_blocks=40):
            super().__init__()
            self.blocks = nn.Sequential(*[Block() for _ in range(n_blocks)])

        def forward(self, x):
            return self.blocks(x)
    ```

    ## Options
    - `min-blocks` (default `2`): runs of fewer residual blocks are never reported.

    {shared-thresholds}

    ## References
    - He et al., *Identity Mappings in Deep Residual Networks*, ECCV 2016
    - Zhang, Dauphin & Ma, *Fixup Initialization*, ICLR 2019
    - Bachlechner et al., *ReZero is All You Need*, 2020; Touvron et al., *Going deeper with
      Image Transformers* (LayerScale), ICCV 2021
    """

    code = "GL303"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = FLOW_PROBES
    name = "unnormalized-residual-stack"
    severity = Severity.WARNING
    severities = FLOW_SEVERITIES
    summary = "many residual blocks without normalization or branch scaling: the gradient explodes"
    claims = (Cause.RESIDUAL_GROWTH,)
    options = {"min-blocks": 2}

    VALID = [
        # normalized branches
        Valid(
            """
            import torch.nn as nn
            class B(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.n = nn.LayerNorm(64)
                    self.f = nn.Linear(64, 64)
                def forward(self, x):
                    return x + self.f(self.n(x)).relu()
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.bs = nn.ModuleList([B() for _ in range(60)])
                def forward(self, x):
                    for b in self.bs:
                        x = b(x)
                    return x
            """
        ),
        # LayerScale
        Valid(
            """
            import torch
            import torch.nn as nn
            class B(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.f = nn.Linear(64, 64)
                    self.gamma = nn.Parameter(1e-4 * torch.ones(64))
                def forward(self, x):
                    return x + self.gamma * self.f(x).relu()
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.bs = nn.ModuleList([B() for _ in range(60)])
                def forward(self, x):
                    for b in self.bs:
                        x = b(x)
                    return x
            """
        ),
        # zero-initialized last layer of each branch
        Valid(
            """
            import torch.nn as nn
            class B(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.f = nn.Linear(64, 64)
                    self.g = nn.Linear(64, 64)
                    nn.init.zeros_(self.g.weight)
                def forward(self, x):
                    return x + self.g(self.f(x).relu())
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.bs = nn.ModuleList([B() for _ in range(60)])
                def forward(self, x):
                    for b in self.bs:
                        x = b(x)
                    return x
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self, n=40):
                    super().__init__()
                    self.fs = nn.ModuleList([nn.Linear(64, 64) for _ in range(n)])
                    for f in self.fs:
                        nn.init.kaiming_normal_(f.weight)
                def forward(self, x):
                    for f in self.fs:
                        x = x + f(x).relu()
                    return x
            """,
            line=10,
        ),
    ]

    def check(self, graph, ctx) -> None:
        min_blocks = int(ctx.options["min-blocks"])
        for h in flow_hazards(graph, Cause.RESIDUAL_GROWTH):
            merges = list(h.nodes)
            if len(merges) < min_blocks:
                continue
            growth, back = h.detail.get("growth"), h.detail.get("back_growth")
            grows = (
                f"activations grow about {growth:.1e}-fold over the {len(merges)} blocks, so "
                if growth and growth > 1
                else ""
            )
            if h.detail.get("normalized") and back and back > 1:
                # normalized branches keep the stream's growth small; the gradient's is the story
                grows = (
                    f"the gradient's RMS on the stream grows about {back:.1e}-fold from the last block back to the"
                    f" first "
                    f"(each block adds its branch's gradient to the skip's), so "
                )
            if h.detail.get("normalized"):
                what = (
                    f"{len(merges)} residual blocks whose branches are normalized but not scaled down at init "
                    f"(each adds a unit-variance branch to the stream)"
                )
                remedy = (
                    "zero-initialize the last normalization of each branch (torchvision: "
                    "`zero_init_residual=True`), or scale the branch (LayerScale, 1/sqrt(N))"
                )
            else:
                what = f"{len(merges)} residual blocks with neither normalization nor branch scaling"
                remedy = (
                    "normalize inside each block (LayerNorm/BatchNorm), or scale the branch (LayerScale, "
                    "zero-init its last layer, 1/sqrt(N))"
                )
            message = f"{what}: {flow_direction(h)} — {grows}{flow_sentence(h)}"
            flow_report(
                ctx,
                graph,
                h,
                merges[0].span,
                message,
                remedy,
                [ctx.related(merges[-1].span, f"block {len(merges)} of the run")],
            )
