"""Reporters: pure functions ``render(diagnostics, ...) -> str``, one module each."""

from __future__ import annotations

import importlib

FORMATS = ("full", "concise", "json")

_MARKS = {"confirmed": "✔", "refuted": "✘", "inconclusive": "?", "not-run": "-"}


def verdict_line(d) -> str | None:
    """``✔ confirmed on cpu, 3 seeds (0.4 s): <numbers>`` for a finding checked by --dynamic."""
    if not d.evidence:
        return None
    ev = dict(d.evidence)
    verdict = ev.get("verdict", "")
    summary = ev.get("summary", "")
    if verdict == "not-run":
        return f"{_MARKS[verdict]} {summary}"
    if summary.startswith(f"{verdict}: "):
        summary = summary[len(verdict) + 2:]
    where = f" on {ev['device']}, {ev.get('seeds')} seed{'s' if ev.get('seeds') != 1 else ''}" if ev.get("device") else ""
    tail = " — kept, marked refuted" if verdict == "refuted" else ""
    return f"{_MARKS.get(verdict, '?')} {verdict}{where}: {summary}{tail}"


def render(fmt: str, diagnostics, **kwargs) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    module = importlib.import_module(f"gradlint.reporters.{fmt}")
    return module.render(diagnostics, **kwargs)
