"""No silent guesses (issue 11): what the builder cannot resolve is a typed Unknown on the graph,
shown in the graph dump, and lowers the findings' confidence."""

from __future__ import annotations

import ast
import textwrap

import pytest

from gradlint.engine import analyse_source, checked_graphs
from gradlint.graph.dump import render_text
from gradlint.graph.model import UnknownKind

STATEMENT = """
import torch.nn as nn
from config import USE_NORM

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for i in range(20):
            layers.append(nn.Linear(64, 64))
            if USE_NORM:
                layers.append(nn.LayerNorm(64))
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
"""

EXPRESSION = """
import torch.nn as nn
import settings

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.Sigmoid()) for _ in range(20)])
        self.use_skip = settings.SKIP

    def forward(self, x):
        return x + self.net(x) if self.use_skip else self.net(x)
"""


def _graph(src):
    src = textwrap.dedent(src)
    return checked_graphs(ast.parse(src), "m.py", src.splitlines())[1][0]


@pytest.mark.parametrize(
    "src, text",
    [
        (STATEMENT, "condition not resolved: `USE_NORM` (`USE_NORM` is imported from config): both branches kept"),
        (EXPRESSION, "condition not resolved: `self.use_skip`: either value may be used"),
    ],
)
def test_an_imported_flag_is_not_true(src, text):
    graph = _graph(src)
    kinds = {u.kind for u in graph.unknowns}
    assert UnknownKind.CONDITION in kinds, graph.unknowns
    dump = render_text([graph])
    assert "[condition] line" in dump and text in dump, dump
    # the finding stands but says it rests on a guess
    gl101 = [d for d in analyse_source(textwrap.dedent(src), "m.py") if d.code == "GL101"]
    assert gl101 and all(d.confidence == "heuristic" for d in gl101)


def test_a_resolved_condition_records_nothing():
    src = STATEMENT.replace("from config import USE_NORM\n", "USE_NORM = False\n")
    graph = _graph(src)
    assert not graph.unknowns
    assert not any(layer.kind == "LayerNorm" for layer in graph.layers())
    assert [d.confidence for d in analyse_source(textwrap.dedent(src), "m.py") if d.code == "GL101"] == ["inferred"]


def test_every_unknown_has_a_kind_and_a_reason():
    src = (
        "import torch.nn as nn\nfrom lib import Block\nclass M(nn.Module):\n    def __init__(self, n):\n"
        "        super().__init__()\n        self.b = nn.ModuleList([Block() for _ in range(n)])\n"
        "    def forward(self, x):\n        for b in self.b:\n            x = b(x)\n        return x\n"
    )
    graph = _graph(src)
    assert graph.unknowns
    for u in graph.unknowns:
        assert isinstance(u.kind, UnknownKind) and u.reason
    assert {UnknownKind.ARGUMENT, UnknownKind.LOOP} <= {u.kind for u in graph.unknowns}
