"""Property tests: whatever model code looks like, the builder never crashes or hangs."""

import ast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradlint.engine import analyse_source
from gradlint.graph.builder import build_graphs

INIT_STMTS = [
    "self.fc{i} = nn.Linear({w}, {w})",
    "self.act{i} = nn.{act}()",
    "layers = [nn.Linear({w}, {w}) for _ in range({n})]",
    "layers += [nn.{act}(), nn.Linear({w}, {w})]",
    "layers.append(nn.LayerNorm({w}))",
    "self.seq{i} = nn.Sequential(*layers)",
    "self.lst{i} = nn.ModuleList(layers)",
    "self.d{i} = nn.ModuleDict({{'a': nn.Linear({w}, {w}), 'b': nn.{act}()}})",
    "for k in range(config.depth):\n    setattr(self, f'h{{k}}', nn.Linear({w}, {w}))",
    "for k in range({n}):\n    self.add_module(f'm{{k}}', Block({w}))",
    "self.blk{i} = Block({w})",
    "self.unknown{i} = mystery({w})",
    "self.p{i} = nn.Parameter(torch.randn({w}, {w}) * {scale})",
    "nn.init.constant_(self.fc{i}.weight, {scale})",
    "self.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)",
    "for name, p in self.named_parameters():\n    if 'weight' in name and p.dim() > 1:\n       "
    " nn.init.xavier_uniform_(p)",
    "with torch.no_grad():\n    self.fc{i}.weight.fill_({scale})",
    "while cond:\n    self.w{i} = nn.Linear({w}, {w})\n    break",
    "try:\n    self.t{i} = nn.{act}()\nexcept Exception:\n    pass",
    "x{i} = (y := {n}) * 2 if flag else [*layers, *unknown_list]",
    "self.cfg = {{**defaults, 'depth': {n}}}",
    "self.sub{i} = self.seq{i}[1:] if hasattr(self, 'seq{i}') else nn.Identity()",
    "self.rec{i} = M()",
    "self.rnn{i} = nn.LSTM({w}, {w}, num_layers={n}, batch_first=True)",
    "del layers[0]",
    "global G\nG = {n}",
]
FWD_STMTS = [
    "x = self.fc{i}(x)",
    "x = torch.sigmoid(x)",
    "x = x + self.act{i}(x)",
    "x = F.relu(x).tanh()",
    "for layer in self.lst{i}:\n    x = layer(x)",
    "for name in self.d{i}:\n    x = self.d{i}[name](x)",
    "x = torch.cat([x, self.seq{i}(x)], dim=-1)",
    "x = x * torch.sigmoid(self.fc{i}(x))",
    "x, (h, c) = self.rnn{i}(x)",
    "x = x @ self.p{i}",
    "x = getattr(self, 'h0')(x)",
    "x = self.unknown{i}(x)[0]",
    "out = x\nout += self.blk{i}(x)\nx = out",
    "if self.training:\n    x = self.forward(x)",
    "x = [self.fc{i}(t) for t in x.chunk(2)]",
    "x = sum(x) if isinstance(x, list) else x",
    "return x",
]


@st.composite
def model_source(draw):
    def fill(template, i):
        return template.format(
            i=i,
            w=draw(st.sampled_from([1, 8, 64])),
            n=draw(st.integers(0, 40)),
            act=draw(st.sampled_from(["Sigmoid", "Tanh", "ReLU", "GELU"])),
            scale=draw(st.sampled_from([0, 0.01, 1.0])),
        )

    init = [fill(t, i % 3) for i, t in enumerate(draw(st.lists(st.sampled_from(INIT_STMTS), max_size=14)))]
    fwd = [fill(t, i % 3) for i, t in enumerate(draw(st.lists(st.sampled_from(FWD_STMTS), max_size=12)))]

    def indent(lines, n):
        return "\n".join(" " * n + l.replace("\n", "\n" + " " * n) for l in lines) or " " * n + "pass"

    return f"""import torch
import torch.nn as nn
import torch.nn.functional as F

class Block(nn.Module):
    def __init__(self, w=8):
        super().__init__()
        self.fc = nn.Linear(w, w)
    def forward(self, x):
        return x + torch.tanh(self.fc(x))

class M(nn.Module):
    def __init__(self, config=None, flag=True):
        super().__init__()
        layers = []
{indent(init, 8)}

    def forward(self, x):
{indent(fwd, 8)}
        return x
"""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_source())
def test_builder_never_crashes(source):
    ast.parse(source)
    graphs = build_graphs(ast.parse(source), "fuzz.py")
    assert {g.name for g in graphs} == {"Block", "M"}
    diags = analyse_source(source, "fuzz.py")
    assert not [d for d in diags if d.code in ("GL001", "GL002")], [d.message for d in diags]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("torch.nn()[]{}:=+*,'\"\\\n #x0123456789abcdef\t\x00é")), max_size=300))
def test_arbitrary_text_never_crashes(text):
    diags = analyse_source("import torch\n" + text, "junk.py")
    assert all(d.code in ("GL001", "GL101", "GL201") for d in diags)
