"""Recurrences written by hand are recurrent: for GL401 as for nn.RNN."""

import ast

import pytest
from conftest import FIXTURES

from gradlint.engine import analyse_source
from gradlint.graph.builder import FileIndex

ELMAN = """
import torch
import torch.nn as nn


class Elman(nn.Module):
    def __init__(self, n_in=8, hidden=32):
        super().__init__()
        self.W = nn.Linear(n_in, hidden)
        self.U = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        self.hidden = hidden

    def forward(self, x):
        h = torch.zeros(x.size(1), self.hidden)
        for t in range(x.size(0)):
            h = torch.tanh(self.W(x[t]) + self.U(h))
        return self.out(h)


model = Elman()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in data:
    optimizer.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    CLIP
    optimizer.step()
"""

#: the tutorials' char-RNN, from its fixture (the part before the Elman cell there), with a
#: CLIP placeholder after ``backward()``
_FIXTURE = (FIXTURES / "configured" / "c05_handwritten_rnn.py").read_text().split("\n\nclass Elman")[0]
assert "    loss.backward()\n" in _FIXTURE
CHAR_RNN = _FIXTURE.replace("    loss.backward()\n", "    loss.backward()\n    CLIP\n") + "\n"


@pytest.mark.parametrize("src, model", [(ELMAN, "Elman"), (CHAR_RNN, "CharRNN")])
def test_a_hand_written_recurrence_trained_without_clipping_is_gl401(src, model):
    found = [d for d in analyse_source(src.replace("CLIP", "pass"), "m.py") if d.code == "GL401"]
    assert len(found) == 1 and f"({model})" in found[0].message
    clipped = src.replace("CLIP", "torch.nn.utils.clip_grad_norm_(PARAMS, 1.0)").replace(
        "PARAMS", "model.parameters()" if model == "Elman" else "rnn.parameters()"
    )
    assert "GL401" not in {d.code for d in analyse_source(clipped, "m.py")}


def test_the_char_rnn_says_how_it_is_recurrent():
    (d,) = [d for d in analyse_source(CHAR_RNN.replace("CLIP", "pass"), "m.py") if d.code == "GL401"]
    assert "a loop feeds its output state back" in d.message


@pytest.mark.parametrize(
    "body, recurrent",
    [
        ("for t in range(x.size(0)):\n            h = torch.tanh(self.W(x[t]) + self.U(h))", True),
        ("for t in range(x.size(0)):\n            z = torch.cat((x[t], h), 1)\n            h = self.U(z)", True),
        ("for layer in self.layers:\n            h = layer(h)", False),  # a stack, not a recurrence
        ("for t in range(3):\n            y = self.U(x)", False),  # no state fed back
        ("for blk in self.layers:\n            h = h + blk(h)", False),
    ],
)
def test_what_counts_as_a_recurrence_in_forward(body, recurrent):
    src = f"""
import torch
import torch.nn as nn


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Linear(4, 4)
        self.U = nn.Linear(4, 4)
        self.layers = nn.ModuleList([nn.Linear(4, 4)])

    def forward(self, x):
        h = x[0]
        {body}
        return h
"""
    assert ("M" in FileIndex(ast.parse(src)).recurrent_classes) is recurrent


FRAMEWORK = """
import torch
import torch.nn as nn
import lightning.pytorch as pl
from transformers import Trainer, TrainingArguments


class Seq(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LAYER
        self.fc = nn.Linear(32, 1)

    def forward(self, x):
        out = self.rnn(x)[0] if isinstance(self.rnn, nn.LSTM) else self.rnn(x)
        return self.fc(out[-1])

    def training_step(self, batch, idx):
        x, y = batch
        return ((self(x) - y) ** 2).mean()
"""


@pytest.mark.parametrize(
    "layer, tail, expect",
    [
        ("LSTM(8, 32)", "trainer = pl.Trainer(max_epochs=3)\ntrainer.fit(Seq(), loader)\n", "no `gradient_clip_val`"),
        ("LSTM(8, 32)", "pl.Trainer(gradient_clip_val=0).fit(model=Seq())\n", "gradient_clip_val=0"),
        ("LSTM(8, 32)", "trainer = pl.Trainer(gradient_clip_val=1.0)\ntrainer.fit(Seq(), loader)\n", None),
        ("Linear(8, 32)", "trainer = pl.Trainer()\ntrainer.fit(Seq(), loader)\n", None),  # not recurrent
        ("LSTM(8, 32)", "Trainer(model=Seq(), args=TrainingArguments('o')).train()\n", None),  # HF clips by default
        (
            "LSTM(8, 32)",
            "args = TrainingArguments('o', max_grad_norm=None)\nmodel = Seq()\n"
            "Trainer(model=model, args=args).train()\n",
            "max_grad_norm=None",
        ),
    ],
)
def test_framework_trainers_clip_or_say_they_do_not(layer, tail, expect):
    src = FRAMEWORK.replace("LAYER", layer) + "\n" + tail
    found = [d for d in analyse_source(src, "m.py") if d.code == "GL401"]
    if expect is None:
        assert found == []
    else:
        assert len(found) == 1 and expect in found[0].message


MODEL_PY = """
import torch.nn as nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LAYER
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc(self.rnn(x)[0] if isinstance(self.rnn, nn.LSTM) else self.rnn(x))
"""

TRAIN_GLOBALS = """
import torch
from model import *

model = Tagger()
optimizer = torch.optim.Adam(model.parameters())


def train(data):
    for x, y in data:
        optimizer.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        optimizer.step()
"""

TRAIN_STEP = """
import torch
from model import *

net = Tagger()
opt = torch.optim.SGD(net.parameters(), lr=0.1)


def train_step(x, y):
    opt.zero_grad()
    loss = (net(x) - y).pow(2).mean()
    loss.backward()
    opt.step()
    return loss.item()
"""


@pytest.mark.parametrize("train", [TRAIN_GLOBALS, TRAIN_STEP])
@pytest.mark.parametrize("layer, expect", [("LSTM(8, 32)", True), ("Linear(8, 32)", False)])
def test_a_star_imported_model_trained_over_module_globals(tmp_path, train, layer, expect):
    import os

    from gradlint.run import lint_paths
    from gradlint.settings import Settings

    (tmp_path / "model.py").write_text(MODEL_PY.replace("LAYER", layer))
    (tmp_path / "train.py").write_text(train)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = lint_paths(["."], Settings(jobs=1))
    finally:
        os.chdir(cwd)
    gl401 = [d for d in result.diagnostics if d.code == "GL401"]
    assert bool(gl401) is expect
    if expect:
        assert gl401[0].path == "train.py" and "Tagger, imported from model" in gl401[0].message


@pytest.mark.parametrize(
    "params",
    [
        "list(model.parameters()) + list(head.parameters())",
        "filter(lambda p: p.requires_grad, model.parameters())",
        "[{'params': model.parameters(), 'lr': 1e-3}]",
        "[p for p in model.parameters() if p.requires_grad]",
    ],
)
def test_optimizers_over_combined_or_filtered_parameters_name_the_model(params):
    src = f"""
import torch
import torch.nn as nn


def fit(data):
    model = nn.LSTM(4, 4)
    head = nn.Linear(4, 1)
    opt = torch.optim.Adam({params})
    for x in data:
        opt.zero_grad()
        head(model(x)[0]).sum().backward()
        opt.step()
"""
    (d,) = [d for d in analyse_source(src, "m.py") if d.code == "GL401"]
    assert "`model` (LSTM)" in d.message
