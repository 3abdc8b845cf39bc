"""GitLab Code Quality report: a JSON array of issues for merge-request widgets.

Paths are relative to ``root``; fingerprints are MD5 hex digests of an identity that does
not contain line numbers (``stable_identities``), so an issue keeps its fingerprint when
lines are inserted above it.
"""

from __future__ import annotations

import hashlib
import json

from gradlint.reporters import relative_path, stable_identities
from gradlint.vocab import Severity

_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}


def issues(diagnostics, root: str | None = None, sources: dict | None = None) -> list[dict]:
    diagnostics = list(diagnostics)
    out = []
    for d, ident in zip(diagnostics, stable_identities(diagnostics, root, sources)):
        if d.cell is not None:
            # lines count within the notebook cell, not within the .ipynb file
            description = f"{d.code} cell {d.cell}, line {d.line}: {d.message}"
            lines = {"begin": 1}
        else:
            description = f"{d.code} {d.message}"
            lines = {"begin": max(1, d.line), "end": max(1, d.line, d.end_line)}
        out.append(
            {
                "description": description,
                "check_name": d.code,
                "fingerprint": hashlib.md5(ident.encode("utf-8", "surrogateescape")).hexdigest(),
                "severity": _SEVERITY.get(d.severity, "minor"),
                "location": {"path": relative_path(d.path, root), "lines": lines},
            }
        )
    return out


def render(diagnostics, root: str | None = None, sources: dict | None = None, **_) -> str:
    return json.dumps(issues(diagnostics, root, sources), indent=2, ensure_ascii=False) + "\n"
