"""The flow model agrees with torch on a few representative calibration cells.

`make calibrate` (benchmarks/calibrate.py) runs the whole grid; this runs a handful of its
cells, one per hazard class and structure, through the very same code path (the cell's
source measured with torch in the convention, and predicted through build_graphs -> judge),
so that a calibration regression shows up in `make test`. Skipped without torch.
"""

import importlib.util
import math
import sys

import pytest
from conftest import ROOT

pytest.importorskip("torch")

#: cell -> the hazard both sides must agree on (the measured label pins the cell's meaning)
CELLS = {
    "plain:sigmoid/default/d10": "vanishing",
    "plain:relu/kaiming/d10": "none",
    "plain:tanh/normal1/d10": "exploding",
    "normalized:batchnorm/relu/d40": "exploding",
    "residual:ln/b2/relu/default/d20": "none",
    "narrow:w2/d20": "dead",
    "saturated:tanh/n100": "none",
}


@pytest.fixture(scope="module")
def calibrate():
    spec = importlib.util.spec_from_file_location("calibrate_bench", ROOT / "benchmarks" / "calibrate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.torch.set_num_threads(2)
    return module


@pytest.fixture(scope="module")
def rows(calibrate):
    cells = {f"{c.family}:{c.name}": c for c in calibrate.full_grid()}
    missing = set(CELLS) - set(cells)
    assert not missing, f"cells no longer in the grid: {sorted(missing)}"
    return {key: calibrate.evaluate(cells[key], seeds=3) for key in CELLS}


@pytest.mark.parametrize("key", list(CELLS))
def test_cell_within_10x_and_verdicts_agree(calibrate, rows, key):
    row = rows[key]
    table = calibrate.render([row])
    assert row.pred.get("ok") and row.predicted, table
    assert row.meas["hazard"] == CELLS[key], table
    assert row.agrees, table
    if row.factor is not None:
        assert row.factor <= calibrate.MAX_LOG_FACTOR, table
    else:  # only a dead net has no measured ratio to compare
        assert row.meas["dead"], table


def test_the_comparisons_are_not_vacuous(rows):
    compared = [r for r in rows.values() if r.factor is not None]
    assert len(compared) >= len(rows) - 1
    first = [r for r in compared if r.meas["first"] > 0 and (r.pred.get("first") or 0) > 0]
    assert all(abs(math.log10(r.pred["first"] / r.meas["first"])) <= 1 for r in first)


def test_saturated_fraction_is_predicted(rows):
    row = rows["saturated:tanh/n100"]
    assert abs(row.meas["saturated"] - row.pred["saturated"]) < 0.1, (row.meas, row.pred)


def test_summary_and_outputs(calibrate, rows, tmp_path):
    s = calibrate.summary(list(rows.values()))
    assert s["cells"] == len(CELLS) and s["agreement"] == 1.0 and calibrate.passed(s)
    line = calibrate.summary_line(s)
    assert line.startswith(f"{len(CELLS)} cells, worst factor") and "verdict agreement 100.0 %" in line
    calibrate.write_csv(list(rows.values()), tmp_path / "cells.csv")
    assert len((tmp_path / "cells.csv").read_text().splitlines()) == len(CELLS) + 1
    md = calibrate.render_markdown(list(rows.values()), s, 3)
    assert "| cell | ratio meas |" in md and "`w2/d20`" in md
