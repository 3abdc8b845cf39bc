"""The same architecture written in every coding style yields the same graph summary."""

import ast
from pathlib import Path

import pytest
from conftest import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from gradlint.engine import analyse_source
from gradlint.graph.builder import build_graphs

STYLES = sorted((FIXTURES / "styles").glob("s*.py"))
EXPECTED = {
    "weighted": [("Linear", 32, 64, "xavier_uniform", "zeros")]
    + [("Linear", 64, 64, "xavier_uniform", "zeros")] * 6
    + [("Linear", 64, 10, "xavier_uniform", "zeros")],
    "activations": ["sigmoid"] * 7,
}


def _tower(path: Path):
    graphs = [g for g in build_graphs(ast.parse(path.read_text()), str(path)) if g.name == "Tower"]
    assert len(graphs) == 1
    return graphs[0]


def test_twelve_styles():
    assert len(STYLES) >= 12


@pytest.mark.parametrize("path", STYLES, ids=lambda p: p.stem)
def test_style_summary(path):
    graph = _tower(path)
    assert graph.summary() == EXPECTED
    assert not graph.unknowns, graph.unknowns


@pytest.mark.parametrize("path", STYLES, ids=lambda p: p.stem)
def test_style_same_finding(path):
    diags = [d for d in analyse_source(path.read_text(), str(path)) if d.code == "GL101"]
    assert len(diags) == 1
    assert diags[0].message.startswith("7 stacked sigmoid layers")
    # one prediction, whatever the style: net.0 gets 6.9e-05 of the head's weight gradient
    assert "gets about 6.9e-05 of the weight gradient" in diags[0].message
    assert diags[0].hazard == "vanishing"


# ---------------------------------------------------------------- generated styles
TEMPLATES = {
    "sequential-loop": """
import torch.nn as nn
DEPTH = {depth}
class M(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for _ in range(DEPTH):
            layers.append(nn.Linear({width}, {width}))
            layers.append(nn.{module}())
        self.net = nn.Sequential(*layers)
    def forward(self, x):
        return self.net(x)
""",
    "modulelist-functional": """
import torch
from torch import nn
import torch.nn.functional as F
class M(nn.Module):
    def __init__(self, depth={depth}, width={width}):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
    def forward(self, x):
        for layer in self.layers:
            x = F.{func}(layer(x))
        return x
""",
    "setattr-method": """
import torch.nn as nn
class M(nn.Module):
    n = {depth}
    def __init__(self):
        super().__init__()
        for i in range(self.n):
            setattr(self, f"fc{{i}}", nn.Linear({width}, {width}))
    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"fc{{i}}")(x).{func}()
        return x
""",
    "block-reuse": """
import torch.nn as nn
class Block(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.fc = nn.Linear(w, w)
        self.act = nn.{module}()
    def forward(self, x):
        return self.act(self.fc(x))
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(*[Block({width}) for _ in range({half} * 2 + {odd})])
    def forward(self, x):
        return self.blocks(x)
""",
}
ACTS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU"}


@settings(max_examples=60, deadline=None)
@given(
    style=st.sampled_from(sorted(TEMPLATES)),
    depth=st.integers(min_value=1, max_value=40),
    width=st.sampled_from([4, 16, 128]),
    act=st.sampled_from(sorted(ACTS)),
)
def test_generated_styles_agree(style, depth, width, act):
    source = TEMPLATES[style].format(
        depth=depth, width=width, module=ACTS[act], func=act, half=depth // 2, odd=depth % 2
    )
    graphs = {g.name: g for g in build_graphs(ast.parse(source), "gen.py")}
    summary = graphs["M"].summary()
    assert summary["activations"] == [act] * depth
    assert summary["weighted"] == [("Linear", width, width, "default", "default")] * depth
    # the rule agrees with the theory: sigmoid with default init, factor (0.25 * 0.577)^depth
    diags = [d for d in analyse_source(source, "gen.py") if d.code in ("GL101", "GL203")]
    if act == "relu":
        # ReLU with the default init: only the init rule, and only when deep
        assert all(d.code == "GL203" for d in diags)
        assert not diags or depth >= 10
    elif depth < 2:
        assert not diags
    else:
        # one finding for the stack: GL101 (the activation) or GL203 (the init is the cause).
        # Measured (THEORY.md): 10 sigmoid layers with the default init are far gone (1e-5 to
        # 1e-8); tanh with the default init vanishes only from about 20-30 layers (first-layer
        # gradient 5.8e-08 at 30), so shallower stacks may or may not be reported
        assert len(diags) <= 1, (source, diags)
        if (act == "sigmoid" and depth >= 10) or (act == "tanh" and depth >= 36):
            assert len(diags) == 1, (source, diags)
            assert diags[0].hazard == "vanishing"
        elif (act == "sigmoid" and depth <= 3) or (act == "tanh" and depth <= 10):
            assert not diags, (source, diags)  # measured healthy at these depths
