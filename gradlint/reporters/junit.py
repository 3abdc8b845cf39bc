"""JUnit XML: one ``gradlint`` testsuite, a failing testcase per finding and, given
``files_checked``, a passing testcase per file without findings (for CI test reports)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from gradlint.reporters import relative_path, verdict_line

# characters XML 1.0 cannot carry at all, even escaped
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _where(d) -> str:
    return f"cell {d.cell} {d.line}:{d.column}" if d.cell is not None else f"{d.line}:{d.column}"


def render(diagnostics, root: str | None = None, files_checked=None, **_) -> str:
    diagnostics = list(diagnostics)
    flagged = {relative_path(d.path, root) for d in diagnostics}
    clean_files = []
    for path in files_checked or ():
        rel = relative_path(path, root)
        if rel not in flagged and rel not in clean_files:
            clean_files.append(rel)
    tests = len(diagnostics) + len(clean_files)
    counts = {"tests": str(tests), "failures": str(len(diagnostics)), "errors": "0", "skipped": "0"}
    suites = ET.Element("testsuites", {"name": "gradlint", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "gradlint", **counts})
    for d in diagnostics:
        path = relative_path(d.path, root)
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": _clean(path),
                "name": _clean(f"{d.code} {_where(d)}"),
                "file": _clean(path),
                "line": str(d.line),
            },
        )
        body = [
            f"{path}:{'cell ' + str(d.cell) + ':' if d.cell is not None else ''}{d.line}:{d.column}: "
            f"{d.code} [{d.severity}] {d.message}"
        ]
        verdict = verdict_line(d)
        if verdict:
            body.append(f"   {verdict}")
        for r in d.related:
            body.append(f"   = note: {r.message} ({relative_path(r.path, root)}:{r.line})")
        if d.help:
            body.append(f"   = help: {d.help}")
        if d.fix is not None:
            body.append(f"   = fix ({d.fix.applicability}): {d.fix.title}")
        failure = ET.SubElement(case, "failure", {"message": _clean(d.message), "type": d.code})
        failure.text = _clean("\n".join(body))
    for path in clean_files:
        ET.SubElement(suite, "testcase", {"classname": _clean(path), "name": "gradlint", "file": _clean(path)})
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
