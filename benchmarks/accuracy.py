"""How often gradlint's hazard predictions are right: a generated corpus labelled by measurement.

    .venv/bin/python benchmarks/accuracy.py [--quick | --n N] [--seed S] [--seeds K]
        [--out DIR] [--json FILE] [--jobs J] [--check]

1. **Generate** (seeded, deterministic) PyTorch model files across coding styles and factors:
   plain MLPs (depth 2-80, width 2-512, ten activations, a dozen initializers, scaling after
   init, BatchNorm/LayerNorm/GroupNorm before or after the activation), residual MLPs
   (``x = x + f(x)``; 1-2 layers per branch, norm in the branch or not, zero-initialized last
   branch layer, a scalar branch multiplier), Conv2d stacks (kernel 3, 8-64 channels,
   BatchNorm2d or not) and recurrent models (RNN tanh/relu, LSTM, GRU; recurrent init
   default / orthogonal with a gain / normal / eye; 10-500 steps; a Linear head on the last
   step). Each file defines one ``nn.Module`` named ``Net`` (no required constructor argument)
   and a module-level ``INPUT_SHAPE``. The generator knows nothing of gradlint's rules.
2. **Label** every model by measurement with torch, in child processes of this script, in
   the convention of :mod:`gradlint.flow.convention` (the one ``--dynamic`` uses): per seed
   ``torch.manual_seed(seed)``, ``Net()``, an N(0, 1) input, the loss
   ``sum(out * r) / (B * sqrt(P))`` with a fixed ``r ~ N(0, 1)``, one backward pass; per
   weighted module in forward order ``||grad W||`` (RNN/LSTM/GRU: ``weight_ih_l0`` and
   ``weight_hh_l0`` in quadrature) and the gradient RMS at its output; ``total`` is, as the
   convention defines it, every weighted layer's ``||grad W||`` in quadrature (the norm over
   all parameters is kept beside it as ``total_all_params``). ``ratio``, ``first``,
   ``total`` and ``gain`` are combined over seeds by geometric mean, ``finite`` is false when
   any seed overflowed, ``dead`` holds when most seeds are dead; each seed is judged by
   ``convention.classify(...)`` and the label is the class most seeds show (the class of the
   most severe class seen when no class has a majority). Labels are cached by source hash in
   ``benchmarks/.work/accuracy_cache.json`` (``benchmarks/.work/`` is git-ignored).
3. **Predict** by running gradlint on the folder as a user would
   (``python -m gradlint check --isolated --no-cache --output-format json DIR``). A model's
   predicted hazards are the ``hazard`` values (other than ``none``) of the findings in its
   file; a finding without a ``hazard`` key counts as ``unknown`` (and is counted). Rule codes
   are never mapped to hazards here.
4. **Score**: precision, recall and F1 per hazard class and for "any hazard", a confusion
   summary and the worst misses with their measured numbers.

Exit status 0, unless ``--check``: then 1 when the any-hazard F1 is below 0.95 or a class's
F1 below 0.85 (or when nothing could be scored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the one piece of gradlint this benchmark shares: the measurement convention and its tests
from gradlint.flow.convention import BATCH, THRESHOLDS, classify_seeds, geomean  # noqa: E402

CACHE = BENCH / ".work" / "accuracy_cache.json"
#: bump when the measurement changes, so cached labels are not reused
MEASURE_VERSION = 1
#: the fixed read-out r of the loss (the same seed as --dynamic's worker)
READOUT_SEED = 1234
CLASSES = ("vanishing", "exploding", "dead")
DEFAULT_N, QUICK_N = 300, 60
CHECK_ANY_F1, CHECK_CLASS_F1 = 0.95, 0.85
MODEL_TIMEOUT_S = 180.0


# ---------------------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------------------


@dataclass
class Model:
    name: str  # file stem, e.g. m017
    family: str  # mlp | residual | conv | rnn
    desc: str  # the factors in one line, for the report
    source: str
    meta: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}.py"


#: activation -> (module constructor or None, functional templates on "{x}")
ACTS = {
    "sigmoid": ("nn.Sigmoid()", ["torch.sigmoid({x})", "{x}.sigmoid()"]),
    "tanh": ("nn.Tanh()", ["torch.tanh({x})", "{x}.tanh()"]),
    "relu": ("nn.ReLU()", ["torch.relu({x})", "F.relu({x})", "{x}.relu()"]),
    "leaky_relu": ("nn.LeakyReLU({s})", ["F.leaky_relu({x}, {s})"]),
    "gelu": ("nn.GELU()", ["F.gelu({x})"]),
    "silu": ("nn.SiLU()", ["F.silu({x})"]),
    "elu": ("nn.ELU()", ["F.elu({x})"]),
    "softplus": ("nn.Softplus()", ["F.softplus({x})"]),
    "exp": (None, ["torch.exp({x})", "{x}.exp()"]),
    "square": (None, ["{x} ** 2"]),
}
ACT_WEIGHTS = {
    "sigmoid": 14,
    "tanh": 16,
    "relu": 20,
    "leaky_relu": 8,
    "gelu": 8,
    "silu": 7,
    "elu": 7,
    "softplus": 6,
    "exp": 6,
    "square": 5,
}
NORM_CLASSES = {"bn": "nn.BatchNorm1d", "ln": "nn.LayerNorm", "gn": "nn.GroupNorm"}


def _weighted(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


class Act:
    """How one model writes its activation: a module in a Sequential, a shared module
    attribute, or a function call in ``forward``."""

    def __init__(self, rng: random.Random, name: str, functional_ok: bool):
        self.name = name
        module, funcs = ACTS[name]
        self.slope = rng.choice([0.01, 0.1, 0.2]) if name == "leaky_relu" else None
        self.module = module.format(s=self.slope) if module else None
        self.func = rng.choice(funcs)
        # "func": a call in forward; "attr": self.act = nn.X(); "module": an element of a Sequential
        if not functional_ok:
            self.form = "module"
        elif self.module is None:
            self.form = "func"
        else:
            self.form = rng.choice(["func", "func", "attr"])

    def call(self, expr: str) -> str:
        if self.form == "attr":
            return f"self.act({expr})"
        return self.func.format(x=expr, s=self.slope)

    @property
    def uses_f(self) -> bool:
        return self.form == "func" and self.func.startswith("F.")


def _pick_depth(rng, buckets) -> int:
    lo, hi = _weighted(rng, buckets)
    return rng.randint(lo, hi)


def _pick_width(rng, narrow: float = 0.3) -> int:
    if rng.random() < narrow:
        return rng.randint(2, 16)
    return rng.choice([24, 32, 48, 64, 100, 128, 256, 512])


def _pick_init(rng, family: str) -> dict:
    kinds = {
        "default": 24,
        "xavier_uniform": 9,
        "xavier_normal": 7,
        "kaiming_uniform": 9,
        "kaiming_normal": 10,
        "normal": 16,
        "uniform": 7,
        "orthogonal": 6,
        "constant": 6,
        "zeros": 5,
    }
    if family == "residual":  # He init is what residual MLPs are usually written with
        kinds.update(kaiming_uniform=16, kaiming_normal=20)
    kind = _weighted(rng, kinds)
    init = {"w": kind, "param": None, "gain": None, "bias": "default", "scale": None}
    if kind == "normal":
        init["param"] = rng.choice([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
    elif kind == "uniform":
        init["param"] = rng.choice([0.01, 0.05, 0.1, 0.3, 0.5, 1.0])
    elif kind == "constant":
        init["param"] = rng.choice([0.01, 0.05, 0.1, 0.5, 1.0])
    elif kind in ("xavier_uniform", "xavier_normal") and rng.random() < 0.3:
        init["gain"] = rng.choice(["tanh", "relu", "sigmoid"])
    elif kind == "orthogonal" and rng.random() < 0.4:
        init["gain"] = rng.choice([0.5, 1.0, 1.41, 2.0])
    if kind != "default" and rng.random() < 0.5:
        init["bias"] = "zero"
    elif kind == "default" and rng.random() < 0.15:
        init["bias"] = "zero"
    if rng.random() < 0.15:
        init["scale"] = rng.choice([0.1, 0.5, 2.0, 3.0])
    return init


def _init_desc(init: dict) -> str:
    s = init["w"]
    if init["param"] is not None:
        s += f"({init['param']:g})"
    if init["gain"] is not None:
        s += f"[gain={init['gain']}]"
    if init["bias"] == "zero":
        s += "+b0"
    if init["scale"] is not None:
        s += f"*{init['scale']:g}"
    return s


def _init_body(rng, init: dict, targets: str, conv: bool) -> list[str]:
    """Lines initializing one module ``m`` (inside ``for m in ...`` or an init function)."""
    w = init["w"]
    body: list[str] = []
    gain = init["gain"]
    if w == "xavier_uniform" or w == "xavier_normal":
        g = f", gain=nn.init.calculate_gain('{gain}')" if isinstance(gain, str) else ""
        body.append(f"nn.init.{w}_(m.weight{g})")
    elif w in ("kaiming_uniform", "kaiming_normal"):
        mode = rng.choice(["", "mode='fan_out', "]) if conv else rng.choice(["", "", "mode='fan_in', "])
        body.append(f"nn.init.{w}_(m.weight, {mode}nonlinearity='relu')")
    elif w == "normal":
        std = init["param"]
        body.append(
            rng.choice(
                [
                    f"nn.init.normal_(m.weight, 0.0, {std})",
                    f"nn.init.normal_(m.weight, mean=0.0, std={std})",
                    f"m.weight.data.normal_(0.0, {std})",
                ]
            )
        )
    elif w == "uniform":
        a = init["param"]
        body.append(rng.choice([f"nn.init.uniform_(m.weight, -{a}, {a})", f"m.weight.data.uniform_(-{a}, {a})"]))
    elif w == "orthogonal":
        body.append(
            f"nn.init.orthogonal_(m.weight, gain={gain})" if gain is not None else "nn.init.orthogonal_(m.weight)"
        )
    elif w == "constant":
        c = init["param"]
        body.append(rng.choice([f"nn.init.constant_(m.weight, {c})", f"m.weight.data.fill_({c})"]))
    elif w == "zeros":
        body.append(
            rng.choice(["nn.init.zeros_(m.weight)", "m.weight.data.zero_()", "nn.init.constant_(m.weight, 0.0)"])
        )
    if init["bias"] == "zero":
        stmt = rng.choice(["nn.init.zeros_(m.bias)", "m.bias.data.zero_()", "nn.init.constant_(m.bias, 0.0)"])
        if rng.random() < 0.4:
            body += ["if m.bias is not None:", f"    {stmt}"]
        else:
            body.append(stmt)
    if init["scale"] is not None:
        f = init["scale"]
        body += rng.choice(
            [
                [f"m.weight.data.mul_({f})"],
                [f"m.weight.data *= {f}"],
                ["with torch.no_grad():", f"    m.weight.mul_({f})"],
            ]
        )
    if not body:
        return []
    return [f"if isinstance(m, {targets}):"] + ["    " + b for b in body]


@dataclass
class Parts:
    """The pieces of one model file, assembled by :func:`_assemble`."""

    constants: list[str] = field(default_factory=list)
    signature: str = "self"
    init: list[str] = field(default_factory=list)  # __init__ body after super().__init__()
    forward: list[str] = field(default_factory=list)
    input_shape: str = ""
    init_code: list[str] = field(default_factory=list)  # per-module init lines (on m)
    post_init: list[str] = field(default_factory=list)  # statements after the init loop (on self)
    uses_f: bool = False


def _finish(rng, p: Parts, names, init, targets, conv: bool, uses_f: bool, input_shape: str) -> tuple[str, str]:
    """The steps every family ends with: the init code, the names and constants, the input
    shape, then the assembled source (the same random draws, in the same order, as before)."""
    p.init_code = _init_body(rng, init, targets, conv=conv)
    p.uses_f = uses_f
    p.constants = names.constants()
    p.signature = names.signature()
    p.input_shape = input_shape
    return _assemble(rng, p)


def _assemble(rng, p: Parts) -> tuple[str, str]:
    """Source text and the init style used."""
    style = "none"
    functions: list[str] = []
    methods: list[str] = []
    init_lines = list(p.init)
    if p.init_code or p.post_init:
        style = rng.choice(["modules", "method", "apply"]) if p.init_code else rng.choice(["inline", "method"])
        if style == "modules":
            init_lines += ["for m in self.modules():"] + ["    " + c for c in p.init_code] + p.post_init
        elif style == "inline":
            init_lines += p.post_init
        elif style == "method":
            init_lines.append("self._init_weights()")
            body = (
                ["for m in self.modules():"] + ["    " + c for c in p.init_code] if p.init_code else []
            ) + p.post_init
            methods = ["def _init_weights(self):"] + ["    " + b for b in body]
        else:  # apply
            init_lines.append("self.apply(init_weights)")
            init_lines += p.post_init
            functions = ["def init_weights(m):"] + ["    " + c for c in p.init_code]
    out = ["import torch", "import torch.nn as nn"]
    if p.uses_f or any("F." in line for line in p.forward + p.init):
        out.append("import torch.nn.functional as F")
    out.append("")
    out += p.constants
    out.append(f"INPUT_SHAPE = {p.input_shape}")
    out.append("")
    if functions:
        out += ["", *functions, ""]
    out += ["", "class Net(nn.Module):", f"    def __init__({p.signature}):", "        super().__init__()"]
    out += ["        " + line if line else "" for line in init_lines]
    out.append("")
    for m in methods:
        out.append("    " + m)
    if methods:
        out.append("")
    out.append("    def forward(self, x):")
    out += ["        " + line for line in p.forward]
    return "\n".join(out) + "\n", style


class Names:
    """How sizes are written: module-level constants, ``__init__`` defaults, or literals."""

    def __init__(self, rng, values: dict, mode: str | None = None):
        self.mode = mode or rng.choice(["const", "args", "literal"])
        self.values = values  # key -> (CONST_NAME, arg_name, value)
        self.used: list[str] = []

    def __getitem__(self, key) -> str:
        const, arg, value = self.values[key]
        if key not in self.used:
            self.used.append(key)
        if self.mode == "const":
            return const
        if self.mode == "args":
            return arg
        return str(value)

    def minus(self, key, k: int) -> str:
        if self.mode == "literal":
            return str(self.values[key][2] - k)
        return f"{self[key]} - {k}"

    def constants(self) -> list[str]:
        if self.mode != "const":
            return []
        return [f"{self.values[k][0]} = {self.values[k][2]}" for k in self.values if k in self.used]

    def signature(self) -> str:
        if self.mode != "args":
            return "self"
        return "self, " + ", ".join(f"{self.values[k][1]}={self.values[k][2]}" for k in self.values if k in self.used)

    def shape_ref(self, key) -> str:
        """For INPUT_SHAPE: a constant's name, else the number."""
        return self.values[key][0] if self.mode == "const" else str(self.values[key][2])


def _norm_expr(kind: str, dim: str, width: int) -> str:
    if kind == "gn":
        groups = max(g for g in (1, 2, 4, 8) if width % g == 0 and (g < width or width == 1))
        return f"nn.GroupNorm({groups}, {dim})"
    return f"{NORM_CLASSES[kind]}({dim})"


def gen_mlp(rng: random.Random, name: str) -> Model:
    act_name = _weighted(rng, ACT_WEIGHTS)
    if act_name in ("exp", "square"):
        depth = rng.randint(2, 12)
    else:
        depth = _pick_depth(rng, {(2, 4): 14, (5, 10): 30, (11, 20): 26, (21, 40): 18, (41, 80): 12})
    relu_like = act_name in ("relu", "leaky_relu", "elu", "gelu", "silu")
    width = _pick_width(rng, narrow=0.45 if relu_like else 0.3)
    in_f = rng.choice([width, width, 16, 32, 64, 100])
    out_f = rng.choice([1, 2, 10, 10, width])
    init = _pick_init(rng, "mlp")
    if relu_like and width <= 16 and init["w"] not in ("constant", "zeros") and rng.random() < 0.6:
        init["bias"] = "zero"  # narrow ReLU nets with zero biases: the dying-ReLU-at-init setting
    # no normalizer over fewer than 4 features: LayerNorm(2) maps every input to about (-1, 1)
    norm = _weighted(rng, {None: 65, "bn": 12, "ln": 12, "gn": 11}) if width >= 4 else None
    norm_pos = rng.choice(["pre", "pre", "post"]) if norm else None
    module_ok = ACTS[act_name][0] is not None
    styles = ["modulelist"]
    if module_ok:
        styles.append("list_loop")
        if depth <= 40:
            styles.append("seq_literal")
    if depth <= 24:
        styles.append("explicit")
    style = rng.choice(styles)
    act = Act(rng, act_name, functional_ok=style in ("modulelist", "explicit"))
    names = Names(
        rng,
        {
            "in": ("IN_FEATURES", "in_features", in_f),
            "width": ("WIDTH", "width", width),
            "depth": ("DEPTH", "depth", depth),
            "out": ("OUT_FEATURES", "out_features", out_f),
        },
    )
    p = Parts()
    I, W, O = names["in"], names["width"], names["out"]
    nexpr = _norm_expr(norm, W, width) if norm else None

    def block(in_dim):  # elements of one hidden layer in a Sequential
        items = [f"nn.Linear({in_dim}, {W})"]
        if norm and norm_pos == "pre":
            items.append(nexpr)
        items.append(act.module)
        if norm and norm_pos == "post":
            items.append(nexpr)
        return items

    if style == "seq_literal":
        items = []
        for i in range(depth - 1):
            items += block(I if i == 0 else W)
        items.append(f"nn.Linear({W}, {O})")
        p.init = ["self.net = nn.Sequential("] + [f"    {it}," for it in items] + [")"]
        p.forward = ["return self.net(x)"]
    elif style == "list_loop":
        D1 = names.minus("depth", 1)
        if rng.random() < 0.5:
            p.init = ["layers = []", f"for i in range({D1}):"]
            p.init += [f"    layers.append({it})" for it in block(f"{I} if i == 0 else {W}")]
            p.init += [f"layers.append(nn.Linear({W}, {O}))", "self.net = nn.Sequential(*layers)"]
        else:
            items = block("dim")
            p.init = [
                "layers = []",
                f"dim = {I}",
                f"for _ in range({D1}):",
                f"    layers += [{', '.join(items)}]",
                f"    dim = {W}",
                f"layers.append(nn.Linear(dim, {O}))",
                "self.net = nn.Sequential(*layers)",
            ]
        p.forward = ["return self.net(x)"]
    elif style == "modulelist":
        D1 = names.minus("depth", 1)
        if rng.random() < 0.5:
            p.init = [f"self.layers = nn.ModuleList([nn.Linear({I} if i == 0 else {W}, {W}) for i in range({D1})])"]
        else:
            p.init = [
                f"self.layers = nn.ModuleList([nn.Linear({I}, {W})] + [nn.Linear({W}, {W}) for _ in"
                f" range({names.minus('depth', 2)})])"
            ]
        if norm:
            p.init.append(f"self.norms = nn.ModuleList([{nexpr} for _ in range({D1})])")
        if act.form == "attr":
            p.init.append(f"self.act = {act.module}")
        p.init.append(f"self.head = nn.Linear({W}, {O})")
        if norm:
            loop = rng.choice(
                ["for layer, norm in zip(self.layers, self.norms):", "for i, layer in enumerate(self.layers):"]
            )
            nref = "norm" if loop.startswith("for layer, norm") else "self.norms[i]"
            if norm_pos == "pre":
                body = [f"x = {nref}(layer(x))", f"x = {act.call('x')}"]
            else:
                body = [f"x = {act.call('layer(x)')}", f"x = {nref}(x)"]
        else:
            loop = "for layer in self.layers:"
            body = rng.choice([[f"x = {act.call('layer(x)')}"], ["x = layer(x)", f"x = {act.call('x')}"]])
        p.forward = [loop] + ["    " + b for b in body] + ["return self.head(x)"]
    else:  # explicit attributes
        prefix = {"bn": "bn", "ln": "ln", "gn": "gn"}.get(norm or "", "")
        for i in range(1, depth):
            p.init.append(f"self.fc{i} = nn.Linear({I if i == 1 else W}, {W})")
            if norm:
                p.init.append(f"self.{prefix}{i} = {nexpr}")
        p.init.append(f"self.fc{depth} = nn.Linear({W}, {O})")
        if act.form == "attr":
            p.init.append(f"self.act = {act.module}")
        compact = rng.random() < 0.5
        for i in range(1, depth):
            if norm and norm_pos == "pre":
                p.forward.append(
                    f"x = {act.call(f'self.{prefix}{i}(self.fc{i}(x))')}"
                    if compact
                    else f"x = self.{prefix}{i}(self.fc{i}(x))"
                )
                if not compact:
                    p.forward.append(f"x = {act.call('x')}")
            elif norm:
                p.forward.append(f"x = self.{prefix}{i}({act.call(f'self.fc{i}(x)')})")
            elif compact:
                p.forward.append(f"x = {act.call(f'self.fc{i}(x)')}")
            else:
                p.forward += [f"x = self.fc{i}(x)", f"x = {act.call('x')}"]
        p.forward.append(f"return self.fc{depth}(x)")
    src, init_style = _finish(
        rng, p, names, init, "nn.Linear", False, act.uses_f, f"({BATCH}, {names.shape_ref('in')})"
    )
    norm_desc = f"{norm}/{norm_pos}" if norm else "none"
    desc = (
        f"mlp depth={depth} width={width} act={act_name} init={_init_desc(init)} norm={norm_desc} "
        f"style={style}/{act.form}/{names.mode}/{init_style}"
    )
    meta = {
        "depth": depth,
        "width": width,
        "in": in_f,
        "out": out_f,
        "act": act_name,
        "init": init,
        "norm": norm,
        "norm_pos": norm_pos,
        "style": style,
        "act_form": act.form,
        "names": names.mode,
        "init_style": init_style,
    }
    return Model(name, "mlp", desc, src, meta)


def gen_residual(rng: random.Random, name: str) -> Model:
    act_name = _weighted(rng, {**ACT_WEIGHTS, "exp": 2, "square": 2})
    blocks = _pick_depth(rng, {(2, 5): 20, (6, 15): 30, (16, 30): 28, (31, 60): 22})
    width = rng.choice([8, 16, 32, 64, 64, 128, 256])
    in_f = rng.choice([width, 16, 32, 64])
    out_f = rng.choice([1, 10, 10])
    init = _pick_init(rng, "residual")
    n_layers = rng.choice([1, 2, 2])
    norm = _weighted(rng, {None: 55, "bn": 15, "ln": 20, "gn": 10})
    norm_pos = rng.choice(["pre", "post"]) if norm else None
    zero_last = rng.random() < 0.2
    alpha = rng.choice([0.1, 0.2, 0.5]) if rng.random() < 0.2 else None
    inp_act = rng.random() < 0.5
    module_ok = ACTS[act_name][0] is not None
    styles = ["lists"]
    if module_ok:
        styles += ["seq_blocks", "list_loop"]
        if blocks <= 12:
            styles.append("explicit")
    style = rng.choice(styles)
    act = Act(rng, act_name, functional_ok=style == "lists")
    names = Names(
        rng,
        {
            "in": ("IN_FEATURES", "in_features", in_f),
            "width": ("WIDTH", "width", width),
            "blocks": ("NUM_BLOCKS", "num_blocks", blocks),
            "out": ("OUT_FEATURES", "out_features", out_f),
        },
    )
    I, W, O = names["in"], names["width"], names["out"]
    nexpr = _norm_expr(norm, W, width) if norm else None
    a_text = f"{alpha} * " if alpha is not None else ""
    p = Parts()
    inp_call = act.call("self.inp(x)") if inp_act and act.form != "module" else "self.inp(x)"
    p.init.append(f"self.inp = nn.Linear({I}, {W})")
    if act.form == "attr":
        p.init.append(f"self.act = {act.module}")
    # one branch as Sequential elements; the index of its last Linear
    items = []
    if norm and norm_pos == "pre":
        items.append(nexpr)
    items.append(f"nn.Linear({W}, {W})")
    if norm and norm_pos == "post":
        items.append(nexpr)
    if module_ok:
        items.append(act.module)
    if n_layers == 2:
        items.append(f"nn.Linear({W}, {W})")
        if norm and norm_pos == "post" and not zero_last:
            items.append(nexpr)
    last_linear = max(i for i, it in enumerate(items) if it.startswith("nn.Linear"))
    if style in ("seq_blocks", "list_loop", "explicit"):
        seq = "nn.Sequential(" + ", ".join(items) + ")"
        if style == "seq_blocks":
            p.init.append(f"self.blocks = nn.ModuleList([{seq} for _ in range({names['blocks']})])")
        elif style == "list_loop":
            p.init += [
                "blocks = []",
                f"for _ in range({names['blocks']}):",
                f"    blocks.append({seq})",
                "self.blocks = nn.ModuleList(blocks)",
            ]
        else:
            for b in range(1, blocks + 1):
                p.init.append(f"self.block{b} = {seq}")
        p.init.append(f"self.head = nn.Linear({W}, {O})")
        pre = [f"x = {inp_call}"]
        if inp_act and act.form == "module":
            p.init.insert(1, f"self.inp_act = {act.module}")
            pre = ["x = self.inp_act(self.inp(x))"]
        if style == "explicit":
            body = [f"x = x + {a_text}self.block{b}(x)" for b in range(1, blocks + 1)]
            p.forward = pre + body + ["return self.head(x)"]
            if zero_last:
                for b in range(1, blocks + 1):
                    p.post_init += [
                        f"nn.init.zeros_(self.block{b}[{last_linear}].weight)",
                        f"nn.init.zeros_(self.block{b}[{last_linear}].bias)",
                    ]
        else:
            p.forward = pre + ["for block in self.blocks:", f"    x = x + {a_text}block(x)", "return self.head(x)"]
            if zero_last:
                p.post_init += [
                    "for block in self.blocks:",
                    f"    nn.init.zeros_(block[{last_linear}].weight)",
                    f"    nn.init.zeros_(block[{last_linear}].bias)",
                ]
    else:  # parallel ModuleLists, functional forward
        B = names["blocks"]
        p.init.append(f"self.lin1 = nn.ModuleList([nn.Linear({W}, {W}) for _ in range({B})])")
        if n_layers == 2:
            p.init.append(f"self.lin2 = nn.ModuleList([nn.Linear({W}, {W}) for _ in range({B})])")
        if norm:
            p.init.append(f"self.norms = nn.ModuleList([{nexpr} for _ in range({B})])")
        if n_layers == 2 and norm and norm_pos == "post" and not zero_last:
            p.init.append(f"self.norms2 = nn.ModuleList([{nexpr} for _ in range({B})])")
        p.init.append(f"self.head = nn.Linear({W}, {O})")
        body = []
        if norm and norm_pos == "pre":
            body.append("h = self.lin1[i](self.norms[i](x))")
        elif norm:
            body.append("h = self.norms[i](self.lin1[i](x))")
        else:
            body.append("h = self.lin1[i](x)")
        body.append(f"h = {act.call('h')}")
        if n_layers == 2:
            body.append("h = self.lin2[i](h)")
            if norm and norm_pos == "post" and not zero_last:
                body.append("h = self.norms2[i](h)")
        body.append(f"x = x + {a_text}h")
        loop = rng.choice(["for i in range(len(self.lin1)):", f"for i in range({B}):"])
        if loop.endswith(f"range({B}):") and names.mode == "args":
            p.init.append(f"self.num_blocks = {B}")
            loop = "for i in range(self.num_blocks):"
        p.forward = [f"x = {inp_call}", loop] + ["    " + b for b in body] + ["return self.head(x)"]
        if zero_last:
            last = "self.lin2" if n_layers == 2 else "self.lin1"
            p.post_init += [
                f"for layer in {last}:",
                "    nn.init.zeros_(layer.weight)",
                "    nn.init.zeros_(layer.bias)",
            ]
    src, init_style = _finish(
        rng, p, names, init, "nn.Linear", False, act.uses_f, f"({BATCH}, {names.shape_ref('in')})"
    )
    norm_desc = f"{norm}/{norm_pos}" if norm else "none"
    desc = (
        f"residual blocks={blocks}x{n_layers} width={width} act={act_name} init={_init_desc(init)} "
        f"norm={norm_desc} zero_last={zero_last} alpha={alpha} style={style}/{act.form}/{names.mode}/{init_style}"
    )
    meta = {
        "blocks": blocks,
        "branch_layers": n_layers,
        "width": width,
        "in": in_f,
        "out": out_f,
        "act": act_name,
        "init": init,
        "norm": norm,
        "norm_pos": norm_pos,
        "zero_last": zero_last,
        "alpha": alpha,
        "style": style,
        "act_form": act.form,
        "names": names.mode,
        "init_style": init_style,
    }
    return Model(name, "residual", desc, src, meta)


def gen_conv(rng: random.Random, name: str) -> Model:
    act_name = _weighted(rng, {"relu": 30, "leaky_relu": 10, "tanh": 14, "sigmoid": 14, "gelu": 8, "silu": 8, "elu": 8})
    depth = _pick_depth(rng, {(2, 4): 25, (5, 10): 35, (11, 20): 28, (21, 30): 12})
    ch = rng.choice([8, 16, 32, 64])
    in_ch, size = rng.choice([(3, 32), (3, 32), (1, 28), (3, 16)])
    while depth * ch * ch * 9 * size * size * BATCH > 6e8 and size > 4:  # MACs of one forward pass
        size //= 2
    bn = rng.random() < 0.5
    no_bias = bn and rng.random() < 0.5
    init = _pick_init(rng, "conv")
    targets = rng.choice(["nn.Conv2d", "(nn.Conv2d, nn.Linear)"])
    if no_bias:
        init = {**init, "bias": "default"}
    styles = ["seq_literal", "list_loop", "modulelist"] + (["explicit"] if depth <= 12 else [])
    style = rng.choice(styles)
    act = Act(rng, act_name, functional_ok=style in ("modulelist", "explicit"))
    names = Names(
        rng,
        {
            "ch": ("CHANNELS", "channels", ch),
            "depth": ("DEPTH", "depth", depth),
            "classes": ("NUM_CLASSES", "num_classes", 10),
        },
    )
    C, K = names["ch"], names["classes"]
    bias = ", bias=False" if no_bias else ""
    p = Parts()

    def conv(cin):
        return f"nn.Conv2d({cin}, {C}, 3, padding=1{bias})"

    pool = rng.choice(["mean", "adaptive"])
    if style in ("seq_literal", "list_loop"):
        if style == "seq_literal":
            items = []
            for i in range(depth):
                items.append(conv(in_ch if i == 0 else C))
                if bn:
                    items.append(f"nn.BatchNorm2d({C})")
                items.append(act.module)
            p.init = ["self.features = nn.Sequential("] + [f"    {it}," for it in items] + [")"]
        else:
            p.init = [
                "layers = []",
                f"in_ch = {in_ch}",
                f"for _ in range({names['depth']}):",
                f"    layers.append({conv('in_ch')})",
            ]
            if bn:
                p.init.append(f"    layers.append(nn.BatchNorm2d({C}))")
            p.init += [f"    layers.append({act.module})", f"    in_ch = {C}", "self.features = nn.Sequential(*layers)"]
        p.init.append(f"self.classifier = nn.Linear({C}, {K})")
        p.forward = ["x = self.features(x)"]
    elif style == "modulelist":
        p.init = [
            f"self.convs = nn.ModuleList([{conv(f'{in_ch} if i == 0 else {C}')} for i in range({names['depth']})])"
        ]
        if bn:
            p.init.append(f"self.bns = nn.ModuleList([nn.BatchNorm2d({C}) for _ in range({names['depth']})])")
        if act.form == "attr":
            p.init.append(f"self.act = {act.module}")
        p.init.append(f"self.classifier = nn.Linear({C}, {K})")
        if bn:
            p.forward = ["for conv, bn in zip(self.convs, self.bns):", f"    x = {act.call('bn(conv(x))')}"]
        else:
            p.forward = ["for conv in self.convs:", f"    x = {act.call('conv(x)')}"]
    else:
        for i in range(1, depth + 1):
            p.init.append(f"self.conv{i} = {conv(in_ch if i == 1 else C)}")
            if bn:
                p.init.append(f"self.bn{i} = nn.BatchNorm2d({C})")
        if act.form == "attr":
            p.init.append(f"self.act = {act.module}")
        p.init.append(f"self.classifier = nn.Linear({C}, {K})")
        for i in range(1, depth + 1):
            inner = f"self.bn{i}(self.conv{i}(x))" if bn else f"self.conv{i}(x)"
            p.forward.append(f"x = {act.call(inner)}")
    if pool == "mean":
        p.forward.append("x = x.mean(dim=(2, 3))")
    else:
        p.forward.append("x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)")
    p.forward.append("return self.classifier(x)")
    src, init_style = _finish(
        rng, p, names, init, targets, True, act.uses_f or pool == "adaptive", f"({BATCH}, {in_ch}, {size}, {size})"
    )
    desc = (
        f"conv depth={depth} ch={ch} in={in_ch}x{size}x{size} act={act_name} init={_init_desc(init)} "
        f"on={targets} bn={bn} style={style}/{act.form}/{names.mode}/{init_style}"
    )
    meta = {
        "depth": depth,
        "channels": ch,
        "in_ch": in_ch,
        "size": size,
        "act": act_name,
        "init": init,
        "init_targets": targets,
        "bn": bn,
        "style": style,
        "act_form": act.form,
        "names": names.mode,
        "init_style": init_style,
    }
    return Model(name, "conv", desc, src, meta)


def gen_rnn(rng: random.Random, name: str) -> Model:
    cell = _weighted(rng, {"rnn_tanh": 30, "rnn_relu": 30, "lstm": 22, "gru": 18})
    hidden = rng.choice([16, 32, 64, 128])
    seq = rng.choice([10, 20, 50, 100, 200, 500])
    feat = rng.choice([4, 8, 16, 32])
    out_f = rng.choice([1, 10])
    batch_first = rng.random() < 0.6
    hh = _weighted(rng, {"default": 30, "orthogonal": 30, "normal": 22, "eye": 18 if cell.startswith("rnn") else 0})
    param = None
    if hh == "orthogonal":
        param = rng.choice([0.5, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0])
    elif hh == "normal":
        param = rng.choice([0.01, 0.05, 0.1, 0.2, 0.5, 0.5, 1.0, 1.0])
    ih_xavier = rng.random() < 0.3
    bias_zero = rng.random() < 0.3
    attr = {"rnn_tanh": "rnn", "rnn_relu": "rnn", "lstm": "lstm", "gru": "gru"}[cell]
    cls = {"rnn_tanh": "nn.RNN", "rnn_relu": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}[cell]
    names = Names(
        rng,
        {
            "feat": ("INPUT_SIZE", "input_size", feat),
            "hidden": ("HIDDEN_SIZE", "hidden_size", hidden),
            "out": ("NUM_OUTPUTS", "num_outputs", out_f),
        },
    )
    seq_const = rng.random() < 0.5
    Fe, H, O = names["feat"], names["hidden"], names["out"]
    kwargs = []
    if cell == "rnn_relu":
        kwargs.append("nonlinearity='relu'")
    elif cell == "rnn_tanh" and rng.random() < 0.3:
        kwargs.append("nonlinearity='tanh'")
    if batch_first:
        kwargs.append("batch_first=True")
    p = Parts()
    p.init = [f"self.{attr} = {cls}({Fe}, {H}{''.join(', ' + k for k in kwargs)})", f"self.fc = nn.Linear({H}, {O})"]
    hh_stmt = {
        "default": None,
        "orthogonal": f"nn.init.orthogonal_({{p}}, gain={param})",
        "normal": f"nn.init.normal_({{p}}, 0.0, {param})",
        "eye": "nn.init.eye_({p})",
    }[hh]
    if hh == "orthogonal" and param == 1.0 and rng.random() < 0.5:
        hh_stmt = "nn.init.orthogonal_({p})"
    if hh_stmt or ih_xavier or bias_zero:
        if rng.random() < 0.5:  # a loop over named_parameters
            lines = [f"for name, param in self.{attr}.named_parameters():"]
            kw = "if"
            if hh_stmt:
                lines += ["    if 'weight_hh' in name:", "        " + hh_stmt.format(p="param")]
                kw = "elif"
            if ih_xavier:
                lines += [f"    {kw} 'weight_ih' in name:", "        nn.init.xavier_uniform_(param)"]
                kw = "elif"
            if bias_zero:
                lines += [f"    {kw} 'bias' in name:", "        nn.init.zeros_(param)"]
        else:
            lines = []
            if hh_stmt:
                lines.append(hh_stmt.format(p=f"self.{attr}.weight_hh_l0"))
            if ih_xavier:
                lines.append(f"nn.init.xavier_uniform_(self.{attr}.weight_ih_l0)")
            if bias_zero:
                lines += [f"nn.init.zeros_(self.{attr}.bias_ih_l0)", f"nn.init.zeros_(self.{attr}.bias_hh_l0)"]
        p.post_init = lines
    read = rng.choice(["out", "out", "h"])
    last = "out[:, -1, :]" if batch_first else "out[-1]"
    if read == "out":
        p.forward = [f"out, _ = self.{attr}(x)", f"return self.fc({last})"]
    elif cell == "lstm":
        p.forward = [f"_, (h, c) = self.{attr}(x)", "return self.fc(h[-1])"]
    else:
        p.forward = [f"_, h = self.{attr}(x)", "return self.fc(h[-1])"]
    p.constants = names.constants()
    if seq_const:
        p.constants.append(f"SEQ_LEN = {seq}")
    p.signature = names.signature()
    s = "SEQ_LEN" if seq_const else str(seq)
    fref = names.shape_ref("feat")
    p.input_shape = f"({BATCH}, {s}, {fref})" if batch_first else f"({s}, {BATCH}, {fref})"
    src, init_style = _assemble(rng, p)
    hh_desc = hh + (f"({param:g})" if param is not None else "")
    desc = (
        f"rnn cell={cell} hidden={hidden} seq={seq} feat={feat} weight_hh={hh_desc} ih_xavier={ih_xavier} "
        f"b0={bias_zero} batch_first={batch_first} read={read} style={names.mode}/{init_style}"
    )
    meta = {
        "cell": cell,
        "hidden": hidden,
        "seq": seq,
        "feat": feat,
        "out": out_f,
        "batch_first": batch_first,
        "weight_hh": hh,
        "param": param,
        "ih_xavier": ih_xavier,
        "bias_zero": bias_zero,
        "read": read,
        "names": names.mode,
        "init_style": init_style,
    }
    return Model(name, "rnn", desc, src, meta)


FAMILIES = {"mlp": (gen_mlp, 48), "residual": (gen_residual, 20), "conv": (gen_conv, 17), "rnn": (gen_rnn, 15)}


def generate(n: int, seed: int = 0) -> list[Model]:
    """``n`` models; model ``i`` depends only on ``(seed, i)``, so a smaller ``n`` is a prefix."""
    models = []
    for i in range(n):
        rng = random.Random(f"gradlint-accuracy:{seed}:{i}")
        family = _weighted(rng, {k: w for k, (_, w) in FAMILIES.items()})
        models.append(FAMILIES[family][0](rng, f"m{i:03d}"))
    return models


def write_models(models: list[Model], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("m[0-9][0-9][0-9]*.py"):
        if re.fullmatch(r"m\d{3,}\.py", old.name):
            old.unlink()
    for m in models:
        (out / m.filename).write_text(m.source, encoding="utf-8")


# ---------------------------------------------------------------------------------------
# measurement (runs in a child process: the only part that imports torch)
# ---------------------------------------------------------------------------------------


def load_module(path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"accuracy_model_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weighted_modules(model):
    """Modules that hold a weight of their own (RNN/LSTM/GRU: their l0 weights); norm layers
    excluded."""
    import torch.nn as nn

    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    out = []
    for name, m in model.named_modules():
        if isinstance(m, norms):
            continue
        if isinstance(m, nn.RNNBase) or isinstance(m._parameters.get("weight"), nn.Parameter):
            out.append((name, m))
    return out


def _weight_grad_norm(m) -> float:
    import torch.nn as nn

    params = [m.weight_ih_l0, m.weight_hh_l0] if isinstance(m, nn.RNNBase) else [m.weight]
    total = 0.0
    for p in params:
        if p.grad is None:
            continue
        v = float(p.grad.detach().double().norm().item())
        total += v * v
    return math.sqrt(total)


def measure_seed(module, seed: int) -> dict:
    import torch

    torch.manual_seed(seed)
    model = module.Net()
    model.train()
    order: list = []
    outputs: dict = {}
    hooks = []
    for name, m in weighted_modules(model):

        def hook(mod, inputs, output, name=name):
            if any(n == name for n, _ in order):
                return
            order.append((name, mod))
            t = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(t, torch.Tensor) and t.requires_grad:
                t.retain_grad()
                outputs[name] = t

        hooks.append(m.register_forward_hook(hook))
    x = torch.randn(tuple(module.INPUT_SHAPE), generator=torch.Generator().manual_seed(seed))
    out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    per_example = max(1, out.numel() // BATCH)
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(READOUT_SEED), dtype=out.dtype)
    loss = (out * r).sum() / (BATCH * math.sqrt(per_example))
    model.zero_grad(set_to_none=True)
    loss.backward()
    for h in hooks:
        h.remove()
    norms = [_weight_grad_norm(m) for _, m in order]
    rms = []
    for name, _ in order:
        t = outputs.get(name)
        g = None if t is None else t.grad
        rms.append(
            float("nan") if g is None else float(g.detach().double().norm().item()) / math.sqrt(max(1, g.numel()))
        )
    finite = bool(torch.isfinite(out).all().item()) and math.isfinite(float(loss.item()))
    all_sq = 0.0
    for p in model.parameters():
        if p.grad is not None:
            if not bool(torch.isfinite(p.grad).all().item()):
                finite = False
            v = float(p.grad.detach().double().norm().item())
            all_sq += v * v
    first, last = (norms[0], norms[-1]) if norms else (float("nan"), float("nan"))
    ratio = first / last if last > 0 else (float("inf") if first > 0 else float("nan"))
    gain = rms[0] / rms[-1] if rms and rms[-1] > 0 else float("nan")
    total = math.sqrt(sum(v * v for v in norms)) if all(math.isfinite(v) for v in norms) else float("nan")
    dead = len(norms) >= 2 and all(v == 0.0 for v in norms[:-1])
    return {
        "first": first,
        "last": last,
        "ratio": ratio,
        "gain": gain,
        "total": total,
        "total_all_params": math.sqrt(all_sq) if math.isfinite(all_sq) else float("nan"),
        "finite": finite,
        "dead": dead,
        "layers": len(norms),
        "first_layer": order[0][0] if order else None,
        "last_layer": order[-1][0] if order else None,
    }


def combine(per_seed: list[dict]) -> dict:
    """The seeds' numbers as the label sees them, and the label: the class most seeds show
    (``convention.classify_seeds``), so one unlucky seed (a net dead in one seed of three, whose
    zero would drag a geometric mean to 0) does not decide."""
    n = len(per_seed)
    combined = {
        k: geomean(s[k] for s in per_seed) for k in ("ratio", "first", "last", "total", "gain", "total_all_params")
    }
    combined["finite"] = all(s["finite"] for s in per_seed)
    combined["dead"] = sum(bool(s["dead"]) for s in per_seed) * 2 > n
    combined["dead_seeds"] = sum(bool(s["dead"]) for s in per_seed)
    hazard, test = classify_seeds(per_seed)
    combined["label"] = hazard.value
    combined["test"] = test
    return combined


def measure_file(path: str, seeds: int) -> dict:
    module = load_module(path)
    per_seed = [measure_seed(module, s) for s in range(seeds)]
    result = combine(per_seed)
    result["seeds"] = per_seed
    return result


def worker_main(seeds: int, threads: int) -> int:
    """Read model paths on stdin, one a line; write one JSON result a line."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(threads)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # a model that prints cannot corrupt the protocol
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        t0 = time.perf_counter()
        try:
            row = {"path": path, "result": measure_file(path, seeds)}
        except Exception as exc:  # noqa: BLE001 - reported per model
            row = {
                "path": path,
                "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}",
            }
        row["seconds"] = time.perf_counter() - t0
        out.write(json.dumps(row) + "\n")
        out.flush()
    return 0


class _Worker:
    def __init__(self, seeds: int, threads: int):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--_worker",
                "--seeds",
                str(seeds),
                "--threads",
                str(threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.current: str | None = None
        self.started = 0.0
        self.buffer = ""

    def send(self, path: str) -> None:
        self.current, self.started = path, time.monotonic()
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def label_paths(
    paths: list[str], seeds: int, jobs: int, threads: int, timeout: float = MODEL_TIMEOUT_S, progress=None
) -> dict[str, dict]:
    """``{path: {"result": ...} | {"error": ...}}``, measured by ``jobs`` child processes."""
    results: dict[str, dict] = {}
    queue = list(paths)
    if not queue:
        return results
    sel = selectors.DefaultSelector()
    workers: list[_Worker] = []

    def spawn():
        w = _Worker(seeds, threads)
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        workers.append(w)
        feed(w)

    def feed(w):
        if queue:
            w.send(queue.pop(0))
        else:
            w.current = None

    def retire(w, reason):
        if w.current is not None:
            results[w.current] = {"error": reason}
            if progress:
                progress(len(results))
        sel.unregister(w.proc.stdout)
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait()
        workers.remove(w)

    for _ in range(min(jobs, len(queue))):
        spawn()
    while any(w.current is not None for w in workers):
        for key, _ in sel.select(timeout=1.0):
            w = key.data
            line = w.proc.stdout.readline()
            if not line:
                try:
                    rc = w.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    rc = None
                retire(w, f"the measuring process ended (exit {rc})")
                if queue:
                    spawn()
                continue
            row = json.loads(line)
            results[row["path"]] = row
            if progress:
                progress(len(results))
            feed(w)
        now = time.monotonic()
        for w in list(workers):
            if w.current is not None and now - w.started > timeout:
                retire(w, f"timeout: over {timeout:g} s")
                if queue:
                    spawn()
    for w in list(workers):
        sel.unregister(w.proc.stdout)
        w.stop()
    return results


def source_key(source: str, seeds: int) -> str:
    key = f"v{MEASURE_VERSION};seeds={seeds};batch={BATCH};readout={READOUT_SEED}"
    text = f"{key};thresholds={sorted(THRESHOLDS.items())}\n{source}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def save_cache(path: Path, cache: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# prediction
# ---------------------------------------------------------------------------------------


def run_gradlint(folder: Path, dynamic_seeds: int = 0):
    """Start gradlint on ``folder`` (with ``--dynamic`` when ``dynamic_seeds``);
    :func:`collect_gradlint` reads its answer."""
    cmd = [
        sys.executable,
        "-m",
        "gradlint",
        "check",
        "--isolated",
        "--no-cache",
        "--no-respect-gitignore",
        "--output-format",
        "json",
        str(folder),
    ]
    if dynamic_seeds:
        cmd[4:4] = ["--dynamic", "--device", "cpu", "--seeds", str(dynamic_seeds)]
    return cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(folder))


def collect_gradlint(proc) -> tuple[dict[str, dict], str]:
    """``({file name: {"hazards": [...], "codes": [...], "unknown": n}}, stderr)``."""
    stdout, stderr = proc.communicate(timeout=1800)
    try:  # exit 2 with a JSON list: some files hit an internal error (GL002); the rest still count
        findings = json.loads(stdout or "[]")
        if not isinstance(findings, list):
            raise ValueError("not a list")
    except ValueError:
        raise RuntimeError(f"gradlint exited {proc.returncode}: {stderr.strip()[-2000:]}") from None
    if proc.returncode not in (0, 1) and not any(f.get("code") == "GL002" for f in findings):
        raise RuntimeError(f"gradlint exited {proc.returncode}: {stderr.strip()[-2000:]}")
    per_file: dict[str, dict] = {}
    for f in findings:
        entry = per_file.setdefault(
            Path(f["path"]).name, {"hazards": [], "codes": [], "unknown": 0, "findings": 0, "verdicts": []}
        )
        if f.get("confidence") == "measured":  # GL9xx: made by --dynamic, not a static prediction
            entry.setdefault("measured", []).append(str(f.get("hazard")))
            continue
        entry["findings"] += 1
        entry["codes"].append(f.get("code"))
        ev = f.get("evidence") or {}
        entry["verdicts"].append((f.get("code"), str(f.get("hazard")), ev.get("verdict"), ev.get("summary", "")))
        hazard = f.get("hazard")
        if hazard is None:
            entry["unknown"] += 1
            hazard = "unknown"
        entry["hazards"].append(str(hazard))
    return per_file, stderr


# ---------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------


def predicted_set(hazards) -> set[str]:
    return {h for h in hazards if h != "none"}


def score(pairs: list[tuple[str, set]]) -> dict:
    """Per class and "any": support, tp, fp, fn, precision, recall, f1 (None when undefined).
    ``pairs`` are ``(label, predicted hazard set)``."""

    def stats(tp, fp, fn, support):
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None
        return {"support": support, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}

    out = {}
    for c in CLASSES:
        tp = sum(1 for label, pred in pairs if c in pred and label == c)
        fp = sum(1 for label, pred in pairs if c in pred and label != c)
        fn = sum(1 for label, pred in pairs if label == c and c not in pred)
        out[c] = stats(tp, fp, fn, sum(1 for label, _ in pairs if label == c))
    tp = sum(1 for label, pred in pairs if pred and label != "none")
    fp = sum(1 for label, pred in pairs if pred and label == "none")
    fn = sum(1 for label, pred in pairs if not pred and label != "none")
    out["any"] = stats(tp, fp, fn, sum(1 for label, _ in pairs if label != "none"))
    return out


def _decades(value, threshold, above: bool) -> float:
    """How many decades ``value`` lies beyond ``threshold`` on the hazard side (negative: inside)."""
    if value is None or value != value:
        return float("-inf")
    if value <= 0:
        return 12.0 if not above else float("-inf")
    if value == float("inf"):
        return 12.0 if above else float("-inf")
    d = math.log10(value) - math.log10(threshold)
    return d if above else -d


def margin(row: dict) -> float:
    """How clearly the measurement says what it says, in decades: beyond the deciding
    threshold for a hazard label, inside the nearest threshold for a healthy one."""
    m = row["measured"]
    t = THRESHOLDS
    tests = {
        "first>": _decades(m["first"], t["exploding-absolute"], True),
        "total>": _decades(m["total"], t["exploding-total"], True),
        "ratio>": _decades(m["ratio"], t["exploding-ratio"], True),
        "gain>": _decades(m["gain"], t["exploding-gain"], True),
        "ratio<": _decades(m["ratio"], t["vanishing-ratio"], False),
        "first<": _decades(m["first"], t["vanishing-absolute"], False),
        "gain<": _decades(m["gain"], t["vanishing-gain"], False),
    }
    label = row["label"]
    if label == "none":
        return -max(v for v in tests.values())
    if not m["finite"] or label == "dead":
        return 12.0
    side = ">" if label == "exploding" else "<"
    return max(v for k, v in tests.items() if k.endswith(side))


def _f(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:.1e}"


def _p(x) -> str:
    return "   -" if x is None else f"{x:.3f}"


def report(rows: list[dict], scores: dict, errors: list[dict], unknown: int, findings: int, worst: int = 15) -> str:
    lines = []
    lines.append(f"{'class':<11} {'support':>7} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7} {'F1':>6}")
    for c in (*CLASSES, "any"):
        s = scores[c]
        lines.append(
            f"{c if c != 'any' else 'any hazard':<11} {s['support']:>7} {s['tp']:>4} {s['fp']:>4} {s['fn']:>4} "
            f"{_p(s['precision']):>9} {_p(s['recall']):>7} {_p(s['f1']):>6}"
        )
    lines.append(
        f"({len(rows)} models scored, {sum(1 for r in rows if r['label'] == 'none')} healthy; "
        f"{len(errors)} not measurable; {findings} findings, {unknown} without a `hazard` key counted as 'unknown')"
    )
    lines.append("")
    lines.append("confusion (measured label -> predicted hazard set: count)")
    for label in (*CLASSES, "none"):
        counts: dict[str, int] = {}
        for r in rows:
            if r["label"] == label:
                key = "+".join(sorted(r["predicted"])) or "none"
                counts[key] = counts.get(key, 0) + 1
        if counts:
            parts = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {label:<10} -> {parts}")
    lines.append("")
    lines.append("by family (label counts; any-hazard F1)")
    for fam in FAMILIES:
        fr = [r for r in rows if r["family"] == fam]
        if not fr:
            continue
        dist = ", ".join(f"{c}={sum(1 for r in fr if r['label'] == c)}" for c in (*CLASSES, "none"))
        f1 = score([(r["label"], set(r["predicted"])) for r in fr])["any"]["f1"]
        lines.append(f"  {fam:<9} n={len(fr):<4} {dist}  F1={_p(f1)}")
    misses = [
        r
        for r in rows
        if (r["label"] != "none" and r["label"] not in r["predicted"]) or any(p != r["label"] for p in r["predicted"])
    ]
    misses.sort(key=lambda r: -r["margin"])
    lines.append("")
    lines.append(
        f"worst misses ({len(misses)} models with a miss; the {min(worst, len(misses))} most clear-cut by measurement)"
    )
    for r in misses[:worst]:
        m = r["measured"]
        lines.append(
            f"  {r['file']}: label={r['label']}({r['test']}) predicted={'+'.join(sorted(r['predicted'])) or 'none'} "
            f"codes={','.join(sorted(set(c for c in r['codes'] if c))) or '-'}"
        )
        lines.append(
            f"      ratio={_f(m['ratio'])} first={_f(m['first'])} total={_f(m['total'])} gain={_f(m['gain'])} "
            f"finite={m['finite']} dead_seeds={m['dead_seeds']}  margin={r['margin']:.1f} dec"
        )
        lines.append(f"      {r['desc']}")
    if errors:
        lines.append("")
        lines.append(f"not measurable ({len(errors)}):")
        for e in errors[:10]:
            lines.append(f"  {e['file']}: {e['error']}  [{e['desc']}]")
    return "\n".join(lines)


def dynamic_report(rows: list[dict], per_file: dict, worst: int = 15) -> str:
    """How ``--dynamic``'s verdicts agree with the labels. A finding's claim is its ``hazard``;
    the verdict agrees when it is ``confirmed`` and the label is that hazard, or ``refuted``
    and the label is another. Decided: confirmed or refuted (not inconclusive, not-run). And
    for models no static finding flags: whether ``--dynamic`` made a GL9xx of the label."""
    decided = agree = total = 0
    wrong, undecided = [], {}
    by_file = {r["file"]: r for r in rows}
    for name, entry in per_file.items():
        row = by_file.get(name)
        if row is None:
            continue
        for code, hazard, verdict, summary in entry.get("verdicts", ()):
            if hazard not in ("vanishing", "exploding", "dead"):
                continue
            total += 1
            if verdict not in ("confirmed", "refuted"):
                undecided[verdict or "none"] = undecided.get(verdict or "none", 0) + 1
                continue
            decided += 1
            ok = (verdict == "confirmed") == (row["label"] == hazard)
            agree += ok
            if not ok:
                wrong.append((name, code, hazard, verdict, row["label"], summary))
    misses = [r for r in rows if r["label"] != "none" and not r["predicted"]]
    caught = [r for r in misses if r["label"] in per_file.get(r["file"], {}).get("measured", [])]
    false_gl9 = [r for r in rows if r["label"] == "none" and per_file.get(r["file"], {}).get("measured")]
    lines = [
        "--dynamic verdicts against the labels:",
        f"  findings with a hazard claim: {total}; decided {decided} ({decided / total:.2f})"
        if total
        else "  no finding with a hazard claim",
        f"  agreeing with the label: {agree} of {decided} decided ({agree / decided:.3f})" if decided else "",
        f"  undecided: {', '.join(f'{n} {v}' for v, n in sorted(undecided.items())) or 'none'}",
        f"  static misses (hazard measured, no finding): {len(misses)}; caught by a GL9xx of the label: {len(caught)}",
        f"  GL9xx on models labelled none: {len(false_gl9)}",
    ]
    for name, code, hazard, verdict, label, summary in wrong[:worst]:
        lines.append(f"  disagree: {name} {code} claims {hazard}, {verdict}, label {label}: {summary[:160]}")
    return "\n".join(line for line in lines if line)


def _strict(obj):
    """Non-finite numbers as the strings "inf", "-inf", "nan", so the JSON stays strict."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if obj != obj else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def check_failures(scores: dict) -> list[str]:
    bad = []
    f1 = scores["any"]["f1"]
    if f1 is None or f1 < CHECK_ANY_F1:
        bad.append(f"any-hazard F1 {_p(f1)} < {CHECK_ANY_F1}")
    for c in CLASSES:
        f1 = scores[c]["f1"]
        if f1 is not None and f1 < CHECK_CLASS_F1:
            bad.append(f"{c} F1 {_p(f1)} < {CHECK_CLASS_F1}")
    return bad


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N} models")
    ap.add_argument("--n", type=int, default=None, help=f"number of models (default {DEFAULT_N})")
    ap.add_argument("--seed", type=int, default=0, help="generator seed")
    ap.add_argument("--seeds", type=int, default=3, help="torch seeds per model for the labels")
    ap.add_argument("--out", type=Path, default=None, help="write the model files here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="write the per-model rows to this file")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="measuring processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per measuring process")
    ap.add_argument("--cache", type=Path, default=CACHE, help="label cache file")
    ap.add_argument("--no-label-cache", action="store_true", help="measure every model again")
    ap.add_argument("--worst", type=int, default=15, help="misses to list")
    ap.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 when any-hazard F1 < {CHECK_ANY_F1} or a class F1 < {CHECK_CLASS_F1}",
    )
    ap.add_argument(
        "--dynamic", action="store_true", help="run gradlint with --dynamic and score its verdicts against the labels"
    )
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        return worker_main(args.seeds, args.threads)

    t_start = time.perf_counter()
    n = args.n if args.n is not None else (QUICK_N if args.quick else DEFAULT_N)
    models = generate(n, args.seed)
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="gradlint-accuracy-")
        folder = Path(tmp.name)
    else:
        folder = args.out.resolve()
    try:
        write_models(models, folder)
        fam_counts = ", ".join(f"{f}={sum(1 for m in models if m.family == f)}" for f in FAMILIES)
        print(f"generated {len(models)} models ({fam_counts}) in {folder}", flush=True)

        cmd, glproc = run_gradlint(folder, args.seeds if args.dynamic else 0)  # runs while the labels are measured
        t_label = time.perf_counter()
        cache = {} if args.no_label_cache else load_cache(args.cache)
        keys = {m.name: source_key(m.source, args.seeds) for m in models}
        todo = [m for m in models if keys[m.name] not in cache]
        print(
            f"labelling: {len(models) - len(todo)} cached, {len(todo)} to measure "
            f"({args.jobs} processes x {args.threads} thread, {args.seeds} seeds)",
            flush=True,
        )

        def progress(done):
            if done % 25 == 0 or done == len(todo):
                print(f"  measured {done}/{len(todo)} ({time.perf_counter() - t_label:.0f} s)", flush=True)

        measured = label_paths(
            [str(folder / m.filename) for m in todo], args.seeds, args.jobs, args.threads, progress=progress
        )
        transient: dict[str, dict] = {}  # timeouts and crashes: not cached, they may pass next time
        for m in todo:
            row = measured.get(str(folder / m.filename), {"error": "not measured"})
            if "result" in row:
                cache[keys[m.name]] = {"result": row["result"]}
            elif row["error"].startswith(("timeout", "the measuring", "not measured")):
                transient[keys[m.name]] = {"error": row["error"]}
            else:
                cache[keys[m.name]] = {"error": row["error"]}
        if not args.no_label_cache:
            save_cache(args.cache, cache)
        label_s = time.perf_counter() - t_label

        t_wait = time.perf_counter()
        per_file, gl_stderr = collect_gradlint(glproc)
        checked = re.search(r"(\d+) files? checked", gl_stderr)
        gl_note = gl_stderr.strip().splitlines()[-1] if gl_stderr.strip() else ""
        if checked and int(checked.group(1)) != len(models):
            print(f"warning: gradlint checked {checked.group(1)} files of {len(models)}", flush=True)
        wait_s = time.perf_counter() - t_wait
        internal = sorted(name for name, e in per_file.items() if "GL002" in e["codes"])
        if internal:
            print(
                f"warning: gradlint reported internal errors (GL002) in {len(internal)} files: "
                f"{', '.join(internal[:10])}{' …' if len(internal) > 10 else ''}",
                flush=True,
            )

        rows, errors = [], []
        unknown = findings = 0
        for m in models:
            entry = cache.get(keys[m.name]) or transient.get(keys[m.name]) or {"error": "not measured"}
            if "error" in entry:
                errors.append({"file": m.filename, "family": m.family, "desc": m.desc, "error": entry["error"]})
                continue
            res = entry["result"]
            if res.get("seeds"):
                res = {**res, **{k: v for k, v in combine(res["seeds"]).items()}}  # labels follow the current rule
            pred = per_file.get(m.filename, {"hazards": [], "codes": [], "unknown": 0, "findings": 0})
            unknown += pred["unknown"]
            findings += pred["findings"]
            row = {
                "file": m.filename,
                "family": m.family,
                "desc": m.desc,
                "meta": m.meta,
                "label": res["label"],
                "test": res["test"],
                "measured": {
                    k: res[k]
                    for k in (
                        "ratio",
                        "first",
                        "last",
                        "total",
                        "gain",
                        "total_all_params",
                        "finite",
                        "dead",
                        "dead_seeds",
                    )
                },
                "predicted": sorted(predicted_set(pred["hazards"])),
                "hazards": pred["hazards"],
                "codes": pred["codes"],
            }
            row["margin"] = margin(row)
            rows.append(row)
        scores = score([(r["label"], set(r["predicted"])) for r in rows])
        print()
        print(report(rows, scores, errors, unknown, findings, args.worst))
        if args.dynamic:
            print()
            print(dynamic_report(rows, {m.filename: per_file.get(m.filename, {}) for m in models}, args.worst))
        print()
        print(f"gradlint: {' '.join(cmd[1:])}  ({gl_note})")
        print(
            f"time: {time.perf_counter() - t_start:.1f} s total, labelling {label_s:.1f} s, "
            f"waiting for gradlint afterwards {wait_s:.1f} s"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            payload = {"rows": rows, "errors": errors, "scores": scores, "unknown_hazard_findings": unknown}
            args.json.write_text(json.dumps(_strict(payload), indent=1, allow_nan=False), encoding="utf-8")
        if args.check:
            bad = check_failures(scores) if rows else ["nothing was scored"]
            if bad:
                print("check failed: " + "; ".join(bad))
                return 1
            print("check passed")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
