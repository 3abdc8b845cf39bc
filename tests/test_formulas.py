"""Activations written as formulas are the activations they spell."""

import ast

import pytest

from gradlint.engine import analyse_source
from gradlint.graph.builder import build_graphs


def net(expr, pre="h = l(x)"):
    return f"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import exp


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(32, 32) for _ in range(3)])
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        for l in self.layers:
            {pre}
            x = {expr}
        return self.head(x)
"""


def activations(src):
    g = next(g for g in build_graphs(ast.parse(src), "m.py") if g.name == "Net")
    return [g.activation_of(n) for n in g.nodes() if n.op == "layer" and g.category_of(n) == "activation"]


@pytest.mark.parametrize(
    "expr, act",
    [
        ("1 / (1 + torch.exp(-h))", "sigmoid"),
        ("1.0 / (h.neg().exp() + 1)", None),  # a negation as a method: not matched (operand differs)
        ("1 / (torch.exp(-h) + 1)", "sigmoid"),
        ("exp(h) / (1 + exp(h))", "sigmoid"),
        ("(torch.exp(h) - torch.exp(-h)) / (torch.exp(h) + torch.exp(-h))", "tanh"),
        ("2 * torch.sigmoid(2 * h) - 1", "tanh"),
        ("h.clamp(min=0)", "relu"),
        ("torch.clamp(h, min=0.0)", "relu"),
        ("h.clamp_min(0)", "relu"),
        ("torch.maximum(h, torch.zeros_like(h))", "relu"),
        ("h * (h > 0)", "relu"),
        ("h * (h > 0).float()", "relu"),
        ("torch.where(h > 0, h, 0.01 * h)", "leaky_relu"),
        ("torch.where(h > 0, h, torch.zeros_like(h))", "relu"),
        ("h.clamp(0, 6)", "relu6"),
        ("torch.clamp(h, -1, 1)", "hardtanh"),
        ("h * torch.sigmoid(h)", "silu"),
        ("h * torch.tanh(F.softplus(h))", "mish"),
        ("0.5 * h * (1 + torch.erf(h / math.sqrt(2.0)))", "gelu"),
        ("h * 0.5 * (1.0 + torch.erf(h / math.sqrt(2)))", "gelu"),
        ("torch.log(1 + torch.exp(h))", "softplus"),
        ("torch.log1p(h.exp())", "softplus"),
    ],
)
def test_spelled_out_activations(expr, act):
    got = activations(net(expr))
    if act is None:
        assert "sigmoid" not in got
    else:
        assert got == [act] * 3


@pytest.mark.parametrize(
    "expr, not_this",
    [
        ("1 / (2 + torch.exp(-h))", "sigmoid"),  # not a sigmoid
        ("h * torch.sigmoid(x)", "silu"),  # gated by another tensor: a gate, not SiLU
        ("torch.where(h > 0, h, 2 * h)", "leaky_relu"),  # slope above 1
        ("h.clamp(min=-3)", "relu"),
    ],
)
def test_near_misses_are_not_taken_for_activations(expr, not_this):
    assert not_this not in activations(net(expr))


def test_a_deep_hand_written_sigmoid_stack_is_reported_in_two_styles():
    deep = net("1 / (1 + torch.exp(-h))").replace("range(3)", "range(12)")
    assert "GL101" in {d.code for d in analyse_source(deep, "m.py")}
    module_style = """
import torch
import torch.nn as nn


class MySigmoid(nn.Module):
    def forward(self, x):
        return 1.0 / (1.0 + torch.exp(-x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for _ in range(12):
            layers += [nn.Linear(32, 32), MySigmoid()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        return self.head(self.body(x))
"""
    assert "GL101" in {d.code for d in analyse_source(module_style, "m.py")}
