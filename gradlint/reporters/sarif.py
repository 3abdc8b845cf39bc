"""SARIF 2.1.0 (the OASIS standard GitHub code scanning and other CI tools read).

One run; the driver lists every rule with its documentation. Each result has exactly one
location, relative to ``%SRCROOT%`` (the ``root`` keyword argument, default the current
directory), and ``partialFingerprints`` that do not depend on line numbers (see
``stable_identities``). Columns count Unicode code points (``columnKind``). Each result's
``properties`` bag carries the finding's ``name``, ``confidence``, ``hazard`` and
``prediction`` (the objects of the ``json`` format), and ``help``/``evidence`` when present.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import gradlint
from gradlint import rule_doc_url
from gradlint.diagnostics import json_safe
from gradlint.reporters import is_outside, relative_path, stable_identities, verdict_line
from gradlint.vocab import Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/gradlint/gradlint"
FINGERPRINT_KEY = "gradlintFindingHash/v1"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _descriptor(rule) -> dict:
    sections = rule.doc_sections()
    doc = rule.documentation()
    descriptor = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": sections.get("What it does") or rule.summary},
        "help": {"text": doc or rule.summary, "markdown": doc or rule.summary},
        "helpUri": rule_doc_url(rule.code, rule.name),
        "defaultConfiguration": {"level": _LEVEL.get(rule.severity, "warning")},
    }
    properties = {}
    if rule.fix_safety:
        properties["fixSafety"] = rule.fix_safety
    if rule.options:
        properties["options"] = dict(rule.options)
    if properties:
        descriptor["properties"] = _plain(properties)
    return descriptor


def _plain(value):
    """JSON-ready copy (tuples to lists, non-finite floats to strings, anything else unknown
    to its string)."""
    return json_safe(value)


def _artifact(path: str, root: str | None) -> dict:
    rel = relative_path(path, root)
    if is_outside(rel):
        return {"uri": "file://" + quote(rel, errors="surrogateescape")}
    # a file name that is not valid UTF-8 keeps its bytes, percent-encoded
    return {"uri": quote(rel, errors="surrogateescape"), "uriBaseId": "%SRCROOT%"}


def _region(line: int, column: int, end_line: int, end_column: int) -> dict:
    line, column = max(1, line), max(1, column)
    end_line = max(line, end_line)
    end_column = max(1, end_column)
    if end_line == line:
        end_column = max(column, end_column)
    return {"startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column}


def _result(d, rule_index: dict, fingerprint: str, root: str | None) -> dict:
    text = d.message
    if d.cell is not None:
        # lines count within the notebook cell, not within the .ipynb file
        text = f"cell {d.cell}, line {d.line}, column {d.column}: {text}"
    verdict = verdict_line(d)
    if verdict:
        text = f"{text}\n{verdict}"
    physical = {"artifactLocation": _artifact(d.path, root)}
    if d.cell is None:
        physical["region"] = _region(d.line, d.column, d.end_line, d.end_column)
    result = {
        "ruleId": d.code,
        "level": _LEVEL.get(d.severity, "warning"),
        "message": {"text": text},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
    }
    if d.code in rule_index:
        result["ruleIndex"] = rule_index[d.code]
    related = []
    for n, r in enumerate(d.related):
        loc = {"id": n, "message": {"text": r.message}}
        phys = {"artifactLocation": _artifact(r.path, root)}
        if d.cell is None:
            phys["region"] = {"startLine": max(1, r.line), "startColumn": max(1, r.column)}
        else:
            loc["message"]["text"] = f"cell {d.cell}, line {r.line}: {r.message}"
        loc["physicalLocation"] = phys
        related.append(loc)
    if related:
        result["relatedLocations"] = related
    if d.fix is not None and d.fix.edits and d.cell is None:
        result["fixes"] = [
            {
                "description": {"text": f"{d.fix.title} ({d.fix.applicability})"},
                "artifactChanges": [
                    {
                        "artifactLocation": _artifact(d.path, root),
                        "replacements": [
                            {
                                "deletedRegion": _region(e.line, e.column, e.end_line, e.end_column),
                                "insertedContent": {"text": e.content},
                            }
                            for e in d.fix.edits
                        ],
                    }
                ],
            }
        ]
    properties = {
        "name": d.name,
        "confidence": d.confidence,
        "hazard": str(d.hazard),
        "prediction": d.prediction_json(),
    }
    if d.help:
        properties["help"] = d.help
    if d.evidence:
        properties["evidence"] = dict(d.evidence)
    if d.cell is not None:
        properties.update(
            cell=d.cell, cellLine=d.line, cellColumn=d.column, cellEndLine=d.end_line, cellEndColumn=d.end_column
        )
    if d.fix is not None:
        properties["fix"] = {"title": d.fix.title, "applicability": d.fix.applicability}
    result["properties"] = _plain(properties)
    return result


def document(diagnostics, root: str | None = None, sources: dict | None = None) -> dict:
    """The SARIF log as a dict."""
    from gradlint.rule import all_rules

    diagnostics = list(diagnostics)
    rules = [_descriptor(rule) for rule in all_rules()]
    known = {r["id"] for r in rules}
    for d in diagnostics:  # a code no rule class declares still gets a descriptor
        if d.code not in known:
            known.add(d.code)
            rules.append(
                {
                    "id": d.code,
                    "name": d.name,
                    "shortDescription": {"text": d.name},
                    "defaultConfiguration": {"level": _LEVEL.get(d.severity, "warning")},
                }
            )
    rule_index = {r["id"]: n for n, r in enumerate(rules)}
    identities = stable_identities(diagnostics, root, sources)
    results = [
        _result(d, rule_index, hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest(), root)
        for d, ident in zip(diagnostics, identities)
    ]
    base = Path(root or ".").resolve().as_uri()
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gradlint",
                        "version": gradlint.__version__,
                        "semanticVersion": gradlint.__version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": base if base.endswith("/") else base + "/"}},
                "columnKind": "unicodeCodePoints",
                "invocations": [{"executionSuccessful": True}],
                "results": results,
            }
        ],
    }


def render(diagnostics, root: str | None = None, sources: dict | None = None, **_) -> str:
    return json.dumps(document(diagnostics, root, sources), indent=2, ensure_ascii=False) + "\n"
