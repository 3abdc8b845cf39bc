"""The default terminal format: each finding with its source lines, related notes and help."""

from __future__ import annotations

import click

from gradlint.reporters import verdict_line
from gradlint.text import source_lines, split_lines
from gradlint.vocab import Severity, Verdict

_SEVERITY_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}


def _read_lines(path: str, cache: dict) -> list[str]:
    if path not in cache:
        cache[path] = source_lines(path)
    return cache[path]


def render(diagnostics, color: bool = False, sources: dict | None = None, **_) -> str:
    """``sources`` maps path -> text for findings on content that is not on disk; a notebook
    cell's text is keyed ``f"{path}:cell {n}"`` (without it, a cell finding has no excerpt)."""
    cache: dict = {p: split_lines(t) for p, t in (sources or {}).items()}

    def style(text, **kw):
        return click.style(text, **kw) if color else text

    out = []
    for d in diagnostics:
        sev = style(f"[{d.severity}]", fg=_SEVERITY_COLOUR.get(d.severity), bold=True)
        where = f"{d.path}:cell {d.cell}" if d.cell is not None else d.path
        out.append(
            f"{style(f'{where}:{d.line}:{d.column}:', bold=True)} {style(d.code, bold=True)} {sev} {d.message}\n"
        )
        verdict = verdict_line(d)
        if verdict:
            colour = {Verdict.CONFIRMED: "green", Verdict.REFUTED: "red"}.get(dict(d.evidence).get("verdict"))
            out.append(f"   {style(verdict, fg=colour, bold=True)}\n")
        if d.cell is not None:
            lines = cache.get(f"{d.path}:cell {d.cell}", [])
        else:
            lines = _read_lines(d.path, cache)
        if 1 <= d.line <= len(lines):
            first = max(1, d.line - 2)
            width = len(str(d.line))
            gutter = " " * width
            out.append(f"{gutter} |\n")
            for n in range(first, d.line + 1):
                out.append(f"{style(str(n).rjust(width), fg='blue')} | {lines[n - 1]}\n")
            end = d.end_column if d.end_line == d.line and d.end_column > d.column else d.column + 1
            end = min(end, len(lines[d.line - 1]) + 1) if lines[d.line - 1] else end
            caret = " " * (d.column - 1) + "^" * max(1, end - d.column)
            out.append(f"{gutter} | {style(caret, fg=_SEVERITY_COLOUR.get(d.severity))}\n")
            out.append(f"{gutter} |\n")
        for r in d.related:
            where = f"{r.path}:{r.line}" if r.path != d.path else f"line {r.line}"
            out.append(f"   = note: {r.message} ({where})\n")
        if d.help:
            out.append(f"   = help: {d.help}\n")
        if d.fix is not None:
            out.append(f"   = fix ({d.fix.applicability}): {d.fix.title}\n")
        if d.code not in ("GL001", "GL002"):
            out.append(f"   = docs: gradlint rule {d.code}\n")
        out.append("\n")
    return "".join(out)
