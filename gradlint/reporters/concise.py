"""``path:line:col: CODE message`` — one line per finding, for grep, pre-commit and editors."""

from __future__ import annotations


def render(diagnostics, **_) -> str:
    return "".join(f"{d.path}:{d.line}:{d.column}: {d.code} {d.message}\n" for d in diagnostics)
