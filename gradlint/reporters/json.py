"""A JSON list of finding objects with stable keys (documented in the README)."""

from __future__ import annotations

import json


def render(diagnostics, **_) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2, ensure_ascii=False) + "\n"
