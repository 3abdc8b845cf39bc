"""``path:line:col: CODE message`` — one line per finding, for grep, pre-commit and editors.

A finding in a notebook reads ``path:cell N:line:col: CODE message`` (line within the cell)."""

from __future__ import annotations

from gradlint.reporters import verdict_line


def render(diagnostics, **_) -> str:
    out = []
    for d in diagnostics:
        where = f"{d.path}:cell {d.cell}" if d.cell is not None else d.path
        out.append(f"{where}:{d.line}:{d.column}: {d.code} {d.message}\n")
        verdict = verdict_line(d)
        if verdict:
            out.append(f"   {verdict}\n")
    return "".join(out)
