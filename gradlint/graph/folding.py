"""Constant folding: Python's operators on the values the builder knows (``2 * DEPTH``)."""

from __future__ import annotations

from gradlint.graph.interp_common import _BINOPS, _is_known, _span, fold_too_large
from gradlint.graph.model import UnknownKind
from gradlint.graph.values import UNKNOWN


class FoldingMixin:
    """Constant folding. A part of :class:`gradlint.graph.builder.Builder`."""

    def fold(self, op, left, right, node=None):
        fn = _BINOPS.get(type(op))
        if fn is None or not _is_known(left) or not _is_known(right):
            return UNKNOWN
        if not isinstance(left, (int, float, str, tuple)) or not isinstance(right, (int, float, str, tuple)):
            return UNKNOWN
        if fold_too_large(op, left, right):
            if node is not None:
                self.note_unknown(f"value too large to fold: `{self.text(node)[:60]}`", _span(node), UnknownKind.BUDGET)
            return UNKNOWN
        try:
            return fn(left, right)
        except Exception:  # the operation fails in Python too (1 / 0, "a" - 1): nothing to fold
            return UNKNOWN
