"""``path:line:col: CODE [severity] message`` — one line per finding, for grep, pre-commit and
editors; under ``--dynamic`` the verdict follows on the same line, in brackets.

A finding in a notebook reads ``path:cell N:line:col: CODE [severity] message`` (line within the cell)."""

from __future__ import annotations

from gradlint.reporters import verdict_line


def render(diagnostics, **_) -> str:
    out = []
    for d in diagnostics:
        where = f"{d.path}:cell {d.cell}" if d.cell is not None else d.path
        verdict = verdict_line(d)
        tail = f" [{verdict}]" if verdict else ""
        out.append(f"{where}:{d.line}:{d.column}: {d.code} [{d.severity}] {d.message}{tail}\n")
    return "".join(out)
