from __future__ import annotations

from gradlint.graph import catalog
from gradlint.diagnostics import Fix
from gradlint.rule import Rule
from gradlint.rules._common import confidence_of, describe_names


class ConstantWeightInit(Rule):
    """## What it does
    Finds weights initialized to a constant (`nn.init.constant_`, `ones_`, `zeros_`,
    `w.fill_(c)`, `w.zero_()`, `nn.Parameter(torch.full(...))`) on a layer whose output feeds
    other weighted layers.

    ## Why is this bad?
    With constant weights every unit of the layer computes the same function of its input and
    receives the same gradient, so the units never become different: the layer behaves like a
    single unit (the symmetry is never broken). When the biases are constant too (or absent)
    the symmetry is exact and permanent; when PyTorch's random default biases are left in
    place only the biases tell the units apart, and they learn nearly alike (starved).
    Zero weights additionally block the gradient to every layer before them.

    Not reported: biases, normalization-layer weights (set to 1 by design), the output layer
    (it feeds no other weighted layer, so a zero-initialized head is a common, safe choice),
    and a zero-initialized last layer of a residual branch (zero-init-residual, ReZero, Fixup).

    ## Example
    ```python
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
            self.apply(self._init)

        def _init(self, m):
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 0.01)
                nn.init.zeros_(m.bias)

        def forward(self, x):
            return self.net(x)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
            self.apply(self._init)

        def _init(self, m):
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

        def forward(self, x):
            return self.net(x)
    ```

    ## Known problems
    When the model's `forward` cannot be resolved, whether the layer feeds another one is
    unknown; the finding is then reported with `heuristic` confidence unless the layer is the
    last weighted layer the model registers.

    ## Fix safety
    The fix replaces an `nn.init.constant_`/`ones_`/`zeros_` call with the initializer that
    matches the activation after the layer (Xavier for sigmoid/tanh, Kaiming for ReLU-family).
    It is unsafe: it changes the model's initial weights, and so its training run.

    ## References
    - Goodfellow, Bengio & Courville, *Deep Learning*, §8.4 (breaking symmetry), 2016
    - Glorot & Bengio, *Understanding the difficulty of training deep feedforward neural networks*, AISTATS 2010
    - [torch.nn.init](https://pytorch.org/docs/stable/nn.init.html)
    """

    code = "GL201"
    name = "constant-weight-init"
    severity = "error"
    fix_safety = "unsafe"
    summary = "a weight initialized to a constant keeps its units identical (symmetric or dead)"

    VALID = [
        # constant biases, random weights
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n        self.b = nn.Linear(8, 2)\n"
        "        nn.init.xavier_uniform_(self.a.weight)\n        nn.init.constant_(self.a.bias, 0.1)\n"
        "    def forward(self, x):\n        return self.b(self.a(x).relu())\n",
        # zero-initialized output head
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n        self.head = nn.Linear(8, 2)\n        nn.init.zeros_(self.head.weight)\n"
        "    def forward(self, x):\n        return self.head(self.a(x).relu())\n",
        # normalization weights set to one
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n        self.norm = nn.LayerNorm(8)\n        self.b = nn.Linear(8, 2)\n"
        "        nn.init.ones_(self.norm.weight)\n"
        "    def forward(self, x):\n        return self.b(self.norm(self.a(x)))\n",
        # zero-init last layer of a residual branch
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n        self.b = nn.Linear(8, 8)\n        self.out = nn.Linear(8, 2)\n"
        "        nn.init.zeros_(self.b.weight)\n"
        "    def forward(self, x):\n        x = x + self.b(self.a(x).relu())\n        return self.out(x)\n",
    ]
    INVALID = [
        # constant_ via self.apply
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))\n        self.apply(self.init)\n"
        "    def init(self, m):\n        if isinstance(m, nn.Linear):\n            nn.init.constant_(m.weight, 0.5)\n"
        "    def forward(self, x):\n        return self.net(x)\n",
        # fill_ under no_grad
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n        self.b = nn.Linear(8, 2)\n"
        "        with torch.no_grad():\n            self.a.weight.fill_(0.1)\n"
        "    def forward(self, x):\n        return self.b(torch.tanh(self.a(x)))\n",
        # zeros over named_parameters
        "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n        self.b = nn.Linear(8, 2)\n"
        "        for name, p in self.named_parameters():\n            nn.init.zeros_(p)\n"
        "    def forward(self, x):\n        return self.b(self.a(x).relu())\n",
        # raw parameter from torch.ones
        "import torch\nimport torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.w1 = nn.Parameter(torch.ones(8, 8))\n        self.w2 = nn.Parameter(torch.randn(8, 2))\n"
        "    def forward(self, x):\n        return torch.relu(x @ self.w1) @ self.w2\n",
    ]

    def check(self, graph, ctx) -> None:
        weighted = [l for l in graph.layers() if l.category in ("weighted", "recurrent", "parameter")]
        groups: dict[tuple, list] = {}
        for layer in weighted:
            init = graph.init_of(layer, "weight")
            if init is None or not init.is_constant or init.span is None:
                continue
            if layer.category == "parameter" and (
                not graph.applications(layer) or len(layer.params.get("shape") or ()) == 1
            ):
                # a raw parameter is a weight only where forward multiplies by it (``x @ W``,
                # ``F.linear``); tokens, position tables, biases and scales are not
                continue
            feeds = graph.feeds_weighted(layer)
            confidence = confidence_of(graph)
            if feeds is False:
                continue
            if feeds is None:
                if layer is weighted[-1]:
                    continue
                confidence = "heuristic"
            if init.value == 0.0 and graph.ends_in_skip(layer):
                continue
            groups.setdefault((init.span.line, init.span.col, init.text), []).append((layer, init, confidence))
        for (_, _, text), items in groups.items():
            layers = [l for l, _, _ in items]
            init = items[0][1]
            confidence = "heuristic" if any(c == "heuristic" for _, _, c in items) else items[0][2]
            biases_constant = all(self._bias_constant(graph, l) for l in layers)
            kinds = sorted({l.kind for l in layers})
            what = f"nn.{kinds[0]}" if len(kinds) == 1 and layers[0].category != "parameter" else "layer"
            where = layers[0].name if len(layers) == 1 else f"{len(layers)} {what} weights ({describe_names(layers[0].name, layers[-1].name)})"
            value = "zero" if init.value == 0.0 else "constant"
            if init.value == 0.0:
                effect = "the gradient to the layers before it is zero and its units stay symmetric (dead)"
                severity = "error"
            elif biases_constant:
                effect = "its units start identical and get identical gradients: the symmetry is never broken (dead/symmetric units)"
                severity = "error"
            else:
                effect = "only the random biases tell its units apart, so they start and learn nearly alike (starved)"
                severity = "warning"
            feed = "feeds" if len(layers) == 1 else "feed"
            message = f"{value} init `{text}` on {where}, which {feed} other layers: {effect}"
            remedy, fix = self._remedy(graph, layers[0], init, ctx)
            related = tuple(ctx.related(l.span, f"{l.name} = nn.{l.kind}(...)" if l.category != "parameter" else f"{l.name} = nn.Parameter(...)") for l in layers[:8])
            ctx.report(init.span, message, severity=severity, confidence=confidence, help=remedy, related=related, fix=fix,
                       layers=tuple(l.name for l in layers), expect="starved" if severity == "warning" else "symmetric")

    @staticmethod
    def _bias_constant(graph, layer) -> bool:
        if layer.category == "parameter":
            return True
        if layer.params.get("bias", True) is False:
            return True
        bias = layer.inits.get("bias")
        return bias is not None and bias.is_constant

    @staticmethod
    def _remedy(graph, layer, init, ctx):
        act = graph.next_activation(layer)
        info = catalog.activation_info(act)
        if info is not None:
            name, extra = "xavier_uniform_", ""
            help = f"use `nn.init.xavier_uniform_(…weight)`, which matches the {act} activation; keep constants for biases"
        else:
            name, extra = "kaiming_normal_", ', nonlinearity="relu"'
            help = "use `nn.init.kaiming_normal_(…weight, nonlinearity=\"relu\")` (Xavier for sigmoid/tanh); keep constants for biases"
        fix = None
        # Rewrite the initializer call in place when it is spelled through a module path
        # (``nn.init.constant_(w, c)``), so the replacement needs no new import.
        if init.callee and "." in init.callee and init.target and init.via != "parameter-factory":
            prefix = init.callee.rsplit(".", 1)[0]
            replacement = f"{prefix}.{name}({init.target}{extra})"
            fix = Fix(f"replace with `{replacement}`", "unsafe", (ctx.edit(init.span, replacement),))
        return help, fix
