from __future__ import annotations

from gradlint.flow.hazards import Cause
from gradlint.rule import Rule
from gradlint.rules._common import flow_direction, flow_hazards, flow_report, flow_sentence


class UnnormalizedResidualStack(Rule):
    """## What it does
    Finds many residual blocks in a row (`x = x + f(x)`) whose branches have neither
    normalization nor branch scaling — no BatchNorm/LayerNorm in the branch, no LayerScale or
    constant factor, no zero-initialized last layer.

    ## Why is this bad?
    A skip connection passes the gradient back undiminished, but each block also adds its
    branch: the backward gain of a block is about `sqrt(1 + chi)`, where `chi` is the branch's
    own squared gain (about 1 for a He-initialized ReLU branch). Over `N` blocks that compounds
    to `(1 + chi)^(N/2)`: with `chi = 1` the gradient grows about 180x over 15 blocks and
    3e4x over 30. gradlint follows the residual stream block by block: its variance grows
    (bounded activations in late branches saturate, and their `chi` falls), and so does the
    mean its units share when the branches are not centred (ReLU, GELU): stream and branch
    then add coherently, and the measured growth exceeds `(1 + chi)^(N/2)` by about 10x at 30
    ReLU blocks. The estimate adds half of that extra forward growth to the backward gain (in
    log scale), an empirical correction checked by `make calibrate` (width 256, torch
    backward passes, 3 seeds x 16 examples; backward gain from the last block to the first):

    | branch `x + f(W x)` | blocks | measured | estimated |
    |---|---|---|---|
    | ReLU, Kaiming | 10 | 25 | 49 |
    | ReLU, Kaiming | 20 | 1.4e3 | 3.9e3 |
    | ReLU, Kaiming | 30 | 3.1e5 | 3.2e5 |
    | GELU, Kaiming | 30 | 3.2e5 | 3.2e5 |
    | ReLU, PyTorch default | 30 | 30 | 70 |
    | tanh, Kaiming | 30 | 52 | 26 |
    | sigmoid, PyTorch default | 30 | 3.0 | 3.4 |

    Every residual cell of the grid (ReLU, GELU, tanh, sigmoid x default, Kaiming x 10, 20,
    30 blocks) agrees within 2.7x. Normalized residual networks (ResNet, pre-LN transformers)
    and scaled ones (Fixup, ReZero, LayerScale, zero-init-residual, `1/sqrt(N)` branch
    factors) do not grow.

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

    The vanishing and exploding thresholds are not options of this rule: they are the tests
    `--dynamic` applies to measurements, kept in one place for both (`gradlint.flow.convention`):
    the first layer's weight gradient below 1e-3 of the last layer's, or its norm below 1e-7, is
    vanishing; above 70 times the last layer's, or a norm above 1e3 for the first layer or for
    the whole gradient, or an overflow, is exploding.

    ## References
    - He et al., *Identity Mappings in Deep Residual Networks*, ECCV 2016
    - Zhang, Dauphin & Ma, *Fixup Initialization*, ICLR 2019
    - Bachlechner et al., *ReZero is All You Need*, 2020; Touvron et al., *Going deeper with Image Transformers* (LayerScale), ICCV 2021
    """

    code = "GL303"
    name = "unnormalized-residual-stack"
    severity = "warning"
    summary = "many residual blocks without normalization or branch scaling: the gradient explodes"
    options = {"min-blocks": 2}

    VALID = [
        # normalized branches
        "import torch.nn as nn\nclass B(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.n = nn.LayerNorm(64)\n        self.f = nn.Linear(64, 64)\n"
        "    def forward(self, x):\n        return x + self.f(self.n(x)).relu()\n"
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.bs = nn.ModuleList([B() for _ in range(60)])\n"
        "    def forward(self, x):\n        for b in self.bs:\n            x = b(x)\n        return x\n",
        # LayerScale
        "import torch\nimport torch.nn as nn\nclass B(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.f = nn.Linear(64, 64)\n        self.gamma = nn.Parameter(1e-4 * torch.ones(64))\n"
        "    def forward(self, x):\n        return x + self.gamma * self.f(x).relu()\n"
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.bs = nn.ModuleList([B() for _ in range(60)])\n"
        "    def forward(self, x):\n        for b in self.bs:\n            x = b(x)\n        return x\n",
        # zero-initialized last layer of each branch
        "import torch.nn as nn\nclass B(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.f = nn.Linear(64, 64)\n        self.g = nn.Linear(64, 64)\n        nn.init.zeros_(self.g.weight)\n"
        "    def forward(self, x):\n        return x + self.g(self.f(x).relu())\n"
        "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.bs = nn.ModuleList([B() for _ in range(60)])\n"
        "    def forward(self, x):\n        for b in self.bs:\n            x = b(x)\n        return x\n",
    ]
    INVALID = [
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self, n=40):\n        super().__init__()\n"
        "        self.fs = nn.ModuleList([nn.Linear(64, 64) for _ in range(n)])\n"
        "        for f in self.fs:\n            nn.init.kaiming_normal_(f.weight)\n"
        "    def forward(self, x):\n        for f in self.fs:\n            x = x + f(x).relu()\n        return x\n",
    ]

    def check(self, graph, ctx) -> None:
        min_blocks = int(ctx.options["min-blocks"])
        for h in flow_hazards(graph, Cause.RESIDUAL_GROWTH):
            merges = list(h.nodes)
            if len(merges) < min_blocks:
                continue
            growth = h.detail.get("growth")
            grows = (f"activations grow about {growth:.1e}-fold over the {len(merges)} blocks, so "
                     if growth and growth > 1 else "")
            if h.detail.get("normalized"):
                what = (f"{len(merges)} residual blocks whose branches are normalized but not scaled down at init "
                        f"(each adds a unit-variance branch to the stream)")
                remedy = ("zero-initialize the last normalization of each branch (torchvision: "
                          "`zero_init_residual=True`), or scale the branch (LayerScale, 1/sqrt(N))")
            else:
                what = f"{len(merges)} residual blocks with neither normalization nor branch scaling"
                remedy = ("normalize inside each block (LayerNorm/BatchNorm), or scale the branch (LayerScale, "
                          "zero-init its last layer, 1/sqrt(N))")
            message = f"{what}: {flow_direction(h)} — {grows}{flow_sentence(h)}"
            flow_report(ctx, graph, h, merges[0].span, message, remedy,
                        [ctx.related(merges[-1].span, f"block {len(merges)} of the run")])
