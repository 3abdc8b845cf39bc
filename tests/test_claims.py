"""Rules say which hazards they report: each cause of the flow model has one claimant, and a
hazard whose claimant is switched off is still reported (GL301 takes it over)."""

import pytest

from gradlint.engine import analyse_source
from gradlint.flow.hazards import GRADIENT_CAUSES
from gradlint.rule import all_rules
from gradlint.settings import Settings
from gradlint.vocab import Cause

RULES = all_rules()


def test_each_cause_has_exactly_one_claimant():
    for cause in Cause:
        claimants = [r.code for r in RULES if cause in r.claims]
        assert len(claimants) == 1, (cause, claimants)


def test_every_stack_hazard_has_a_rule_to_take_it_over():
    taken = {c for r in RULES for c in r.takes_over}
    for cause in GRADIENT_CAUSES:
        if cause in (Cause.DEPTH, Cause.RECURRENT):  # GL301's own; the gradient through time
            continue
        assert cause in taken, cause


def _handed_over():
    """(rule, example index) for each claimant's example that makes a gradient claim (a GL201
    with random biases makes none: there is nothing to hand over)."""
    taken = {c for x in RULES for c in x.takes_over}
    out = []
    for r in RULES:
        if not set(r.claims) & taken:
            continue
        for k, example in enumerate(r.INVALID):
            if any(d.code == r.code and d.hazard != "none" for d in analyse_source(example, "m.py")):
                out.append((r, k))
    return out


TAKEN = _handed_over()


def test_the_handover_is_tested_for_every_taken_cause():
    assert {c for r, _ in TAKEN for c in r.claims} == {c for x in RULES for c in x.takes_over}


@pytest.mark.parametrize("rule, k", TAKEN, ids=[f"{r.code}-{k}" for r, k in TAKEN])
def test_a_hazard_whose_rule_is_off_is_still_reported(rule, k):
    example = rule.INVALID[k]
    own = [d for d in analyse_source(example, "m.py") if d.code == rule.code and d.hazard != "none"]
    without = analyse_source(example, "m.py", Settings(ignore=(rule.code,)))
    takers = [d for d in without if d.hazard == own[0].hazard and rule.code in d.message]
    assert takers, f"with {rule.code} off, its {own[0].hazard} hazard is reported by nobody: {without}"
    assert all(d.code in {r.code for r in RULES if r.takes_over} for d in takers)
    # and switching the taker off too is the user's choice: then nothing is said
    takers_off = Settings(ignore=(rule.code, *{d.code for d in takers}))
    assert not [d for d in analyse_source(example, "m.py", takers_off) if rule.code in d.message]


def test_a_24_layer_default_init_tanh_stack_with_gl203_off():
    src = (
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.layers = nn.Sequential(*[m for _ in range(24) for m in (nn.Linear(64, 64), nn.Tanh())])\n\n"
        "    def forward(self, x):\n        return self.layers(x)\n"
    )
    assert [d.code for d in analyse_source(src, "m.py")] == ["GL203"]
    (d,) = analyse_source(src, "m.py", Settings(ignore=("GL203",)))
    assert d.code == "GL301" and d.hazard == "vanishing"
    assert (
        "GL203 (init-activation-mismatch), which names the cause (an init that does not suit the activation)"
        in d.message
    )
