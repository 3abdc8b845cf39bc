"""--dynamic --report: the static flow model's prediction drawn over the measured bars.

Runs the real pipeline the CLI runs for ``--dynamic --report`` (lint → confirm → write_report)
on a 10-layer sigmoid stack, one seed on the CPU; skipped cleanly without torch or matplotlib.
"""

from __future__ import annotations

import math
import textwrap

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from gradlint.dynamic import DynamicOptions, confirm  # noqa: E402
from gradlint.dynamic.chart_data import model_prediction, prediction_comparison, prediction_series  # noqa: E402
from gradlint.dynamic.charts import PREDICTION_LABEL, chart  # noqa: E402
from gradlint.dynamic.report import write_report  # noqa: E402
from gradlint.run import lint_paths  # noqa: E402
from gradlint.settings import Settings  # noqa: E402

MODEL = textwrap.dedent(
    """
    import torch.nn as nn


    class DeepSigmoid(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for _ in range(10):
                layers += [nn.Linear(32, 32), nn.Sigmoid()]
            self.blocks = nn.Sequential(*layers)
            self.head = nn.Linear(32, 4)

        def forward(self, x):
            return self.head(self.blocks(x))
    """
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pred")
    (root / "deep_sigmoid.py").write_text(MODEL)
    static = lint_paths([str(root / "deep_sigmoid.py")], Settings()).diagnostics
    options = DynamicOptions(device="cpu", seeds=1, timeout=120, report=str(root / "rep"))
    outcome = confirm(static, options)
    index = write_report(options.report, outcome, options.thresholds)
    return root, outcome, index


def _the_model(outcome):
    assert len(outcome.models) == 1, outcome.notes
    return outcome.models[0]


def test_series_is_aligned_with_the_bars_and_carries_the_prediction(run):
    _, outcome, _ = run
    m = _the_model(outcome)
    pred = model_prediction(m, outcome.diagnostics)
    assert pred and pred["layers"], "the GL101 finding carries the flow model's prediction"
    finding = next(outcome.diagnostics[i] for i in m.findings if outcome.diagnostics[i].prediction)
    assert finding.code == "GL101"
    series = prediction_series(m, outcome.diagnostics)
    bars = [entry["name"] for entry in m.layers]
    assert [name for name, _ in series] == bars  # one point per bar, in the bars' order
    assert bars[0] == "blocks.0" and bars[-1] == "head" and len(bars) == 11
    predicted = dict(pred["layers"])
    for name, value in series:
        if name in predicted:
            assert value == pytest.approx(predicted[name])
        else:
            assert value is None
    assert sum(v is not None for _, v in series) >= 2
    # the prediction sits near the measurement: a vanishing stack, within a decade or two per layer
    measured = {
        entry["name"]: math.exp(sum(math.log(x) for x in entry["norms"]) / len(entry["norms"])) for entry in m.layers
    }
    assert series[0][1] < 1e-5 and measured["blocks.0"] < 1e-5
    for name, value in series:
        if value is not None:
            assert 1e-2 < value / measured[name] < 1e2, (name, value, measured[name])


def test_chart_draws_the_prediction_line(run, tmp_path):
    _, outcome, _ = run
    m = _the_model(outcome)
    drawn = chart(m, outcome.diagnostics, {}, tmp_path / "one.svg")
    assert drawn["layers"] == [entry["name"] for entry in m.layers]
    assert drawn["predicted"] == prediction_series(m, outcome.diagnostics)
    assert any(v is not None for _, v in drawn["predicted"])
    assert "<svg" in (tmp_path / "one.svg").read_text()


def test_chart_breaks_the_line_where_a_layer_has_no_prediction(run, tmp_path):
    from dataclasses import replace

    _, outcome, _ = run
    m = _the_model(outcome)
    diagnostics = list(outcome.diagnostics)
    i = next(i for i in m.findings if diagnostics[i].prediction)
    pred = dict(diagnostics[i].prediction)
    kept = tuple((n, v) for n, v in pred["layers"] if n != "blocks.4")
    diagnostics[i] = replace(diagnostics[i], prediction=tuple({**pred, "layers": kept}.items()))
    series = dict(prediction_series(m, diagnostics))
    assert series["blocks.4"] is None and series["blocks.2"] is not None and series["blocks.6"] is not None


def test_page_compares_predicted_and_measured(run):
    root, outcome, index = run
    m = _the_model(outcome)
    page = index.read_text(encoding="utf-8")
    c = prediction_comparison(m, outcome.diagnostics)
    assert c["first_layer"] == "blocks.0" and c["last_layer"] == "head"
    (p_ratio, m_ratio), (p_first, m_first) = c["ratio"], c["first"]
    pred = model_prediction(m, outcome.diagnostics)
    assert p_ratio == pytest.approx(pred["ratio"]) and p_first == pytest.approx(pred["first"])
    assert f"predicted ‖∇W blocks.0‖/‖∇W head‖ {p_ratio:.1e}, measured {m_ratio:.1e}" in page
    assert f"predicted ‖∇W blocks.0‖ {p_first:.1e}, measured {m_first:.1e}" in page
    # the measured ratio is the verdict's own number (one seed, same layer pair)
    finding = outcome.diagnostics[m.findings[0]]
    assert m_ratio == pytest.approx(dict(finding.evidence)["ratio"])
    svgs = list((root / "rep").glob("*.svg"))
    assert len(svgs) == 1 and "<svg" in svgs[0].read_text()
    assert svgs[0].name in page
    assert PREDICTION_LABEL == "predicted (static flow model)"
