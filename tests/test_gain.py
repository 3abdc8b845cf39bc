"""The pure-Python mean-field helpers behind the stack rules, against closed forms."""

import ast
import math

import pytest

from gradlint.graph import gain
from gradlint.graph.builder import build_graphs


@pytest.mark.parametrize("q", [0.5, 1.0, 4.0])
def test_relu_moments_match_closed_forms(q):
    m2, d2 = gain.moments("relu", q)
    assert m2 == pytest.approx(q / 2, rel=1e-3)
    assert d2 == pytest.approx(0.5, rel=1e-3)
    assert gain.mean("relu", q) == pytest.approx(math.sqrt(q / (2 * math.pi)), rel=1e-3)


def test_centred_activations_have_no_mean():
    assert abs(gain.mean("tanh", 2.0)) < 1e-12
    assert abs(gain.mean(None, 2.0)) < 1e-12
    assert gain.mean("sigmoid", 1.0) == pytest.approx(0.5, abs=1e-9)


def test_unbounded_mean_scales_past_the_quadrature_range():
    big = gain.mean("relu", 4e6)
    assert big == pytest.approx(math.sqrt(4e6 / (2 * math.pi)), rel=1e-3)
    assert gain.mean("sigmoid", 4e6) <= 1.0


def _residual(act: str, depth: int) -> str:
    return (
        "import torch.nn as nn\n\n"
        "class Stack(nn.Module):\n"
        f"    def __init__(self, depth={depth}, width=256):\n"
        "        super().__init__()\n"
        "        self.fcs = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])\n"
        f"        self.act = nn.{act}()\n"
        "        for m in self.modules():\n"
        "            if isinstance(m, nn.Linear):\n"
        "                nn.init.kaiming_normal_(m.weight, nonlinearity='relu')\n"
        "    def forward(self, x):\n"
        "        for fc in self.fcs:\n"
        "            x = x + self.act(fc(x))\n"
        "        return x\n"
    )


def _chain_gain(act: str, depth: int) -> float:
    graph = build_graphs(ast.parse(_residual(act, depth)), "stack.py")[0]
    chain = graph.unnormalized_residual_chain()
    assert len(chain) == depth
    return graph.residual_chain_gain(chain)


def test_shared_mean_of_relu_branches_adds_growth():
    # independent-unit mean-field alone: sqrt(1 + chi) = sqrt(2) per block after the first
    plain = math.sqrt(2) ** 29
    relu = _chain_gain("ReLU", 30)
    # the coherent mean adds growth (measured 3.1e5 at width 256), but at most the forward
    # growth it causes: (q + E[b^2] + 2 m E[b]) / (q + E[b^2]) < 2 per block
    assert plain * 5 < relu < plain * 2 ** (29 / 4)


def test_saturating_centred_branches_grow_less_than_relu():
    tanh = _chain_gain("Tanh", 30)
    assert tanh < math.sqrt(2) ** 29 / 100  # saturating branches: chi falls as the stream grows
