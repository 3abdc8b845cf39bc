"""Calibrate gradlint's gradient-flow estimate against real backward passes (torch).

    .venv/bin/python benchmarks/calibrate.py [--quick] [--seeds N] [--csv FILE]

For a grid of plain MLP stacks (activation x initializer x depth; width 256, PyTorch's
default biases; the loss a random linear read-out of the output), it builds each model with torch, runs forward + backward at
initialization over several seeds, and measures

  R   = ||grad W_first|| / ||grad W_last||    (weight gradients; what monitors compare)
  B   = ||dL/dz_first||  / ||dL/dz_last||     (the backpropagated signal)

and compares them with the plain-stack estimate (R est, B est: GL202/GL203/GL301) and, for
sigmoid/tanh stacks, the saturating-chain estimate (B GL101).

per example (a batch of one, averaged over 16 examples: the estimate is per example; the
column R@128 shows the same ratio for a batch of 128, where inputs with a non-zero mean add
up coherently). It prints them next to gradlint's static estimate, obtained the way the rules obtain it:
the same model written as source, read by gradlint's graph builder, its plain stack estimated
from the initializer and activations the builder found (GL202/GL203/GL301 compare this estimate
with their band). The factor between measurement and estimate is shown. Where they disagree, fix the estimate.
Exit status 1 when any per-example R or B is off by more than 10x.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ast  # noqa: E402

from gradlint.graph.builder import build_graphs  # noqa: E402
from gradlint.graph.stacks import chain_estimate  # noqa: E402
from gradlint.graph.stacks import estimate as segment_estimate  # noqa: E402

WIDTH = 256
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
#: the same initializers as source text, for the model file gradlint reads
INIT_SOURCE = {
    "default": "",
    "xavier_uniform": "nn.init.xavier_uniform_(m.weight)",
    "kaiming_normal": 'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")',
    "normal(0,1)": "nn.init.normal_(m.weight, 0, 1)",
    "normal(0,0.01)": "nn.init.normal_(m.weight, 0, 0.01)",
}
#: initializer name -> (function applied to the weight, init scale sqrt(Var(W) * fan_in))
INITS = {
    "default": (None, math.sqrt(1 / 3)),
    "xavier_uniform": (nn.init.xavier_uniform_, 1.0),
    "kaiming_normal": (lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), math.sqrt(2)),
    "normal(0,1)": (lambda w: nn.init.normal_(w, 0, 1), math.sqrt(WIDTH)),
    "normal(0,0.01)": (lambda w: nn.init.normal_(w, 0, 0.01), 0.01 * math.sqrt(WIDTH)),
}
assert set(INITS) == set(INIT_SOURCE)
FULL_GRID = dict(activations=list(ACTIVATIONS), inits=list(INITS), depths=[5, 10, 20, 30])
QUICK_GRID = dict(activations=["sigmoid", "tanh", "relu"], inits=["default", "xavier_uniform", "kaiming_normal"], depths=[5, 10])


def build(activation: str, init: str, depth: int) -> nn.Sequential:
    layers = []
    fn = INITS[init][0]
    for i in range(depth):
        lin = nn.Linear(WIDTH, WIDTH)
        if fn is not None:
            fn(lin.weight)
        layers.append(lin)
        if i < depth - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def source(activation: str, init: str, depth: int) -> str:
    """The model of ``build`` as a user would write it: what gradlint analyses."""
    init_line = INIT_SOURCE[init]
    init_block = (
        f"        for m in self.modules():\n            if isinstance(m, nn.Linear):\n                {init_line}\n"
        if init_line else ""
    )
    return (
        "import torch.nn as nn\n\n"
        f"class Stack(nn.Module):\n    def __init__(self, depth={depth}, width={WIDTH}):\n"
        "        super().__init__()\n        layers = []\n        for i in range(depth):\n"
        "            layers.append(nn.Linear(width, width))\n            if i < depth - 1:\n"
        f"                layers.append(nn.{ACTIVATIONS[activation].__name__}())\n"
        "        self.net = nn.Sequential(*layers)\n"
        f"{init_block}"
        "    def forward(self, x):\n        return self.net(x)\n"
    )


def static_estimate(activation: str, init: str, depth: int):
    """gradlint's estimates for the stack, through its whole static path (source -> graph):
    the plain-stack estimate (GL202/GL203/GL301) and, for sigmoid/tanh stacks, the
    saturating-chain estimate (GL101; None otherwise)."""
    graph = build_graphs(ast.parse(source(activation, init, depth)), "stack.py")[0]
    segments = graph.plain_segments()
    assert len(segments) == 1 and len(segments[0]) == depth, "gradlint did not see one plain stack"
    chains = graph.saturating_chains()
    chain = chain_estimate(graph, chains[0]) if chains else None
    return segment_estimate(graph, segments[0]), chain


def measure(model: nn.Sequential, batch: int) -> tuple[float, float]:
    """(R, B) for one random batch.

    The loss is a random linear read-out of the output, ``sum(out * r)`` with ``r ~ N(0, 1)``:
    its gradient at the output does not depend on the network's own weights, so the
    measurement isolates how the stack itself propagates gradients (an MSE loss against
    random targets couples the output gradient to the forward pass, which for ReLU stacks
    inflates per-example ratios several-fold at depth 30).
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    outputs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append(output)

    hooks = [l.register_forward_hook(keep) for l in linears]
    x = torch.randn(batch, WIDTH, dtype=torch.float64)
    readout = torch.randn(batch, WIDTH, dtype=torch.float64)
    model.zero_grad()
    loss = (model(x) * readout).sum()
    loss.backward()
    for h in hooks:
        h.remove()
    tiny = 1e-300
    r = linears[0].weight.grad.norm().item() / max(linears[-1].weight.grad.norm().item(), tiny)
    b = outputs[0].grad.norm().item() / max(outputs[-1].grad.norm().item(), tiny)
    return max(r, tiny), max(b, tiny)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def run(activations, inits, depths, seeds=3, examples=16):
    rows = []
    for act in activations:
        for init in inits:
            for depth in depths:
                per_r, per_b, batch_r = [], [], []
                for seed in range(seeds):
                    torch.manual_seed(seed)
                    model = build(act, init, depth).double()
                    for _ in range(examples):
                        r, b = measure(model, 1)
                        per_r.append(r)
                        per_b.append(b)
                    batch_r.append(measure(model, 128)[0])
                est, chain = static_estimate(act, init, depth)
                rows.append(dict(
                    activation=act, init=init, depth=depth,
                    R=geomean(per_r), B=geomean(per_b), R128=geomean(batch_r),
                    R_est=est.weight_grad_ratio, B_est=est.backward_gain, B101=chain,
                ))
    return rows


STRUCTURE_GRID = dict(
    residual=[(act, init, depth) for act in ("relu", "gelu", "tanh", "sigmoid") for init in ("default", "kaiming_normal")
              for depth in (10, 20, 30)],
    layernorm=[(act, "default", depth) for act in ("sigmoid", "tanh", "relu") for depth in (10, 30)],
)
QUICK_STRUCTURES = dict(residual=[("relu", "kaiming_normal", 10), ("relu", "default", 10)], layernorm=[("relu", "default", 10)])


def structure_source(structure: str, activation: str, init: str, depth: int) -> str:
    """A residual stack (``x = x + f(W x)``) or a LayerNorm'ed plain stack, as source."""
    init_line = INIT_SOURCE[init]
    init_block = (
        f"        for m in self.modules():\n            if isinstance(m, nn.Linear):\n                {init_line}\n"
        if init_line else ""
    )
    act = ACTIVATIONS[activation].__name__
    if structure == "residual":
        body = "        for fc in self.fcs:\n            x = x + self.act(fc(x))\n        return x\n"
        extra = ""
    else:
        body = "        for fc, norm in zip(self.fcs, self.norms):\n            x = self.act(norm(fc(x)))\n        return x\n"
        extra = "        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(depth)])\n"
    return (
        "import torch.nn as nn\n\n"
        f"class Stack(nn.Module):\n    def __init__(self, depth={depth}, width={WIDTH}):\n"
        "        super().__init__()\n"
        "        self.fcs = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])\n"
        f"{extra}        self.act = nn.{act}()\n{init_block}"
        f"    def forward(self, x):\n{body}"
    )


def run_structures(grid, seeds=3, examples=16):
    """Residual and normalized stacks: the torch model is built from the very source gradlint reads."""
    from gradlint.engine import lint_source

    rows = []
    for structure, configs in grid.items():
        for act, init, depth in configs:
            text = structure_source(structure, act, init, depth)
            namespace: dict = {}
            exec(compile(text, "stack.py", "exec"), namespace)
            per_b = []
            for seed in range(seeds):
                torch.manual_seed(seed)
                model = namespace["Stack"]().double()
                for _ in range(examples):
                    per_b.append(measure(model, 1)[1])
            graph = build_graphs(ast.parse(text), "stack.py")[0]
            est = None
            if structure == "residual":
                chain = graph.unnormalized_residual_chain()
                est = graph.residual_chain_gain(chain) if len(chain) == depth else None
            codes = sorted({d.code for d in lint_source(text, "stack.py")})
            rows.append(dict(structure=structure, activation=act, init=init, depth=depth, B=geomean(per_b),
                             B_est=est, findings=",".join(codes) or "-"))
    return rows


def render_structures(rows) -> str:
    head = f"{'structure':<10} {'activation':<8} {'init':<15} {'depth':>5} {'B meas':>9} {'B est':>9} {'xB':>6}  gradlint"
    out = [head, "-" * len(head)]
    for r in rows:
        est = f"{r['B_est']:>9.2g} {factor(r['B'], r['B_est']):>6.1f}" if r["B_est"] else f"{'-':>9} {'-':>6}"
        out.append(f"{r['structure']:<10} {r['activation']:<8} {r['init']:<15} {r['depth']:>5} {r['B']:>9.2g} {est}  {r['findings']}")
    return "\n".join(out)


def factor(a, b):
    return max(a / b, b / a)


def worst_factor(row) -> float:
    """The largest disagreement of any rule's estimate with the measurement for one row."""
    pairs = [(row["R"], row["R_est"]), (row["B"], row["B_est"])]
    if row["B101"]:
        pairs.append((row["B"], row["B101"]))
    return max(factor(m, e) for m, e in pairs)


def render(rows) -> str:
    head = (f"{'activation':<8} {'init':<15} {'depth':>5} {'R meas':>9} {'R est':>9} {'xR':>6} "
            f"{'B meas':>9} {'B est':>9} {'xB':>6} {'B GL101':>9} {'x101':>6} {'R@128':>9}")
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(
            f"{r['activation']:<8} {r['init']:<15} {r['depth']:>5} {r['R']:>9.2g} {r['R_est']:>9.2g} "
            f"{factor(r['R'], r['R_est']):>6.1f} {r['B']:>9.2g} {r['B_est']:>9.2g} {factor(r['B'], r['B_est']):>6.1f} "
            + (f"{r['B101']:>9.2g} {factor(r['B'], r['B101']):>6.1f}" if r["B101"] else f"{'-':>9} {'-':>6}")
            + f" {r['R128']:>9.2g}"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small slice of the grid")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    grid = QUICK_GRID if args.quick else FULL_GRID
    start = time.perf_counter()
    rows = run(seeds=args.seeds, **grid)
    print(f"gradlint calibration: plain MLPs, width {WIDTH}, PyTorch default biases, float64, "
          f"{args.seeds} seeds x 16 examples, torch {torch.__version__} on cpu")
    print(render(rows))
    structures = run_structures(QUICK_STRUCTURES if args.quick else STRUCTURE_GRID, seeds=args.seeds)
    print("\nresidual (x = x + f(W x), GL303's estimate) and LayerNorm'ed stacks (no stack rule applies):")
    print(render_structures(structures))
    worst = max([worst_factor(r) for r in rows] + [factor(r["B"], r["B_est"]) for r in structures if r["B_est"]])
    print(f"\nworst disagreement: {worst:.1f}x over {len(rows) + len(structures)} configurations ({time.perf_counter() - start:.0f} s)")
    return 0 if worst <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
