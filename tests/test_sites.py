"""Models as scripts configure them: call-site arguments and inits applied from outside."""

import ast
import textwrap

import pytest

from gradlint.engine import analyse_source, checked_graphs
from gradlint.graph.builder import build_graphs

NET = """
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, n_layers=3, constant_weight=None, act="relu"):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(64, 64) for _ in range(n_layers)])
        self.head = nn.Linear(64, 1)
        self.act = nn.Sigmoid() if act == "sigmoid" else nn.ReLU()
        if constant_weight is not None:
            for l in self.layers:
                nn.init.constant_(l.weight, constant_weight)

    def forward(self, x):
        for l in self.layers:
            x = self.act(l(x))
        return self.head(x)
"""


def findings(src):
    return [(d.code, d.line, tuple(r.line for r in d.related)) for d in analyse_source(src, "m.py")]


def codes(src):
    return sorted({d.code for d in analyse_source(src, "m.py")})


def site_line(src, text):
    return next(i for i, line in enumerate(src.splitlines(), 1) if text in line)


def test_the_class_defaults_alone_are_healthy():
    assert codes(NET) == []
    assert codes(NET + "\nmodel = Net()\n") == []


@pytest.mark.parametrize(
    "tail",
    [
        "\nmodel = Net(n_layers=30, act='sigmoid')\n",  # module level, keywords
        # in main(), positional
        "\n\ndef main():\n    depth = 30\n    net = Net(depth, None, 'sigmoid')\n    net.train()\n",
    ],
)
def test_call_site_arguments_configure_the_model(tail):
    src = NET + tail
    got = findings(src)
    line = site_line(src, "= Net(")
    # the arguments cause it (the class's defaults are healthy): reported at the call, the line
    # to change, with a note at the layers it concerns in the class
    assert [(c, at) for c, at, _ in got] == [("GL101", line)]
    [(_, _, notes)] = got
    assert notes and notes[0] < site_line(src, "def forward")
    [d] = analyse_source(src, "m.py")
    assert "caused by this call's arguments: `Net` with its defaults does not have it" in d.message


@pytest.mark.parametrize(
    "tail",
    [
        "\nmodel = Net(constant_weight=0)\n",
        "\nif __name__ == '__main__':\n    zero = 0.0\n    model = Net(constant_weight=zero)\n    model.train()\n",
    ],
)
def test_a_call_site_constant_init_is_seen(tail):
    src = NET + tail
    assert "GL201" in codes(src)
    assert codes(NET) == []


INIT_FN = """

def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.constant_(m.weight, 0.5)
"""


@pytest.mark.parametrize(
    "tail",
    [
        INIT_FN + "\nmodel = Net()\nmodel.apply(init_weights)\n",  # model.apply at module level
        INIT_FN + "\n\ndef main():\n    model = Net()\n    for m in model.modules():\n        init_weights(m)\n",
        "\nmodel = Net()\nwith torch.no_grad():\n    for layer in model.layers:\n        layer.weight.fill_(0.5)\n",
        "\nmodel = Net()\nfor name, p in model.named_parameters():\n    if 'weight' in name:\n"
        "        nn.init.constant_(p, 0.5)\n",
    ],
)
def test_an_init_applied_from_outside_the_class_is_seen(tail):
    src = NET + tail
    assert "GL201" in codes(src), analyse_source(src, "m.py")


def test_training_code_after_the_model_is_not_part_of_it():
    src = (
        NET
        + INIT_FN
        + """
model = Net(n_layers=4)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model = model.to("cpu")
model.apply(init_weights)  # after a rebinding: another object as far as gradlint knows
for epoch in range(1000):
    loss = model(torch.randn(8, 64)).sum()
    loss.backward()
"""
    )
    graphs = [g for g in build_graphs(ast.parse(src), "m.py") if g.site_span is not None]
    assert [g.name for g in graphs] == ["model = Net(...)"]
    assert "GL201" not in codes(src)


def test_identical_sites_build_one_graph_and_the_class_is_checked_as_configured():
    src = NET + "\na = Net(n_layers=30, act='sigmoid')\nb = Net(n_layers=30, act='sigmoid')\n"
    graphs = build_graphs(ast.parse(src), "m.py", everything=False)
    sites = [g for g in graphs if g.site_span is not None]
    assert len(sites) == 1
    net = next(g for g in graphs if g.name == "Net")
    assert net.checked_in_context  # the defaults are not what the script uses


def test_a_site_whose_configuration_recurses_is_truncated_not_an_internal_error():
    src = NET.replace(
        "    def forward(self, x):", "    def fuse(self):\n        self.fuse()\n\n    def forward(self, x):"
    )
    src += "\nmodel = Net(n_layers=4)\nmodel.fuse()\n"
    found = analyse_source(src, "m.py")
    assert "GL002" not in {d.code for d in found}  # it was: the truncation note had no span


def test_functions_with_required_parameters_are_configured_by_their_callers():
    src = NET + "\n\ndef make(depth):\n    model = Net(n_layers=depth, act='sigmoid')\n    model.train()\n"
    assert [g for g in build_graphs(ast.parse(src), "m.py") if g.site_span is not None] == []


@pytest.mark.parametrize(
    "head, base",
    [
        ("from mylib import BaseModel", "BaseModel"),
        ("import mylib.models", "mylib.models.BaseModel"),
    ],
)
def test_a_forward_inherited_from_an_invisible_base_is_a_noted_unknown(head, base):
    src = f"""
import torch.nn as nn
{head}


class Lib({base}):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(32, 32) for _ in range(20)])
"""
    (g,) = build_graphs(ast.parse(src), "m.py")
    assert any("inherited from `mylib" in u.reason and "cannot see" in u.reason for u in g.unknowns)
    assert len(g.layers("weighted")) == 20 and not g.has_forward


def test_a_forward_inherited_from_a_same_file_base_is_followed():
    head, forward = NET.split("    def forward(self, x):")
    base = "class Base(nn.Module):\n    def forward(self, x):" + forward + "\n\n"
    src = (
        head.replace("class Net(nn.Module):", base + "class Net(Base):") + "\nmodel = Net(n_layers=30, act='sigmoid')\n"
    )
    assert "def forward" not in src.split("class Net(Base):")[1]  # Net writes no forward of its own
    assert "GL101" in codes(src)


@pytest.mark.parametrize("where", ["init", "forward"])
def test_self_training_is_train_mode_not_both_branches(where):
    init_if = (
        (
            "        if self.training:\n            self.act = nn.Sigmoid()\n        else:\n"
            "            self.act = nn.ReLU()\n"
        )
        if where == "init"
        else "        self.act = nn.Sigmoid()\n"
    )
    fwd = (
        "            x = self.act(l(x)) if self.training else torch.relu(l(x))\n"
        if where == "forward"
        else "            x = self.act(l(x))\n"
    )
    src = f"""
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(32, 32) for _ in range(20)])
{init_if}
    def forward(self, x):
        for l in self.layers:
{fwd}        return x
"""
    # train mode: the sigmoid branch is the model built and measured (the last branch, ReLU,
    # used to win in __init__)
    assert "GL101" in codes(src)


@pytest.mark.parametrize(
    "src, line",
    [
        # module level, layers from a comprehension, initialized by a named_parameters() loop
        (
            "import torch.nn as nn\n"
            "tower = nn.Sequential(*[m for _ in range(16) for m in (nn.Linear(32, 32), nn.Sigmoid())])\n"
            "for name, p in tower.named_parameters():\n    if name.endswith('weight'):\n        nn.init.normal_(p,"
            " std=0.01)\n",
            2,
        ),
        # inside a function, written out, through an import alias
        (
            "import torch\nfrom torch import nn as tnn\n\ndef main():\n    net = tnn.Sequential(\n"
            + "".join("        tnn.Linear(32, 32), tnn.Sigmoid(),\n" for _ in range(16))
            + "    )\n    print(net)\n",
            6,
        ),
    ],
)
def test_a_sequential_built_in_place_is_a_model(src, line):
    got = [(d.code, d.line, d.message) for d in analyse_source(src, "m.py")]
    assert [(c, l) for c, l, _ in got] == [("GL101", line)], got
    assert ("tower.0 " if "tower" in src else "net.0 ") in got[0][2]  # named by its variable
    graph = checked_graphs(ast.parse(src), "m.py", src.splitlines())[1]
    [g] = [g for g in graph if g.site_span is not None]
    assert g.factory_of == "nn.Sequential" and len(g.layers("weighted")) == 16


def test_a_sequential_without_layers_is_not_a_model():
    src = "import torch.nn as nn\nhead = nn.Sequential()\nhead.add_module('fc', nn.Linear(4, 4))\n"
    assert checked_graphs(ast.parse(src), "m.py", src.splitlines())[1] == []


def test_factories_that_only_hand_their_class_to_a_library_are_not_built():
    # timm: the class goes to an imported builder, whose result gradlint cannot know; a factory
    # calling the class (directly or through a helper of the file) is built
    src = (
        "import torch.nn as nn\nfrom timm.models._builder import build_model_with_cfg\n"
        "class Net(nn.Module):\n    def __init__(self, depth=2):\n        super().__init__()\n"
        "        self.fc = nn.Sequential(*[nn.Linear(8, 8) for _ in range(depth)])\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
        "def _create(variant, **kw):\n    return build_model_with_cfg(Net, variant, **kw)\n"
        "def net_tiny(**kw):\n    return _create('tiny', **dict(depth=2, **kw))\n"
        "def _make(depth):\n    return Net(depth)\n"
        "def net_deep():\n    return _make(6)\n"
    )
    from gradlint.graph.builder import _factories
    from gradlint.graph.symbols import FileIndex

    names = {f.name for f in _factories(FileIndex(ast.parse(src)))}
    assert names == {"net_deep"}  # not net_tiny (imported builder); _create/_make need arguments


def test_constructor_kwargs_of_the_dynamic_config_configure_the_static_analysis(tmp_path):
    import subprocess
    import sys

    (tmp_path / "net.py").write_text(
        textwrap.dedent("""
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self, depth=4):
                super().__init__()
                self.fcs = nn.ModuleList(nn.Linear(64, 64) for _ in range(depth))

            def forward(self, x):
                for fc in self.fcs:
                    x = torch.sigmoid(fc(x))
                return x
        """)
    )

    def check():
        res = subprocess.run(
            [sys.executable, "-m", "gradlint", "check", "--no-cache", "--output-format", "concise", "net.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return res.stdout.strip().splitlines()

    assert check() == []  # four sigmoid layers: healthy
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint.dynamic.models."net.py::Net"]\nkwargs = {depth = 20}\n')
    [line] = check()
    assert line.startswith("net.py:13:17: GL101 [error] 20 stacked sigmoid layers (fcs.0 … fcs.19)")
    assert line.endswith(
        "(with the constructor kwargs of [tool.gradlint.dynamic.models]: `Net(depth=20)`; "
        "`Net` with its defaults does not have it)"
    )
