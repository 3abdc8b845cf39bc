"""JSON Lines: one compact JSON object per finding per line (the object of the ``json`` format)."""

from __future__ import annotations

import json


def render(diagnostics, **_) -> str:
    return "".join(json.dumps(d.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n" for d in diagnostics)
