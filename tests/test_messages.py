"""Messages a non-theorist can read: numbers are labelled, layers are counted as written, no
jargon suffixes."""

import re
from pathlib import Path

import pytest

from gradlint.engine import analyse_source
from gradlint.rule import all_rules
from gradlint.run import lint_paths
from gradlint.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _messages():
    out = [d for d in lint_paths([str(ROOT / "fixtures")]).diagnostics]
    for rule in all_rules():
        for k, example in enumerate(rule.INVALID if not rule.measured else ()):
            out.extend(analyse_source(example, f"example_{k}.py", Settings(preview=True)))
    return out


MESSAGES = _messages()
BARE_NUMBERS = re.compile(r"\(\s*[-+]?\d[\d.e+-]*(\s*,\s*[-+]?\d[\d.e+-]*)+\s*\)")


def test_there_are_messages_to_read():
    assert len({d.code for d in MESSAGES}) >= 15


@pytest.mark.parametrize("jargon", ["backward gain", "(starved)", "(dead/symmetric units)", "(dead)", "std·√fan_in"])
def test_no_jargon_left(jargon):
    for d in MESSAGES:
        assert jargon not in d.message and jargon not in (d.help or ""), f"{d.code}: {d.message}"


def test_no_unlabelled_numbers():
    """A parenthesis of bare numbers, such as "(Xavier init: 0.5, 0.1)", says nothing of what they are."""
    for d in MESSAGES:
        words = re.sub(r"`[^`]*`", "`code`", d.message)  # the user's own code is quoted as written
        assert not BARE_NUMBERS.search(words), f"{d.code}: {d.message}"
        assert not re.search(r":\s*[-+]?\d[\d.e+-]*,\s*[-+]?\d[\d.e+-]*\)", words), f"{d.code}: {d.message}"


TANH_AND_HEAD = """import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(64, 64), nn.Tanh())])
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        return self.head(self.body(x))
"""


def test_layers_are_counted_as_written():
    """20 Tanh modules and a head: not "21 tanh layers"."""
    (d,) = [d for d in analyse_source(TANH_AND_HEAD, "net.py") if d.code == "GL203"]
    assert d.message.startswith("21 weighted layers (body.0 … head; tanh after 20 of them) with PyTorch's default init")
    uniform = TANH_AND_HEAD.replace("self.head(self.body(x))", "self.body(x)").replace(
        "        self.head = nn.Linear(64, 1)\n", ""
    )
    (d,) = [d for d in analyse_source(uniform, "net.py") if d.code == "GL203"]
    assert d.message.startswith("20 tanh layers (body.0 … body.38) with PyTorch's default init")
