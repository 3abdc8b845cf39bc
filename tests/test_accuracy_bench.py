"""benchmarks/accuracy.py: its generated models are valid, buildable PyTorch files whose
INPUT_SHAPE fits their first layer, and its scoring computes precision/recall/F1 right."""

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy  # noqa: E402


def _sample(n_per_family=4, pool=80):
    """A handful of models covering every family, styles mixed."""
    models = accuracy.generate(pool, seed=7)
    picked = []
    for family in accuracy.FAMILIES:
        picked += [m for m in models if m.family == family][:n_per_family]
    return picked


def test_generation_is_deterministic_and_a_prefix():
    a = accuracy.generate(30, seed=3)
    b = accuracy.generate(10, seed=3)
    assert [m.source for m in a[:10]] == [m.source for m in b]
    assert [m.source for m in accuracy.generate(30, seed=3)] == [m.source for m in a]
    assert [m.source for m in accuracy.generate(30, seed=4)] != [m.source for m in a]


def test_generated_files_parse_build_and_fit_their_input(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    models = _sample()
    assert {m.family for m in models} == set(accuracy.FAMILIES)
    accuracy.write_models(models, tmp_path)
    for m in models:
        path = tmp_path / m.filename
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        assert [c.name for c in classes] == ["Net"], m.name
        assert any(
            isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "INPUT_SHAPE" for t in n.targets)
            for n in tree.body
        ), m.name
        spec = importlib.util.spec_from_file_location(f"acc_test_{m.name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        shape = tuple(module.INPUT_SHAPE)
        torch.manual_seed(0)
        net = module.Net()
        order = []
        hooks = [
            mod.register_forward_hook(lambda mod, i, o: order.append(mod) if mod not in order else None)
            for _, mod in accuracy.weighted_modules(net)
        ]
        out = net(torch.randn(shape))
        for h in hooks:
            h.remove()
        assert out.shape[0] == accuracy.BATCH, m.name
        first = order[0]
        if isinstance(first, nn.RNNBase):
            assert first.input_size == shape[-1], m.name
            assert shape[0 if first.batch_first else 1] == accuracy.BATCH, m.name
        elif isinstance(first, nn.Conv2d):
            assert first.in_channels == shape[1] and len(shape) == 4, m.name
            assert shape[0] == accuracy.BATCH
        else:
            assert isinstance(first, nn.Linear) and first.in_features == shape[-1], m.name
            assert shape == (accuracy.BATCH, first.in_features)


def test_a_measured_label_follows_the_convention(tmp_path):
    pytest.importorskip("torch")
    src = (
        "import torch.nn as nn\nINPUT_SHAPE = (8, 16)\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.net = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(16, 16), nn.Sigmoid())],"
        " nn.Linear(16, 1))\n"
        "        for m in self.modules():\n            if isinstance(m, nn.Linear):\n"
        "                nn.init.zeros_(m.weight)\n\n"
        "    def forward(self, x):\n        return self.net(x)\n"
    )
    (tmp_path / "dead.py").write_text(src, encoding="utf-8")
    (tmp_path / "vanish.py").write_text(src.replace("nn.init.zeros_(m.weight)", "pass"), encoding="utf-8")
    dead = accuracy.measure_file(str(tmp_path / "dead.py"), seeds=2)
    assert dead["label"] == "dead" and dead["dead"] and dead["finite"]
    vanish = accuracy.measure_file(str(tmp_path / "vanish.py"), seeds=2)
    assert vanish["label"] == "vanishing" and vanish["ratio"] < 1e-3


def test_f1_on_hand_made_pairs():
    pairs = [
        ("vanishing", {"vanishing"}),  # TP vanishing
        ("vanishing", {"vanishing"}),  # TP vanishing
        ("vanishing", set()),  # FN vanishing, FN any
        ("exploding", {"vanishing"}),  # FP vanishing, FN exploding, TP any
        ("exploding", {"exploding", "vanishing"}),  # TP exploding, FP vanishing, TP any
        ("dead", {"dead"}),  # TP dead
        ("none", {"exploding"}),  # FP exploding, FP any
        ("none", set()),  # TN
        ("none", {"unknown"}),  # FP any only
    ]
    s = accuracy.score(pairs)
    v = s["vanishing"]
    assert (v["support"], v["tp"], v["fp"], v["fn"]) == (3, 2, 2, 1)
    assert v["precision"] == pytest.approx(0.5) and v["recall"] == pytest.approx(2 / 3)
    assert v["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    e = s["exploding"]
    assert (e["support"], e["tp"], e["fp"], e["fn"]) == (2, 1, 1, 1)
    assert e["f1"] == pytest.approx(0.5)
    d = s["dead"]
    assert (d["tp"], d["fp"], d["fn"]) == (1, 0, 0) and d["f1"] == pytest.approx(1.0)
    a = s["any"]
    assert (a["support"], a["tp"], a["fp"], a["fn"]) == (6, 5, 2, 1)
    assert a["precision"] == pytest.approx(5 / 7) and a["recall"] == pytest.approx(5 / 6)
    assert a["f1"] == pytest.approx(10 / 13)
    empty = accuracy.score([("none", set())])
    assert empty["dead"]["f1"] is None and empty["any"]["precision"] is None
    assert accuracy.check_failures(s)  # F1 0.77 < 0.95
    perfect = accuracy.score([("vanishing", {"vanishing"}), ("none", set()), ("dead", {"dead"})])
    assert accuracy.check_failures(perfect) == []
