"""Layer 2: realistic model files with snapshots of their graph and their findings.

Snapshots live in ``fixtures/snapshots/``; refresh them with ``pytest --update-snapshots``
and review the diff. Expected findings are also marked inline (``# error: GL101``).
"""

import ast
import re

import pytest
from conftest import FIXTURES, ROOT, format_diagnostics

from gradlint.engine import analyse_source, checked_graphs
from gradlint.graph.dump import render_text
from gradlint.reporters import render
from gradlint.settings import Settings
from gradlint.text import split_lines

SNAPSHOTS = FIXTURES / "snapshots"
FILES = sorted(p for p in FIXTURES.rglob("*.py") if "snapshots" not in p.parts)
MARKER = re.compile(r"#\s*(error|warning|info):\s*(GL\d{3}(?:\s*,\s*GL\d{3})*)")


def _rel(path):
    return path.relative_to(ROOT).as_posix()


def _diagnostics(path):
    """A file's findings; files of fixtures/crossfile/ are linted with their package (a run)."""
    if "crossfile" in path.parts:
        import os

        from gradlint.run import lint_paths

        package = path.parent
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            result = lint_paths([_rel(package)], Settings(jobs=1, preview=True))
        finally:
            os.chdir(cwd)
        return [d for d in result.diagnostics if d.path == _rel(path)]
    # with the rules in preview: a rule is scaffolded with its fixture, and tested by it, from the start
    return analyse_source(path.read_bytes(), _rel(path), Settings(preview=True))


def _check_snapshot(actual: str, snapshot, update: bool):
    if update or not snapshot.exists():
        if not update:
            pytest.fail(f"missing snapshot {snapshot}; run pytest --update-snapshots and review it")
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(actual)
        return
    expected = snapshot.read_text()
    assert actual == expected, f"snapshot {snapshot.relative_to(ROOT)} differs (pytest --update-snapshots to accept)"


def test_enough_fixtures():
    assert len(FILES) >= 12


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_findings_snapshot(path, update_snapshots):
    diags = _diagnostics(path)
    actual = render("concise", diags)
    snapshot = SNAPSHOTS / path.relative_to(FIXTURES).with_suffix(".findings.txt")
    _check_snapshot(actual, snapshot, update_snapshots)


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "broken_syntax.py"], ids=_rel)
def test_graph_snapshot(path, update_snapshots):
    # as `check` builds them (issue 11: snapshot the graph in the mode check uses)
    source = path.read_text()
    graphs = checked_graphs(ast.parse(source), _rel(path), split_lines(source))[1]
    actual = render_text(graphs)
    snapshot = SNAPSHOTS / path.relative_to(FIXTURES).with_suffix(".graph.txt")
    _check_snapshot(actual, snapshot, update_snapshots)


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_inline_markers(path):
    source = path.read_text()
    expected = set()
    for lineno, line in enumerate(source.splitlines(), 1):
        for m in MARKER.finditer(line):
            for code in re.split(r"\s*,\s*", m.group(2)):
                expected.add((lineno, code, m.group(1)))
    diags = _diagnostics(path)
    actual = {(d.line, d.code, d.severity) for d in diags}
    assert actual == expected, (
        f"{_rel(path)}: markers {sorted(expected)} but gradlint reported:\n{format_diagnostics(diags)}"
    )
