"""Applying a diagnostic's text edits to source text (pure; no file I/O)."""

from __future__ import annotations

from gradlint.diagnostics import Edit


def _offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(l) for l in lines[: line - 1]) + column - 1


def apply_edits(text: str, edits) -> str:
    """Apply non-overlapping edits (1-based line/column, end exclusive), last first."""
    lines = text.splitlines(keepends=True)
    ordered = sorted(edits, key=lambda e: (e.line, e.column), reverse=True)
    for prev, cur in zip(ordered, ordered[1:]):
        if (cur.end_line, cur.end_column) > (prev.line, prev.column):
            raise ValueError("overlapping edits")
    for e in ordered:
        start = _offset(lines, e.line, e.column)
        end = _offset(lines, e.end_line, e.end_column)
        text = text[:start] + e.content + text[end:]
        lines = text.splitlines(keepends=True)
    return text


__all__ = ["Edit", "apply_edits"]
