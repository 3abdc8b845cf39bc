"""Every finding carries ``hazard`` and ``prediction``: in the dataclass (outside equality), in
json, json-lines and SARIF (still schema-valid, still strict JSON with infinite numbers), from
``RuleContext.report`` and through the result cache."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import replace

import pytest
from test_reporters import diag, sarif_schema_validator

from gradlint.cache import ResultCache
from gradlint.diagnostics import Diagnostic, prediction_pairs
from gradlint.reporters import render
from gradlint.settings import FileResult, Settings
from gradlint.vocab import Hazard

PREDICTION = {
    "ratio": 1.5e-05,
    "first": 2.0e-06,
    "total": 0.4,
    "gain": None,
    "test": "ratio",
    "layers": [{"name": "net.0", "grad_norm": 2.0e-06}, {"name": "net.2", "grad_norm": 0.13}],
}
EXPLODED = {
    "ratio": float("inf"),
    "first": float("inf"),
    "total": float("nan"),
    "gain": float("-inf"),
    "test": "overflow",
    "layers": [{"name": "net.0", "grad_norm": float("inf")}, {"name": "net.2", "grad_norm": 1.0}],
}


def strict(text: str):
    """Parse ``text`` refusing the non-standard ``Infinity``/``NaN`` tokens."""

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def with_hazard(prediction=PREDICTION, hazard="vanishing", **kw) -> Diagnostic:
    return diag(hazard=hazard, prediction=prediction_pairs(prediction), **kw)


def test_the_dataclass_stores_plain_hashable_data_and_equality_ignores_it():
    d = with_hazard()
    # the text (as JSON, the cache or a worker give it) becomes the vocabulary's member
    assert d.hazard is Hazard.VANISHING and d.hazard == "vanishing" and json.dumps(d.hazard) == '"vanishing"'
    assert dict(d.prediction)["layers"] == (("net.0", 2.0e-06), ("net.2", 0.13))
    hash(d)
    plain = diag()
    assert plain.hazard == "none" and plain.prediction == () and plain.prediction_json() is None
    assert d == plain and hash(d) == hash(plain)
    assert replace(d, hazard="exploding") == d
    # a Hazard member or a dict given directly are normalized
    direct = diag(hazard=Hazard.EXPLODING, prediction=PREDICTION)
    assert direct.hazard is Hazard.EXPLODING
    assert direct.prediction == d.prediction
    # dataclasses.replace (used by --dynamic and notebooks) keeps them
    moved = replace(d, line=9, confidence="confirmed", evidence=(("verdict", "confirmed"),))
    assert moved.hazard == "vanishing" and moved.prediction == d.prediction


def test_prediction_json_has_the_documented_keys_in_order():
    assert with_hazard().prediction_json() == PREDICTION
    assert list(with_hazard().prediction_json()) == ["ratio", "first", "total", "gain", "test", "layers"]
    partial = diag(prediction=(("ratio", 0.5),)).prediction_json()
    assert partial == {"ratio": 0.5, "first": None, "total": None, "gain": None, "test": None, "layers": []}


def test_json_and_json_lines_carry_hazard_after_confidence_and_prediction():
    findings = [with_hazard(), diag(line=6, code="GL201", name="constant-weight-init")]
    data = strict(render("json", findings))
    assert data[0]["hazard"] == "vanishing" and data[0]["prediction"] == PREDICTION
    assert data[1]["hazard"] == "none" and data[1]["prediction"] is None
    keys = list(data[0])
    assert keys[keys.index("confidence") + 1] == "hazard"
    assert keys.index("fix") < keys.index("prediction") < keys.index("evidence")
    lines = render("json-lines", findings).splitlines()
    assert [strict(line) for line in lines] == data


def test_infinite_predictions_stay_strict_json():
    d = with_hazard(
        EXPLODED,
        hazard=Hazard.EXPLODING,
        evidence=(("verdict", "confirmed"), ("ratio", float("inf")), ("numbers", {"total": float("nan")})),
    )
    expected = {
        "ratio": "inf",
        "first": "inf",
        "total": "nan",
        "gain": "-inf",
        "test": "overflow",
        "layers": [{"name": "net.0", "grad_norm": "inf"}, {"name": "net.2", "grad_norm": 1.0}],
    }
    assert d.prediction_json() == expected
    json.dumps(d.to_json(), allow_nan=False)
    for fmt in ("json", "json-lines", "sarif"):
        text = render(fmt, [d])
        # strict parsing rejects the bare NaN/Infinity tokens (message and rule texts may say "NaN")
        strict(text.splitlines()[0] if fmt == "json-lines" else text)
    obj = strict(render("json", [d]))[0]
    assert obj["prediction"] == expected and obj["evidence"]["ratio"] == "inf"
    assert obj["evidence"]["numbers"] == {"total": "nan"}


def test_sarif_properties_carry_them_and_validate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    findings = [with_hazard(), with_hazard(EXPLODED, hazard="exploding", line=6), diag(line=7)]
    doc = strict(render("sarif", findings, root=str(tmp_path)))
    sarif_schema_validator().validate(doc)
    props = [r["properties"] for r in doc["runs"][0]["results"]]
    assert [p["hazard"] for p in props] == ["vanishing", "exploding", "none"]
    assert props[0]["prediction"] == PREDICTION
    assert props[1]["prediction"]["ratio"] == "inf"
    assert props[2]["prediction"] is None


def test_text_formats_are_unchanged_by_the_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    for fmt in ("full", "concise", "github", "gitlab", "junit"):
        a = render(fmt, [with_hazard(EXPLODED, hazard="exploding")], root=str(tmp_path))
        b = render(fmt, [diag()], root=str(tmp_path))
        assert a == b, fmt


def test_rule_context_report_takes_hazard_and_prediction():
    from types import SimpleNamespace

    from gradlint.graph.model import Span
    from gradlint.rule import RuleContext

    rule = SimpleNamespace(code="GL101", name="saturating-activation-stack", severity="error", options={})
    ctx = RuleContext("m.py", ["x = nn.Sigmoid()"], rule)
    span = Span(1, 0, 1, 4)
    ctx.report(span, "a", hazard=Hazard.VANISHING, prediction=PREDICTION)
    ctx.report(span, "b", hazard="dead", prediction=prediction_pairs(PREDICTION))
    ctx.report(span, "c")
    a, b, c = ctx.diagnostics
    assert a.hazard is Hazard.VANISHING and a.prediction_json() == PREDICTION
    assert b.hazard == "dead" and b.prediction == a.prediction
    assert c.hazard == "none" and c.prediction == ()


def test_the_result_cache_round_trips_them(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("x = 1\n")
    cache = ResultCache(str(tmp_path / "cache"), Settings())
    found = cache.lookup(str(src))
    assert found.result is None and found.data is not None
    d = with_hazard(EXPLODED, hazard="exploding", path=str(src))
    cache.store(found, FileResult([d]))
    hit = cache.lookup(str(src)).result
    assert hit is not None
    (back,) = hit.diagnostics
    assert back.hazard == "exploding" and back.prediction_json() == d.prediction_json()
    assert math.isinf(dict(back.prediction)["ratio"])


def test_a_diagnostic_pickled_before_the_fields_existed_reads_the_defaults():
    d = diag()
    state = dict(d.__dict__)
    del state["hazard"], state["prediction"]
    old = Diagnostic.__new__(Diagnostic)
    old.__dict__.update(state)
    again = pickle.loads(pickle.dumps(old))
    assert again.hazard == "none" and again.prediction == () and again.to_json()["prediction"] is None


@pytest.mark.parametrize("value", ["vanishing", "exploding", "dead", "none"])
def test_every_hazard_value_renders(value):
    assert strict(render("json", [diag(hazard=Hazard(value))]))[0]["hazard"] == value
