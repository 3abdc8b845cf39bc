"""The layer-graph builder on focused snippets: each feature, and its explicit unknowns."""

import ast
import textwrap

from gradlint.graph.builder import build_graphs


def graph_of(source, name="M"):
    graphs = {g.name: g for g in build_graphs(ast.parse(textwrap.dedent(source)), "t.py")}
    return graphs[name]


def acts(g):
    return g.summary()["activations"]


def test_import_aliases_resolve_the_same():
    variants = [
        "import torch.nn as tnn\nclass M(tnn.Module):\n    def __init__(self):\n        super().__init__()\n       "
        " self.a = tnn.Linear(3, 4)\n        self.s = tnn.Sigmoid()\n    def forward(self, x):\n        return"
        " self.s(self.a(x))\n",
        "from torch import nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n       "
        " self.a = nn.Linear(3, 4)\n        self.s = nn.Sigmoid()\n    def forward(self, x):\n        return"
        " self.s(self.a(x))\n",
        "from torch.nn import Linear as L, Sigmoid, Module\nclass M(Module):\n    def __init__(self):\n       "
        " super().__init__()\n        self.a = L(3, 4)\n        self.s = Sigmoid()\n    def forward(self, x):\n      "
        "  return self.s(self.a(x))\n",
        "import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.a"
        " = torch.nn.Linear(3, 4)\n    def forward(self, x):\n        return torch.nn.functional.sigmoid(self.a(x))\n",
    ]
    for src in variants:
        g = graph_of(src)
        assert g.summary() == {"weighted": [("Linear", 3, 4, "default", "default")], "activations": ["sigmoid"]}, src


def test_residual_add_is_a_skip_merge():
    g = graph_of("""
        import torch
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.f = nn.Linear(4, 4)
                self.down = nn.Linear(4, 4)
            def forward(self, x):
                identity = self.down(x)
                out = torch.relu(self.f(x))
                out += identity
                y = torch.add(out, x)
                return y
    """)
    merges = [n for n in g.nodes() if n.op == "merge"]
    assert [m.merge for m in merges] == ["add", "add"]
    assert all(g.is_skip_merge(m) for m in merges)


def test_gate_is_not_a_stacked_activation():
    g = graph_of("""
        import torch
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.h = nn.Linear(4, 4)
                self.g = nn.Linear(4, 4)
            def forward(self, x):
                return self.h(x) * torch.sigmoid(self.g(x))
    """)
    sig = [n for n in g.nodes() if g.activation_of(n) == "sigmoid"]
    assert len(sig) == 1 and g.is_gate(sig[0])
    from gradlint.flow.hazards import judge

    assert judge(g).hazards() == []  # a gate is no saturating stack


def test_concatenation_merges():
    g = graph_of("""
        import torch
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)
                self.b = nn.Linear(4, 4)
                self.out = nn.Linear(8, 1)
            def forward(self, x):
                return self.out(torch.cat([self.a(x), self.b(x)], dim=1))
    """)
    cat = [n for n in g.nodes() if n.op == "merge"]
    assert len(cat) == 1 and cat[0].merge == "cat"
    assert {p.layer for p in g.predecessors(cat[0])} == {"a", "b"}


def test_activation_from_string_through_a_dict_and_rnn_nonlinearity():
    g = graph_of("""
        import torch.nn as nn
        ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh}
        class M(nn.Module):
            def __init__(self, activation="tanh"):
                super().__init__()
                self.rnn = nn.RNN(8, 8, nonlinearity="relu")
                self.fc = nn.Linear(8, 8)
                self.act = ACTS[activation]()
            def forward(self, x):
                y, h = self.rnn(x)
                return self.act(self.fc(y))
    """)
    assert g.layer("rnn").params["nonlinearity"] == "relu"
    assert g.layer("act").activation == "tanh"
    assert acts(g) == ["tanh"]


def test_initializers_in_every_form():
    g = graph_of("""
        import torch
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)
                self.b = nn.Linear(4, 4)
                self.c = nn.Linear(4, 4)
                self.norm = nn.LayerNorm(4)
                self.w = nn.Parameter(torch.randn(4, 4) * 0.5)
                self.b.weight.data.normal_(0, 0.02)
                with torch.no_grad():
                    self.c.weight.fill_(0.3)
                for name, p in self.named_parameters():
                    if p.dim() > 1 and name.startswith("a."):
                        nn.init.orthogonal_(p)
                    elif "bias" in name:
                        nn.init.zeros_(p)
            def forward(self, x):
                return self.c(self.b(self.norm(self.a(x)))) @ self.w
    """)
    assert g.layer("a").inits["weight"].scheme == "orthogonal"
    assert g.layer("b").inits["weight"].scheme == "normal" and g.layer("b").inits["weight"].std == 0.02
    c = g.layer("c").inits["weight"]
    assert (c.scheme, c.value, c.via) == ("constant", 0.3, "tensor-method")
    assert all(g.layer(n).inits["bias"].scheme == "zeros" for n in ("a", "b", "c", "norm"))
    assert "weight" not in g.layer("norm").inits  # dim() == 1: untouched
    assert g.layer("w").category == "parameter"
    assert g.init_of(g.layer("w")).scheme == "normal"


def test_apply_with_isinstance_tuple_and_modules_loop():
    g = graph_of("""
        import torch.nn as nn
        def init(m):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.bn = nn.BatchNorm2d(8)
                self.fc = nn.Linear(8, 2)
                self.apply(init)
                for m in self.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.normal_(m.weight, 0, 0.01)
            def forward(self, x):
                return self.fc(self.bn(self.conv(x)).mean((2, 3)))
    """)
    assert g.layer("conv").inits["weight"].scheme == "kaiming_normal"
    assert g.layer("conv").inits["weight"].via == "apply"
    assert g.layer("bn").inits["weight"].scheme == "constant"
    assert g.layer("fc").inits["weight"].scheme == "normal"


def test_apply_replays_an_init_on_equal_blocks_and_only_on_equal_ones():
    """``apply`` interprets an init function once per distinct module and replays its effect on
    equal ones; what it can dispatch on (type, attributes, submodules) keeps blocks apart."""
    g = graph_of("""
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, gated):
                super().__init__()
                self.gated = gated
                self.fc = nn.Linear(16, 16)
                self.gate = nn.Linear(16, 16)
            def forward(self, x):
                return self.fc(x) * self.gate(x).sigmoid()
        def init(m):
            if isinstance(m, Block):
                nn.init.zeros_(m.fc.bias)
                if m.gated:
                    nn.init.constant_(m.gate.weight, 0.5)
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = Block(True)
                self.b = Block(False)
                self.c = Block(True)
                self.d = Block(False)
                self.apply(init)
            def forward(self, x):
                return self.d(self.c(self.b(self.a(x))))
    """)
    for name in "abcd":
        assert g.layer(f"{name}.fc").inits["bias"].scheme == "zeros", name
    for name in "ac":
        assert g.layer(f"{name}.gate").inits["weight"].scheme == "constant", name
    for name in "bd":
        assert "weight" not in g.layer(f"{name}.gate").inits, name


def test_helper_function_and_block_reuse_expand():
    g = graph_of("""
        import torch.nn as nn
        WIDTH = 16
        def block(w):
            return nn.Sequential(nn.Linear(w, w), nn.BatchNorm1d(w), nn.ReLU())
        class Res(nn.Module):
            def __init__(self, w=WIDTH):
                super().__init__()
                self.body = block(w)
            def forward(self, x):
                return x + self.body(x)
        class M(nn.Module):
            def __init__(self, n=3):
                super().__init__()
                self.blocks = nn.ModuleList(Res() for _ in range(n + 1))
            def forward(self, x):
                for b in self.blocks:
                    x = b(x)
                return x
    """)
    names = [l.name for l in g.layers("weighted")]
    assert names == [f"blocks.{i}.body.0" for i in range(4)]
    assert sum(g.is_skip_merge(n) for n in g.nodes()) == 4
    rep = g.layer("blocks.0.body.0").repeat
    assert [(p.name, p.value) for p in rep] == [("n", 3)]


def test_unresolved_things_are_recorded_not_guessed():
    g = graph_of("""
        import torch.nn as nn
        from .layers import Mystery
        class M(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(config.n_layers)])
                self.odd = Mystery(8)
            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return self.odd(x)
    """)
    reasons = " | ".join(u.reason for u in g.unknowns)
    assert "constructor argument `config` has no default" in reasons
    assert "count not resolved" in reasons
    assert "Mystery" in reasons
    assert g.layer("odd").category == "unknown"


def test_pathological_inputs_end_as_unknowns():
    g = graph_of("""
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(10 ** 6)])
                self.me = M()
            def forward(self, x):
                for l in self.layers:
                    x = l(x)
                return x
    """)
    assert g.unknowns  # unrolling capped / recursion cut, explicitly


def test_sequential_subclass_without_forward():
    g = graph_of("""
        import torch.nn as nn
        class M(nn.Sequential):
            def __init__(self, n=3):
                layers = []
                for _ in range(n):
                    layers += [nn.Linear(4, 4), nn.Tanh()]
                super().__init__(*layers)
    """)
    assert acts(g) == ["tanh"] * 3
    assert [l.name for l in g.layers("weighted")] == ["0", "2", "4"]


def test_graph_dump_is_deterministic():
    from gradlint.graph.dump import render_dot, render_json, render_text

    src = open("fixtures/styles/s07_block_reuse.py").read()
    for render in (render_text, render_json, render_dot):
        a = render(build_graphs(ast.parse(src), "s07.py"))
        b = render(build_graphs(ast.parse(src), "s07.py"))
        assert a == b and a


FACTORY_ZOO = """
import torch.nn as nn

class Bottleneck(nn.Module):
    expansion = 4
    def __init__(self, inplanes, planes):
        super().__init__()
        self.conv = nn.Linear(inplanes, planes * self.expansion)
    def forward(self, x):
        return self.conv(x)

class Net(nn.Module):
    def __init__(self, block, layers, width=16):
        super().__init__()
        self.inplanes = width
        blocks = []
        for _ in range(layers):
            blocks.append(block(self.inplanes, width))
            self.inplanes = width * block.expansion
        self.body = nn.Sequential(*blocks)
    def forward(self, x):
        return self.body(x)

def _net(block, layers, weights, **kwargs):
    return Net(block, layers, **kwargs)

def net3(*, weights=None, **kwargs):
    weights = Weights.verify(weights)
    return _net(Bottleneck, 3, weights, **kwargs)

def helper(x):
    return x + 1
"""


def test_factory_functions_build_the_model_they_return():
    graphs = {g.name: g for g in build_graphs(ast.parse(FACTORY_ZOO), "zoo.py")}
    # only argument-free functions that return one of the file's modules become models
    assert "net3()" in graphs and "_net()" not in graphs and "helper()" not in graphs
    zoo = graphs["net3()"]
    assert zoo.factory_of == "Net" and not zoo.unknowns
    # the class attribute read through the block class passed as an argument
    shapes = [(l.params["in_features"], l.params["out_features"]) for l in zoo.layers() if l.kind == "Linear"]
    assert shapes == [(16, 64), (64, 64), (64, 64)]
    # the class alone cannot be resolved; the factory covers it
    assert graphs["Net"].unknowns and graphs["Net"].checked_in_context


def test_dispatch_on_a_block_class_with_is():
    """``if block_type is ConvBlock:`` (timm's NextViT): a class is one object, so the test holds
    whichever way the class reached the variable. Two styles: a list multiplied, a tuple default."""
    common = """
        import torch.nn as nn
        class ConvBlock(nn.Module):
            def __init__(self, w):
                super().__init__()
                self.fc = nn.Linear(w, w)
                self.act = nn.Tanh()
            def forward(self, x):
                return self.act(self.fc(x))
        class AttnBlock(nn.Module):
            def __init__(self, w):
                super().__init__()
                self.fc = nn.Linear(w, w)
            def forward(self, x):
                return x + self.fc(x)
    """
    styles = [
        """
        class M(nn.Module):
            def __init__(self, types=None):
                super().__init__()
                types = [ConvBlock] * 3 + [AttnBlock]
                blocks = []
                for t in types:
                    if t is ConvBlock:
                        blocks.append(ConvBlock(16))
                    elif t is AttnBlock:
                        blocks.append(AttnBlock(16))
                self.blocks = nn.Sequential(*blocks)
            def forward(self, x):
                return self.blocks(x)
        """,
        """
        class M(nn.Module):
            def __init__(self, types=(ConvBlock, ConvBlock, ConvBlock, AttnBlock)):
                super().__init__()
                self.blocks = nn.ModuleList()
                for t in types:
                    self.blocks.append(ConvBlock(16) if t is ConvBlock else AttnBlock(16))
            def forward(self, x):
                for b in self.blocks:
                    x = b(x)
                return x
        """,
    ]
    for style in styles:
        g = graph_of(textwrap.dedent(common) + textwrap.dedent(style))
        assert acts(g) == ["tanh"] * 3, style
        assert len(g.summary()["weighted"]) == 4
        assert not any("condition not resolved" in u.reason for u in g.unknowns), g.unknowns


def _stds(g):
    return {l.name: g.init_of(l).std for l in g.layers("weighted")}


def test_applied_init_reads_the_arguments_it_names():
    """An init function's effect is shared between equal modules only as far as it can tell
    them apart: one reading ``m.in_features`` gives each width its own scale (two styles:
    ``model.apply`` at module level, ``self.apply`` in the constructor)."""
    styles = [
        """
        import torch.nn as nn
        def init(m):
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features ** -0.5)
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 16)
                self.b = nn.Linear(16, 16)
                self.c = nn.Linear(16, 64)
            def forward(self, x):
                return self.c(self.b(self.a(x)))
        model = M()
        model.apply(init)
        """,
        """
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 16)
                self.b = nn.Linear(16, 16)
                self.c = nn.Linear(16, 64)
                self.apply(self._init)
            def _init(self, m):
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=m.in_features ** -0.5)
            def forward(self, x):
                return self.c(self.b(self.a(x)))
        """,
    ]
    for style in styles:
        graphs = build_graphs(ast.parse(textwrap.dedent(style)), "t.py")
        g = next(g for g in graphs if "a" in {l.name for l in g.layers()} and g.init_of(g.layer("a")).std)
        assert _stds(g) == {"a": 0.5, "b": 0.25, "c": 0.25}, style


def test_applied_method_sees_each_models_own_attributes():
    """``self.apply(self._init)`` in two models of one file: an effect learnt on one model's
    modules is reused on the other's only when what the method reads of ``self`` is equal."""
    base = """
        import torch.nn as nn
        class Base(nn.Module):
            def _init(self, m):
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=self.scale)
    """
    model = """
        class {name}(Base):
            def __init__(self):
                super().__init__()
                self.scale = {scale}
                {extra}
                self.fc = nn.Linear(8, 8)
                self.apply(self._init)
            def forward(self, x):
                return self.fc(x)
    """
    source = textwrap.dedent(base) + "".join(
        textwrap.dedent(model.format(name=n, scale=v, extra=e))
        for n, v, e in (("Small", 0.01, "pass"), ("Big", 3.0, "pass"), ("Same", 0.01, "self.other = 1"))
    )
    graphs = {g.name: g for g in build_graphs(ast.parse(source), "t.py")}
    assert _stds(graphs["Small"]) == {"fc": 0.01}
    assert _stds(graphs["Big"]) == {"fc": 3.0}
    assert _stds(graphs["Same"]) == {"fc": 0.01}


def test_a_class_compared_with_an_unknown_is_not_decided():
    """``ConvBlock is t`` with ``t`` unresolved (an imported default) keeps both branches."""
    g = graph_of(
        """
        import torch.nn as nn
        from elsewhere import DEFAULT_BLOCK
        class ConvBlock(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)
            def forward(self, x):
                return self.fc(x)
        class M(nn.Module):
            def __init__(self, t=DEFAULT_BLOCK):
                super().__init__()
                if ConvBlock is t:
                    self.body = ConvBlock()
                else:
                    self.body = nn.Linear(8, 8)
            def forward(self, x):
                return self.body(x)
        """
    )
    assert any("condition not resolved: `ConvBlock is t`" in u.reason for u in g.unknowns), g.unknowns
