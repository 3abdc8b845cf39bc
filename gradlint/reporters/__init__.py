"""Reporters: pure functions ``render(diagnostics, ...) -> str``, one module each."""

from __future__ import annotations

import importlib

FORMATS = ("full", "concise", "json")


def render(fmt: str, diagnostics, **kwargs) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    module = importlib.import_module(f"gradlint.reporters.{fmt}")
    return module.render(diagnostics, **kwargs)
