"""The static gradient-flow estimate agrees with real torch backward passes (a grid slice).

The full grid is `make calibrate` (benchmarks/calibrate.py); this runs its quick slice on the
CPU in a few seconds and is skipped cleanly when torch is not installed.
"""

import importlib.util
import math
import sys

import pytest

from gradlint.graph.gain import estimate_stack, moments

from conftest import ROOT


def test_known_closed_forms():
    # ReLU keeps half the second moment; its derivative squared averages 1/2
    m2, d2 = moments("relu", 1.0)
    assert abs(m2 - 0.5) < 1e-3 and abs(d2 - 0.5) < 1e-3
    # identity with He-like scale 1 is exactly neutral
    est = estimate_stack([1.0] * 10, [None] * 10)
    assert abs(est.backward_gain - 1) < 1e-9 and abs(est.weight_grad_ratio - 1) < 1e-9
    # sigmoid with Xavier: 0.25 per layer at small pre-activations
    est = estimate_stack([1.0] * 5, ["sigmoid"] * 4 + [None])
    assert 0.5 * 0.25**4 < est.backward_gain < 2 * 0.25**4
    # ReLU with PyTorch's default init: sqrt(1/3 * 1/2) per layer, no biases
    est = estimate_stack([math.sqrt(1 / 3)] * 11, ["relu"] * 10 + [None])
    assert abs(math.log(est.backward_gain / (1 / 6) ** 5)) < 0.05


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_estimate_matches_measurement_on_a_grid_slice():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import calibrate

    rows = calibrate.run(seeds=2, **calibrate.QUICK_GRID)
    assert len(rows) == 18
    for r in rows:
        assert calibrate.worst_factor(r) <= 10, calibrate.render([r])
    # GL101's estimate is checked on the saturating rows
    assert sum(1 for r in rows if r["B101"]) == 12
    # the slice spans both failure modes: something vanishes and something stays healthy
    assert min(r["B"] for r in rows) < 1e-4 and max(r["B"] for r in rows) > 0.5
