"""Calibrate gradlint's flow model (:mod:`gradlint.flow`) against torch backward passes.

    .venv/bin/python benchmarks/calibrate.py [--quick] [--seeds N] [--dead-seeds N]
        [--family NAME ...] [--markdown FILE] [--csv FILE] [--layers CELL ...] [-v]

``--layers family:name`` prints one cell layer by layer (measured against predicted input
RMS, ``||grad W||`` and output-gradient RMS): where a cell disagrees, the first layer where
they part shows which transfer map is off.

Every *cell* is a small model written as Python source, the way a user writes one (a class
``Net`` with no required constructor argument and a module constant ``INPUT_SHAPE``), from
a template per family:

- ``plain``: Linear stacks, sigmoid/tanh/ReLU/GELU x five initializers x depth 5-30;
- ``normalized``: Linear -> BatchNorm1d/LayerNorm/GroupNorm(8) -> ReLU/tanh, no skips, depth 10-80;
- ``residual``: ``x = x + f(x)``, LayerNorm in the branch or not, 1 or 2 Linear layers per
  branch, ReLU/tanh, default/Kaiming init, 4-80 blocks; a zero-initialized last branch layer;
  a ``0.1 *`` branch multiplier;
- ``narrow``: ReLU nets of width 2-16, 8-30 layers, Kaiming, zero biases (born dead or not);
- ``unbounded``: ``torch.exp`` and ``x ** 2`` activations, softplus;
- ``saturated``: one ``Linear(n, 50)`` with ``normal_(0, 1)`` + tanh + a Linear head;
- ``conv``: Conv2d(3x3, padding 1) stacks, BatchNorm2d or not, ReLU, 16 channels;
- ``recurrent``: ``nn.RNN`` (tanh, default init) over 10-500 steps. Where the flow model
  leaves a recurrent cell uncertain (its profile incomplete), the cell is measured and listed
  as *not predicted*, outside both tests; once the profile is complete it is compared like
  any other cell.

**Measured** (torch, float32, ``--seeds`` seeds, in the convention of
:mod:`gradlint.flow.convention`): per seed ``torch.manual_seed(seed)``, ``Net()`` in train
mode, an N(0, 1) input of ``INPUT_SHAPE`` (batch 8), the loss ``sum(out * r) / (B sqrt(P))``
with a fixed ``r ~ N(0, 1)``, one backward pass. Forward hooks on the weighted modules
(Linear, Conv, Embedding, RNN; not norms) give the forward order; ``||grad W||`` of each
(the weight only; an RNN's ``weight_ih_l0`` and ``weight_hh_l0`` in quadrature) and the
gradient RMS at its output. ``first`` = the first layer's ``||grad W||``, ``ratio`` =
first/last, ``total`` = every weighted layer's ``||grad W||`` in quadrature, ``gain`` = output
gradient RMS first/last, ``finite`` (no inf/NaN in the output or any gradient), ``dead``
(every weighted layer but the last has an exactly-zero gradient). Seeds combine by geometric
mean (NaN skipped, 0 stays 0, inf stays inf); ``finite`` when every seed is; ``dead`` by
majority. The measured hazard is ``convention.classify(...)``. The narrow cells also measure
the dead fraction over ``--dead-seeds`` (20) seeds, the saturated cells the fraction of
pre-activations where ``tanh' < 0.01``.

**Predicted** by gradlint's whole static path: the cell's source parsed, its graph built
(:func:`gradlint.graph.builder.build_graphs`), its flow profile judged
(:func:`gradlint.flow.hazards.judge`); the predicted hazard is
``Numbers.of(profile).judge()``.

**Exit status 1** when (1) on a cell where both ratios are finite and above 1e-30 the
prediction is off by more than 10x, or (2) the hazards agree on fewer than 95 % of the
predicted cells. The worst offenders are printed.

(The bottom of this file keeps the previous calibration of the plain-stack estimate,
``run``/``QUICK_GRID``/``render``/``worst_factor``, for ``tests/test_calibration.py``.)
"""

from __future__ import annotations

import argparse
import ast
import csv
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
from torch import nn  # noqa: E402

from gradlint.flow.convention import BATCH, THRESHOLDS, classify_seeds, geomean  # noqa: E402
from gradlint.flow.hazards import Numbers, judge  # noqa: E402
from gradlint.graph.builder import build_graphs  # noqa: E402

#: the read-out's seed: the same r for every seed of every cell (as --dynamic does)
READOUT_SEED = 1234
#: largest allowed |log10(predicted ratio / measured ratio)|
MAX_LOG_FACTOR = 1.0
#: least share of predicted cells whose hazards must agree
MIN_AGREEMENT = 0.95
#: ratios at or below this (or non-finite) are not compared by factor
TINY = 1e-30
#: a cell whose seeds' log10 ||grad W_first|| spread (standard deviation) reaches this is noted:
#: its geometric mean over a few seeds is noise-dominated
SPREAD_NOTE = 1.0
#: tanh'(z) below this: a saturated unit
SATURATED_DERIVATIVE = 0.01


# ---------------------------------------------------------------- cells
@dataclass
class Cell:
    family: str
    name: str
    source: str
    #: False where the flow model is known not to model the cell (recurrent layers)
    predicted: bool = True
    #: seeds over which the dead fraction is measured (narrow cells)
    dead_seeds: int = 0
    #: measure the saturated fraction of the tanh pre-activations (saturated cells)
    saturation: bool = False


ACT_MODULE = {
    "sigmoid": "nn.Sigmoid()",
    "tanh": "nn.Tanh()",
    "relu": "nn.ReLU()",
    "gelu": "nn.GELU()",
    "softplus": "nn.Softplus()",
}
INIT_LINE = {
    "default": None,
    "xavier": "nn.init.xavier_uniform_(m.weight)",
    "kaiming": 'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")',
    "normal1": "nn.init.normal_(m.weight, 0, 1)",
    "normal.01": "nn.init.normal_(m.weight, 0, 0.01)",
}
HEADER = "import torch\nimport torch.nn as nn\n\n"


def _init_block(init: str, kinds: str = "nn.Linear", zero_bias: bool = False, indent: str = "        ") -> str:
    line = INIT_LINE[init]
    lines = [line] if line else []
    if zero_bias:
        lines.append("nn.init.zeros_(m.bias)")
    if not lines:
        return ""
    body = "".join(f"{indent}        {x}\n" for x in lines)
    return f"{indent}for m in self.modules():\n{indent}    if isinstance(m, {kinds}):\n{body}"


def plain_source(act: str, init: str, depth: int, width: int = 256) -> str:
    return (
        HEADER + f"INPUT_SHAPE = (8, {width})\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, depth={depth}, width={width}):\n"
        "        super().__init__()\n"
        "        layers = []\n"
        "        for i in range(depth):\n"
        "            layers.append(nn.Linear(width, width))\n"
        "            if i < depth - 1:\n"
        f"                layers.append({ACT_MODULE[act]})\n"
        "        self.net = nn.Sequential(*layers)\n" + _init_block(init) + "\n    def forward(self, x):\n"
        "        return self.net(x)\n"
    )


NORM_MODULE = {
    "batchnorm": "nn.BatchNorm1d(width)",
    "layernorm": "nn.LayerNorm(width)",
    "groupnorm": "nn.GroupNorm(8, width)",
}


def normalized_source(norm: str, act: str, depth: int) -> str:
    width = 96 if norm == "groupnorm" else 100  # GroupNorm(8, C) needs C divisible by 8
    return (
        HEADER + f"INPUT_SHAPE = (8, {width})\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, depth={depth}, width={width}):\n"
        "        super().__init__()\n"
        "        blocks = []\n"
        "        for _ in range(depth):\n"
        f"            blocks += [nn.Linear(width, width), {NORM_MODULE[norm]}, {ACT_MODULE[act]}]\n"
        "        self.body = nn.Sequential(*blocks)\n"
        "        self.head = nn.Linear(width, 10)\n"
        "\n    def forward(self, x):\n"
        "        return self.head(self.body(x))\n"
    )


def residual_source(
    act: str,
    init: str,
    depth: int,
    norm: bool,
    branch: int,
    zero_last: bool = False,
    scale: float | None = None,
    width: int = 128,
) -> str:
    inner = "self.norm(x)" if norm else "x"
    if branch == 1:
        layers = "        self.fc = nn.Linear(width, width)\n"
        expr = f"self.act(self.fc({inner}))"
        last = "fc"
    else:
        layers = "        self.fc1 = nn.Linear(width, width)\n        self.fc2 = nn.Linear(width, width)\n"
        expr = f"self.fc2(self.act(self.fc1({inner})))"
        last = "fc2"
    zero = f"        for block in self.blocks:\n            nn.init.zeros_(block.{last}.weight)\n" if zero_last else ""
    add = f"{scale} * block(x)" if scale is not None else "block(x)"
    return (
        HEADER + "INPUT_SHAPE = (8, 32)\n\n\n"
        "class Block(nn.Module):\n"
        "    def __init__(self, width):\n"
        "        super().__init__()\n"
        + ("        self.norm = nn.LayerNorm(width)\n" if norm else "")
        + layers
        + f"        self.act = {ACT_MODULE[act]}\n"
        "\n    def forward(self, x):\n"
        f"        return {expr}\n"
        "\n\nclass Net(nn.Module):\n"
        f"    def __init__(self, depth={depth}, width={width}):\n"
        "        super().__init__()\n"
        "        self.stem = nn.Linear(32, width)\n"
        "        self.blocks = nn.ModuleList([Block(width) for _ in range(depth)])\n"
        "        self.head = nn.Linear(width, 10)\n" + _init_block(init) + zero + "\n    def forward(self, x):\n"
        "        x = self.stem(x)\n"
        "        for block in self.blocks:\n"
        f"            x = x + {add}\n"
        "        return self.head(x)\n"
    )


def narrow_source(width: int, depth: int) -> str:
    return (
        HEADER + f"INPUT_SHAPE = (8, {width})\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, depth={depth}, width={width}):\n"
        "        super().__init__()\n"
        "        layers = []\n"
        "        for _ in range(depth):\n"
        "            layers += [nn.Linear(width, width), nn.ReLU()]\n"
        "        layers.append(nn.Linear(width, 1))\n"
        "        self.net = nn.Sequential(*layers)\n"
        + _init_block("kaiming", zero_bias=True)
        + "\n    def forward(self, x):\n"
        "        return self.net(x)\n"
    )


UNBOUNDED_EXPR = {"exp": "torch.exp(layer(x))", "square": "layer(x) ** 2", "softplus": "self.act(layer(x))"}


def unbounded_source(act: str, depth: int, width: int, init: str = "default") -> str:
    return (
        HEADER + f"INPUT_SHAPE = (8, {width})\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, depth={depth}, width={width}):\n"
        "        super().__init__()\n"
        "        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])\n"
        + ("        self.act = nn.Softplus()\n" if act == "softplus" else "")
        + "        self.head = nn.Linear(width, 1)\n"
        + _init_block(init)
        + "\n    def forward(self, x):\n"
        "        for layer in self.layers:\n"
        f"            x = {UNBOUNDED_EXPR[act]}\n"
        "        return self.head(x)\n"
    )


def saturated_source(n: int) -> str:
    return (
        HEADER + f"INPUT_SHAPE = (8, {n})\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, n_in={n}, hidden=50):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(n_in, hidden)\n"
        "        nn.init.normal_(self.fc.weight, 0, 1)\n"
        "        self.act = nn.Tanh()\n"
        "        self.head = nn.Linear(hidden, 10)\n"
        "\n    def forward(self, x):\n"
        "        return self.head(self.act(self.fc(x)))\n"
    )


def conv_source(depth: int, bn: bool, init: str, channels: int = 16) -> str:
    norm = " nn.BatchNorm2d(channels)," if bn else ""
    return (
        HEADER + "INPUT_SHAPE = (8, 3, 64, 64)\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, depth={depth}, channels={channels}):\n"
        "        super().__init__()\n"
        "        layers = []\n"
        "        c = 3\n"
        "        for _ in range(depth):\n"
        f"            layers += [nn.Conv2d(c, channels, 3, padding=1),{norm} nn.ReLU()]\n"
        "            c = channels\n"
        "        self.features = nn.Sequential(*layers)\n"
        "        self.pool = nn.AdaptiveAvgPool2d(1)\n"
        "        self.head = nn.Linear(channels, 10)\n"
        + _init_block(init, kinds="(nn.Conv2d, nn.Linear)")
        + "\n    def forward(self, x):\n"
        "        x = self.pool(self.features(x))\n"
        "        return self.head(torch.flatten(x, 1))\n"
    )


def recurrent_source(steps: int, hidden: int = 64, n_in: int = 16) -> str:
    return (
        HEADER + f"INPUT_SHAPE = (8, {steps}, {n_in})\n\n\n"
        "class Net(nn.Module):\n"
        f"    def __init__(self, n_in={n_in}, hidden={hidden}):\n"
        "        super().__init__()\n"
        "        self.rnn = nn.RNN(n_in, hidden, batch_first=True)\n"
        "        self.head = nn.Linear(hidden, 10)\n"
        "\n    def forward(self, x):\n"
        "        out, _ = self.rnn(x)\n"
        "        return self.head(out[:, -1])\n"
    )


#: the ``--quick`` slice: a few cells of every family, each hazard class represented
QUICK = frozenset(
    {
        "plain:sigmoid/default/d5",
        "plain:sigmoid/xavier/d5",
        "plain:sigmoid/xavier/d20",
        "plain:sigmoid/normal1/d20",
        "plain:tanh/default/d20",
        "plain:tanh/xavier/d20",
        "plain:tanh/kaiming/d5",
        "plain:tanh/normal1/d5",
        "plain:relu/default/d20",
        "plain:relu/kaiming/d20",
        "plain:relu/normal1/d5",
        "plain:relu/normal.01/d10",
        "plain:gelu/default/d20",
        "plain:gelu/kaiming/d10",
        "normalized:batchnorm/relu/d10",
        "normalized:batchnorm/relu/d80",
        "normalized:layernorm/tanh/d80",
        "normalized:groupnorm/relu/d40",
        "residual:plain/b1/relu/kaiming/d10",
        "residual:plain/b2/relu/kaiming/d20",
        "residual:plain/b2/relu/default/d80",
        "residual:ln/b1/relu/kaiming/d80",
        "residual:ln/b2/tanh/default/d20",
        "residual:plain/b1/tanh/default/d40",
        "residual:zero-last/b2/relu/kaiming/d10",
        "residual:x0.1/b1/relu/kaiming/d40",
        "narrow:w2/d20",
        "narrow:w5/d8",
        "narrow:w5/d30",
        "narrow:w16/d20",
        "unbounded:exp/w5/d10",
        "unbounded:exp/w16/d2",
        "unbounded:square/w8/d4",
        "unbounded:softplus/default/w16/d10",
        "saturated:tanh/n4",
        "saturated:tanh/n100",
        "conv:plain/relu/default/d10",
        "conv:bn/relu/default/d5",
        "recurrent:rnn-tanh/h64/T10",
        "recurrent:rnn-tanh/h64/T300",
    }
)


def grid(quick: bool = False, dead_seeds: int = 20) -> list[Cell]:
    """Every cell of the calibration, or the ``--quick`` slice (:data:`QUICK`, 40 cells)."""
    cells = full_grid(dead_seeds)
    if quick:
        cells = [c for c in cells if f"{c.family}:{c.name}" in QUICK]
    return cells


def full_grid(dead_seeds: int = 20) -> list[Cell]:
    """Every cell of the calibration (about 250), family by family."""
    cells: list[Cell] = []

    def add(family, name, src, **kw):
        cells.append(Cell(family, name, src, **kw))

    for act in ("sigmoid", "tanh", "relu", "gelu"):
        for init in INIT_LINE:
            for d in (5, 10, 20, 30):
                add("plain", f"{act}/{init}/d{d}", plain_source(act, init, d))

    for norm in NORM_MODULE:
        for act in ("relu", "tanh"):
            for d in (10, 20, 40, 80):
                add("normalized", f"{norm}/{act}/d{d}", normalized_source(norm, act, d))

    for norm in (False, True):
        for branch in (1, 2):
            for act in ("relu", "tanh"):
                for init in ("default", "kaiming"):
                    for d in (4, 10, 20, 40, 80):
                        tag = f"{'ln' if norm else 'plain'}/b{branch}/{act}/{init}/d{d}"
                        add("residual", tag, residual_source(act, init, d, norm, branch))
    for d in (10, 40):
        for branch in (1, 2):
            add(
                "residual",
                f"zero-last/b{branch}/relu/kaiming/d{d}",
                residual_source("relu", "kaiming", d, False, branch, zero_last=True),
            )
            add(
                "residual",
                f"x0.1/b{branch}/relu/kaiming/d{d}",
                residual_source("relu", "kaiming", d, False, branch, scale=0.1),
            )

    for w in (2, 3, 4, 5, 8, 16):
        for d in (8, 15, 20, 30):
            add("narrow", f"w{w}/d{d}", narrow_source(w, d), dead_seeds=dead_seeds)

    for d in (2, 4, 6, 8, 10):
        for w in (5, 16):
            add("unbounded", f"exp/w{w}/d{d}", unbounded_source("exp", d, w))
    for d in (2, 4, 6, 8, 10):
        add("unbounded", f"square/w8/d{d}", unbounded_source("square", d, 8))
    for d in (5, 10, 20):
        for init in ("default", "kaiming"):
            add("unbounded", f"softplus/{init}/w16/d{d}", unbounded_source("softplus", d, 16, init))

    for n in (4, 30, 100, 300):
        add("saturated", f"tanh/n{n}", saturated_source(n), saturation=True)

    for bn in (False, True):
        for init in ("default", "kaiming"):
            for d in (5, 10, 20):
                add("conv", f"{'bn' if bn else 'plain'}/relu/{init}/d{d}", conv_source(d, bn, init))

    for steps in (10, 30, 100, 300, 500):
        add("recurrent", f"rnn-tanh/h64/T{steps}", recurrent_source(steps), predicted=False)
    add("recurrent", "rnn-tanh/h256/T100", recurrent_source(100, hidden=256), predicted=False)
    return cells


# ---------------------------------------------------------------- measurement
WEIGHTED = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.RNNBase,
    nn.Bilinear,
)


def load(source: str, name: str = "cell.py"):
    """``(Net, INPUT_SHAPE)`` of a cell's source."""
    namespace: dict = {"__name__": "calibrate_cell"}
    exec(compile(source, name, "exec"), namespace)
    return namespace["Net"], tuple(namespace["INPUT_SHAPE"])


def _norm(t) -> float:
    return 0.0 if t is None else float(t.detach().double().norm().item())


def _weight_grad_norm(m) -> float:
    if isinstance(m, nn.RNNBase):
        parts = [_norm(p.grad) for n, p in m.named_parameters() if n.startswith("weight_")]
        return math.sqrt(sum(x * x for x in parts))
    return _norm(m.weight.grad)


def measure_seed(net_cls, shape, seed: int, saturation: bool = False) -> dict:
    """One seed's numbers in the convention: per weighted layer (forward order) ``||grad W||``
    and the gradient RMS at its output, and the summaries."""
    torch.manual_seed(seed)
    net = net_cls()
    net.train()
    order: list = []
    outputs: dict = {}
    pre: list = []

    def hook(module, inputs, output):
        if module in outputs:
            return  # a module applied again: the first application's output is kept
        t = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(t, torch.Tensor) and t.requires_grad:
            t.retain_grad()
        order.append(module)
        outputs[module] = t
        if saturation and isinstance(module, nn.Linear) and not pre:
            pre.append(t.detach())

    inputs_rms: dict = {}

    def pre_hook(module, inputs):
        t = inputs[0] if inputs else None
        if module not in inputs_rms and isinstance(t, torch.Tensor) and t.is_floating_point():
            inputs_rms[module] = float(t.detach().double().pow(2).mean().sqrt().item())

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, WEIGHTED)]
    hooks += [m.register_forward_pre_hook(pre_hook) for m in net.modules() if isinstance(m, WEIGHTED)]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    out = net(x)
    per_example = max(1, out.numel() // max(1, out.shape[0]))
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(READOUT_SEED)).to(out.dtype)
    loss = (out * r).sum() / (BATCH * math.sqrt(per_example))
    loss.backward()
    for h in hooks:
        h.remove()
    norms = [_weight_grad_norm(m) for m in order]
    rms = []
    for m in order:
        g = outputs[m].grad if isinstance(outputs[m], torch.Tensor) else None
        rms.append(_norm(g) / math.sqrt(max(1, g.numel())) if g is not None else float("nan"))
    finite = (
        bool(torch.isfinite(out).all().item()) and math.isfinite(loss.item()) and all(math.isfinite(v) for v in norms)
    )
    first, last = norms[0], norms[-1]
    res = dict(
        first=first,
        last=last,
        ratio=_div(first, last),
        total=math.sqrt(sum(v * v for v in norms)),
        gain=_div(rms[0], rms[-1]),
        finite=finite,
        dead=len(norms) >= 2 and all(v == 0.0 for v in norms[:-1]),
        layers=len(norms),
        per_layer=[
            dict(grad_norm=n, out_grad_rms=g, input_rms=inputs_rms.get(m, float("nan")))
            for m, n, g in zip(order, norms, rms)
        ],
    )
    if saturation and pre:
        z = pre[0].double()
        res["saturated"] = float(((1 - torch.tanh(z) ** 2) < SATURATED_DERIVATIVE).double().mean().item())
    return res


def _div(a: float, b: float) -> float:
    if a != a or b != b:
        return float("nan")
    if b > 0:
        return a / b
    return float("inf") if a > 0 else float("nan")


#: a cell whose seeds spread more than this (std of log10 of the first layer's gradient) is
#: measured over NOISY_SEEDS seeds: a geometric mean of 3 heavy-tailed draws says little
NOISY_SPREAD = 0.5
NOISY_SEEDS = 24


def _spread(runs) -> float:
    logs = [math.log10(r["first"]) for r in runs if r["first"] > 0 and math.isfinite(r["first"])]
    if len(logs) < 2:
        return 0.0
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((v - mean) ** 2 for v in logs) / (len(logs) - 1))


def measure(cell: Cell, seeds: int = 3) -> dict:
    net_cls, shape = load(cell.source, f"{cell.name}.py")
    runs = [measure_seed(net_cls, shape, s, cell.saturation) for s in range(seeds)]
    if _spread(runs) > NOISY_SPREAD and seeds < NOISY_SEEDS:
        runs += [measure_seed(net_cls, shape, s, cell.saturation) for s in range(seeds, NOISY_SEEDS)]
    live = [r for r in runs if not r["dead"]]
    # a dead seed has no ratio to speak of: the numbers are those of the live seeds, when any
    m = {k: geomean(r[k] for r in (live or runs)) for k in ("ratio", "first", "total", "gain")}
    m["finite"] = all(r["finite"] for r in runs)
    m["dead"] = 2 * sum(r["dead"] for r in runs) > len(runs)
    m["layers"] = runs[0]["layers"]
    m["hazard"] = classify_seeds(runs)[0].value  # the class most seeds show
    m["seeds"] = len(runs)
    if len(runs) >= 2:
        m["spread"] = _spread(runs)
    if cell.dead_seeds:
        more = runs + [measure_seed(net_cls, shape, s) for s in range(seeds, max(seeds, cell.dead_seeds))]
        more = more[: max(seeds, cell.dead_seeds)]
        m["dead_fraction"] = sum(r["dead"] for r in more) / len(more)
        m["dead_n"] = len(more)
        m["ratio_all"] = geomean(r["ratio"] for r in more)  # over every seed (dead ones give NaN: skipped)
        live_more = [r for r in more if not r["dead"]]
        if live_more:
            # a narrow net is dead in many seeds: its live seeds' numbers are measured over all the
            # seeds drawn for the dead fraction, not over the 3 or fewer live ones of the grid
            for k in ("ratio", "first", "total", "gain"):
                m[k] = geomean(r[k] for r in live_more)
        m["hazard"] = classify_seeds(more)[0].value
    if cell.saturation:
        m["saturated"] = sum(r["saturated"] for r in runs) / len(runs)
    return m


# ---------------------------------------------------------------- prediction
def predict(cell: Cell) -> dict:
    """gradlint's prediction through its whole static path: source -> graph -> flow profile."""
    graphs = [g for g in build_graphs(ast.parse(cell.source), f"{cell.name}.py") if g.name == "Net"]
    if not graphs:
        return dict(ok=False, why="gradlint built no graph for Net")
    graph = graphs[0]
    p = judge(graph).profile
    nums = Numbers.of(p)
    hazard, test = nums.judge()
    out = dict(
        ok=True,
        ratio=p.ratio,
        first=p.first,
        total=p.total,
        gain=p.gain,
        finite=p.finite,
        dead_probability=p.dead_probability,
        complete=p.complete,
        hazard=hazard.value,
        test=test,
        layers=len(p.layers),
        certain=len(p.certain_layers()),
    )
    if not p.complete:
        whys = sorted({st.why for st in p.stats.values() if not st.certain and st.why})
        out["why"] = "; ".join(whys) or "uncertain layers"
    sats = [
        p.stats[n.id].saturated
        for n in graph.nodes()
        if n.op == "layer" and graph.activation_of(n) == "tanh" and n.id in p.stats
    ]
    if sats:
        out["saturated"] = max(sats)
    return out


# ---------------------------------------------------------------- the calibration
def log_factor(pred, meas) -> float | None:
    """|log10(pred / meas)| where both are finite and above TINY; None otherwise."""
    ok = all(v is not None and isinstance(v, (int, float)) and math.isfinite(v) and v > TINY for v in (pred, meas))
    return abs(math.log10(pred / meas)) if ok else None


@dataclass
class Row:
    cell: Cell
    meas: dict
    pred: dict
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.cell.family

    @property
    def predicted(self) -> bool:
        """Compared with the measurement: the cell is one the flow model claims to model."""
        if not self.pred.get("ok"):
            return self.cell.predicted
        return self.cell.predicted or bool(self.pred.get("complete"))

    @property
    def factor(self) -> float | None:
        return log_factor(self.pred.get("ratio"), self.meas["ratio"]) if self.predicted else None

    @property
    def first_factor(self) -> float | None:
        return log_factor(self.pred.get("first"), self.meas["first"]) if self.predicted else None

    @property
    def agrees(self) -> bool:
        return self.pred.get("hazard") == self.meas["hazard"]

    @property
    def ratio_ok(self) -> bool:
        f = self.factor
        return f is None or f <= MAX_LOG_FACTOR


def evaluate(cell: Cell, seeds: int = 3) -> Row:
    start = time.perf_counter()
    meas = measure(cell, seeds)
    try:
        pred = predict(cell)
    except Exception as exc:  # a crash in the static path is a finding, not a stop
        pred = dict(ok=False, why=f"{type(exc).__name__}: {exc}")
    return Row(cell, meas, pred, time.perf_counter() - start)


def calibrate(cells, seeds: int = 3, progress=None) -> list[Row]:
    rows = []
    for i, cell in enumerate(cells):
        rows.append(evaluate(cell, seeds))
        if progress:
            progress(i + 1, len(cells), rows[-1])
    return rows


def summary(rows: list[Row]) -> dict:
    compared = [r for r in rows if r.predicted]
    factors = [(r.factor, r) for r in compared if r.factor is not None]
    worst = max(factors, key=lambda x: x[0]) if factors else (None, None)
    agree = sum(r.agrees for r in compared)
    return dict(
        cells=len(rows),
        compared=len(compared),
        not_predicted=len(rows) - len(compared),
        factor_cells=len(factors),
        # compared for the verdict, but the model left the ratio open (an uncertain layer)
        no_ratio=sum(
            1
            for r in compared
            if r.pred.get("ok")
            and r.pred.get("ratio") is None
            and r.meas["ratio"] is not None
            and math.isfinite(r.meas["ratio"])
        ),
        worst_factor=10 ** worst[0] if worst[0] is not None else None,
        worst_cell=f"{worst[1].family}:{worst[1].cell.name}" if worst[1] else None,
        agreement=agree / len(compared) if compared else float("nan"),
        agree=agree,
        factor_failures=[r for r in compared if not r.ratio_ok],
        verdict_failures=[r for r in compared if not r.agrees],
    )


def passed(s: dict) -> bool:
    return not s["factor_failures"] and s["agreement"] >= MIN_AGREEMENT


# ---------------------------------------------------------------- output
def _g(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if x != x:
        return "nan"
    if x in (math.inf, -math.inf):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.2g}" if 1e-2 <= abs(x) < 1e3 else f"{x:.1e}"


def _factor_text(lf) -> str:
    return "-" if lf is None else f"{10**lf:.2g}x" if lf < 3 else f"{10**lf:.1e}x"


def _extra(r: Row) -> str:
    bits = []
    if "dead_fraction" in r.meas:
        bits.append(
            f"dead {r.meas['dead_fraction']:.2f}/{r.pred.get('dead_probability', float('nan')):.2f}"
            f" (n={r.meas['dead_n']})"
        )
    if "ratio_all" in r.meas:
        bits.append(f"ratio over {r.meas['dead_n']} seeds {_g(r.meas['ratio_all'])}")
    if r.meas.get("spread", 0) >= SPREAD_NOTE:
        bits.append(f"seeds spread {r.meas['spread']:.1f} dex in first")
    if "saturated" in r.meas:
        bits.append(f"sat {r.meas['saturated']:.2f}/{r.pred.get('saturated', float('nan')):.2f}")
    if not r.meas["finite"]:
        bits.append("inf/NaN")
    if not r.pred.get("ok"):
        bits.append(f"no prediction: {r.pred.get('why')}")
    elif not r.pred.get("complete"):
        bits.append(f"uncertain ({r.pred.get('certain')}/{r.pred.get('layers')} layers): {r.pred.get('why')}")
    return "; ".join(bits)


COLUMNS = ("cell", "ratio meas", "ratio pred", "factor", "first meas", "first pred", "hazard meas", "hazard pred")


def _cells(r: Row) -> list[str]:
    pred_h = r.pred.get("hazard", "-") if r.predicted else "(not predicted)"
    mark = "" if not r.predicted or (r.agrees and r.ratio_ok) else " !"
    return [
        r.cell.name + mark,
        _g(r.meas["ratio"]),
        _g(r.pred.get("ratio")),
        _factor_text(r.factor),
        _g(r.meas["first"]),
        _g(r.pred.get("first")),
        r.meas["hazard"],
        pred_h,
    ]


def render(rows: list[Row]) -> str:
    """The per-family tables."""
    out = []
    for family in dict.fromkeys(r.family for r in rows):
        fam = [r for r in rows if r.family == family]
        table = [list(COLUMNS) + ["notes"]] + [_cells(r) + [_extra(r)] for r in fam]
        widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
        out.append(f"\n{family} ({len(fam)} cells)")
        for j, line in enumerate(table):
            text = "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(line[:-1]))
            out.append((text + ("  " + line[-1] if line[-1] else "")).rstrip())
            if j == 0:
                out.append("-" * len(text))
    return "\n".join(out)


def render_markdown(rows: list[Row], s: dict, seeds: int) -> str:
    out = [
        f"Flow model against torch (`make calibrate`: {s['cells']} cells, {seeds} seeds, batch {BATCH}, "
        f"float32, torch {torch.__version__}). Ratio = ‖∇W_first‖ / ‖∇W_last‖, "
        "first = ‖∇W_first‖; "
        "factor = predicted ratio over measured (either way).",
        "",
    ]
    for family in dict.fromkeys(r.family for r in rows):
        out += [f"### {family}", "", "| " + " | ".join(COLUMNS) + " | notes |", "|" + "---|" * (len(COLUMNS) + 1)]
        for r in rows:
            if r.family == family:
                cells = _cells(r)
                cells[0] = f"`{cells[0]}`"
                out.append("| " + " | ".join(cells + [_extra(r).replace("|", "/")]) + " |")
        out.append("")
    out.append(summary_line(s))
    return "\n".join(out) + "\n"


CSV_FIELDS = (
    "family",
    "cell",
    "predicted",
    "meas_ratio",
    "pred_ratio",
    "log10_factor",
    "meas_first",
    "pred_first",
    "meas_total",
    "pred_total",
    "meas_gain",
    "pred_gain",
    "meas_finite",
    "pred_finite",
    "meas_dead",
    "meas_dead_fraction",
    "pred_dead_probability",
    "meas_saturated",
    "pred_saturated",
    "meas_hazard",
    "pred_hazard",
    "pred_test",
    "pred_complete",
    "seconds",
)


def write_csv(rows: list[Row], path: str) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            m, p = r.meas, r.pred
            w.writerow(
                dict(
                    family=r.family,
                    cell=r.cell.name,
                    predicted=r.predicted,
                    meas_ratio=m["ratio"],
                    pred_ratio=p.get("ratio"),
                    log10_factor=r.factor,
                    meas_first=m["first"],
                    pred_first=p.get("first"),
                    meas_total=m["total"],
                    pred_total=p.get("total"),
                    meas_gain=m["gain"],
                    pred_gain=p.get("gain"),
                    meas_finite=m["finite"],
                    pred_finite=p.get("finite"),
                    meas_dead=m["dead"],
                    meas_dead_fraction=m.get("dead_fraction"),
                    pred_dead_probability=p.get("dead_probability"),
                    meas_saturated=m.get("saturated"),
                    pred_saturated=p.get("saturated"),
                    meas_hazard=m["hazard"],
                    pred_hazard=p.get("hazard"),
                    pred_test=p.get("test"),
                    pred_complete=p.get("complete"),
                    seconds=round(r.seconds, 3),
                )
            )


def summary_line(s: dict) -> str:
    worst = (
        f"worst factor {s['worst_factor']:.3g}x ({s['worst_cell']})"
        if s["worst_factor"] is not None
        else "worst factor -"
    )
    return (
        f"{s['cells']} cells, {worst}, verdict agreement {100 * s['agreement']:.1f} % "
        f"({s['agree']}/{s['compared']}; {s['not_predicted']} not predicted; "
        f"{s['factor_cells']} ratios compared, {s['no_ratio']} left open by the model)"
    )


def _straddle(r: Row) -> str:
    """A note when the numbers agree closely and only a threshold between them splits the labels."""
    factors = [f for f in (r.factor, r.first_factor) if f is not None]
    if factors and max(factors) <= math.log10(2):
        return f"; the numbers agree within {10 ** max(factors):.2g}x and straddle a threshold"
    return ""


def render_failures(s: dict, rows: list[Row]) -> str:
    out = []
    fac = sorted(s["factor_failures"], key=lambda r: -r.factor)
    if fac:
        out.append(f"\nratio off by more than {10**MAX_LOG_FACTOR:g}x ({len(fac)} cells):")
        for r in fac[:25]:
            out.append(
                f"  {r.family}:{r.cell.name}: measured {_g(r.meas['ratio'])}, predicted "
                f"{_g(r.pred.get('ratio'))} ({_factor_text(r.factor)}); first {_g(r.meas['first'])} vs "
                f"{_g(r.pred.get('first'))}"
            )
    ver = s["verdict_failures"]
    if ver:
        out.append(f"\nhazards that disagree ({len(ver)} cells):")
        for r in ver[:40]:
            m, p = r.meas, r.pred
            out.append(
                f"  {r.family}:{r.cell.name}: measured {m['hazard']} (ratio {_g(m['ratio'])}, first "
                f"{_g(m['first'])}, total {_g(m['total'])}, gain {_g(m['gain'])}, finite {_g(m['finite'])}, "
                f"dead {_g(m['dead'])}), predicted {p.get('hazard')} by {p.get('test')} (ratio "
                f"{_g(p.get('ratio'))}, first {_g(p.get('first'))}, total {_g(p.get('total'))}, gain "
                f"{_g(p.get('gain'))}, finite {_g(p.get('finite'))}, dead p {_g(p.get('dead_probability'))})"
                + _straddle(r)
            )
    dead = [r for r in rows if "dead_fraction" in r.meas and r.pred.get("ok")]
    if dead:
        gaps = sorted(dead, key=lambda r: -abs(r.meas["dead_fraction"] - r.pred["dead_probability"]))
        r = gaps[0]
        out.append(
            f"\ndead probability: largest gap {abs(r.meas['dead_fraction'] - r.pred['dead_probability']):.2f} "
            f"({r.cell.name}: measured {r.meas['dead_fraction']:.2f} of {r.meas['dead_n']} seeds, "
            f"predicted {r.pred['dead_probability']:.2f})"
        )
    unpred = [r for r in rows if not r.predicted]
    if unpred:
        out.append(f"\nnot predicted ({len(unpred)} cells; measured numbers for later calibration):")
        for r in unpred:
            m = r.meas
            out.append(
                f"  {r.family}:{r.cell.name}: ratio {_g(m['ratio'])}, first {_g(m['first'])}, total "
                f"{_g(m['total'])}, gain {_g(m['gain'])}, finite {_g(m['finite'])} -> {m['hazard']}"
            )
    return "\n".join(out)


def render_layers(cell: Cell, seeds: int = 3) -> str:
    """Per weighted layer (forward order), measured against predicted: the RMS of its input,
    ``||grad W||`` and the gradient RMS at its output (geometric means over seeds): where a
    cell disagrees, the first layer where these part shows which transfer map is off."""
    net_cls, shape = load(cell.source, f"{cell.name}.py")
    runs = [measure_seed(net_cls, shape, s) for s in range(seeds)]
    graph = [g for g in build_graphs(ast.parse(cell.source), f"{cell.name}.py") if g.name == "Net"][0]
    p = judge(graph).profile
    head = (
        f"{'#':>3}  {'layer':<16} {'in rms meas':>11} {'pred':>9}  {'|gW| meas':>9} {'pred':>9}  "
        f"{'dL/dz rms meas':>14} {'pred':>9}"
    )
    out = [f"{cell.family}:{cell.name} (measured over {seeds} seeds)", head, "-" * len(head)]
    n = max(len(runs[0]["per_layer"]), len(p.layers))
    for i in range(n):
        m = [r["per_layer"][i] for r in runs if i < len(r["per_layer"])]
        lf = p.layers[i] if i < len(p.layers) else None
        mi = geomean(x["input_rms"] for x in m) if m else None
        mg = geomean(x["grad_norm"] for x in m) if m else None
        mo = geomean(x["out_grad_rms"] for x in m) if m else None
        name = (lf.name + ("" if lf.certain else "?")) if lf else "-"
        out.append(
            f"{i:>3}  {name:<16} {_g(mi):>11} {_g(lf.input_rms if lf else None):>9}  {_g(mg):>9} "
            f"{_g(lf.grad_norm if lf else None):>9}  {_g(mo):>14} {_g(lf.out_grad_rms if lf else None):>9}"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~40-cell slice of the grid (under a minute)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    parser.add_argument("--dead-seeds", type=int, default=20, help="seeds for the narrow cells' dead fraction")
    parser.add_argument("--family", action="append", help="only this family (repeatable)")
    parser.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    parser.add_argument("--csv", metavar="FILE", help="write every cell's numbers as CSV")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--layers",
        metavar="CELL",
        action="append",
        help="print per-layer measured vs predicted numbers of the cells whose name contains CELL "
        "(family:name), then stop",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print each cell as it is measured")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cells = grid(args.quick, args.dead_seeds)
    if args.family:
        cells = [c for c in cells if c.family in args.family]
    if args.layers:
        chosen = [c for c in cells if any(k in f"{c.family}:{c.name}" for k in args.layers)]
        for c in chosen:
            print(render_layers(c, args.seeds) + "\n")
        return 0 if chosen else 2

    def progress(i, n, row):
        if args.verbose:
            print(f"[{i}/{n}] {row.family}:{row.cell.name} {row.seconds:.2f}s", file=sys.stderr, flush=True)

    rows = calibrate(cells, args.seeds, progress)
    s = summary(rows)
    shown = (
        "vanishing-ratio",
        "vanishing-absolute",
        "vanishing-gain",
        "exploding-ratio",
        "exploding-absolute",
        "exploding-total",
        "exploding-gain",
    )
    print(
        f"gradlint flow model vs torch {torch.__version__} (cpu, float32, {args.seeds} seeds, batch {BATCH}, "
        f"loss sum(out*r)/(B*sqrt(P)); thresholds {', '.join(f'{k}={THRESHOLDS[k]:g}' for k in shown)})"
    )
    print(render(rows))
    print(render_failures(s, rows))
    elapsed = time.perf_counter() - start
    print(f"\n{summary_line(s)}; {elapsed:.0f} s")
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(rows, s, args.seeds))
    if args.csv:
        write_csv(rows, args.csv)
    ok = passed(s)
    if not ok:
        why = []
        if s["factor_failures"]:
            why.append(f"{len(s['factor_failures'])} cells off by more than {10**MAX_LOG_FACTOR:g}x")
        if s["agreement"] < MIN_AGREEMENT:
            why.append(f"verdict agreement below {100 * MIN_AGREEMENT:.0f} %")
        print("FAIL: " + "; ".join(why))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
