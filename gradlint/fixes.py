"""Autofix: the libcst edit engine behind ``--fix``, ``--unsafe-fixes``, ``--diff``,
``--show-fixes`` and the language server's code actions.

Analysis runs on ``ast`` (fast); edits are made with libcst, which parses the one file being
fixed and rewrites it losslessly (comments, blank lines, quotes, line endings kept).

The protocol between rules and this module:

1. At report time a fixing rule attaches ``Fix(title, applicability, data=...)``: no edits,
   only plain hashable ``(key, value)`` pairs its fixer needs (spans as 1-based character
   positions, the model expression, the initializer name...). The static path never
   imports libcst.
2. With ``Settings(fixes=True)`` a run calls :func:`attach_edits` (:func:`with_edits`), which parses the file
   once with libcst and calls each fixable rule's ``fix(source, diagnostic)`` method
   (``source`` is a :class:`CstSource`: the module, its positions and parents, and helpers
   that locate nodes by position, insert statements and spell names through the file's
   own imports). The returned module becomes minimal text edits (``Fix.edits``); a fixer
   that does not apply, or fails, leaves the finding without a fix.
3. The fix loop over a file (lint -> apply the applicable, non-overlapping fixes -> lint
   again) and the file writes are :mod:`gradlint.apply`'s; the libcst view of a file that
   fixers edit is :class:`gradlint.cst.CstSource`.

libcst is imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import warnings
from dataclasses import replace
from functools import lru_cache

from gradlint.cst import CstSource
from gradlint.diagnostics import Diagnostic, Edit
from gradlint.text import LINE_BREAK
from gradlint.text import split_lines_keepends as split_lines


# ---------------------------------------------------------------- text edits
def line_starts(text: str) -> list[int]:
    """Offsets where lines start; a text ending in a line break has an empty last line."""
    return [0] + [m.end() for m in LINE_BREAK.finditer(text)]


def offset_at(starts: list[int], length: int, line: int, column: int) -> int:
    if line < 1:
        raise ValueError(f"line {line} out of range")
    if line > len(starts):
        return length
    return min(starts[line - 1] + max(column, 1) - 1, length)


def _position(starts: list[int], offset: int) -> tuple[int, int]:
    i = bisect.bisect_right(starts, offset) - 1
    return i + 1, offset - starts[i] + 1


def apply_edits(text: str, edits) -> str:
    """Apply non-overlapping edits (1-based line/column in characters, end exclusive)."""
    starts = line_starts(text)
    spans = sorted(
        (
            (
                offset_at(starts, len(text), e.line, e.column),
                offset_at(starts, len(text), e.end_line, e.end_column),
                e.content,
            )
            for e in edits
        ),
        key=lambda s: (s[0], s[1]),
    )
    for (s1, e1, _), (s2, _, _) in zip(spans, spans[1:]):
        if s2 < e1:
            raise ValueError("overlapping edits")
    for start, end, content in reversed(spans):
        if end < start:
            raise ValueError("edit ends before it starts")
        text = text[:start] + content + text[end:]
    return text


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def text_edits(old: str, new: str) -> tuple[Edit, ...]:
    """Minimal edits turning ``old`` into ``new``: changed line blocks (difflib), trimmed to
    the characters that differ. Positions refer to ``old``."""
    if old == new:
        return ()
    a, b = split_lines(old), split_lines(new)
    starts = line_starts(old)
    edits = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        before, after = "".join(a[i1:i2]), "".join(b[j1:j2])
        p = _common_prefix(before, after)
        s = _common_prefix(before[p:][::-1], after[p:][::-1])
        # never cut through a "\r\n" pair
        while p and before[p - 1] == "\r" and (before[p : p + 1] == "\n" or after[p : p + 1] == "\n"):
            p -= 1
        while (
            s
            and (before[len(before) - s : len(before) - s + 1] == "\n")
            and (
                before[len(before) - s - 1 : len(before) - s] == "\r"
                or after[len(after) - s - 1 : len(after) - s] == "\r"
            )
        ):
            s -= 1
        base = starts[i1] if i1 < len(starts) else len(old)
        start, end = base + p, base + len(before) - s
        edits.append(Edit(*_position(starts, start), *_position(starts, end), after[p : len(after) - s]))
    return tuple(edits)


def unified_diff(path: str, old: str, new: str) -> str:
    """A unified diff of one file (``--diff``); empty when nothing changes."""
    if old == new:
        return ""
    out = []
    for line in difflib.unified_diff(split_lines(old), split_lines(new), fromfile=path, tofile=path):
        out.append(line)
        if not line.endswith(("\n", "\r")):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)


# ---------------------------------------------------------------- fixers -> edits
@lru_cache(maxsize=None)
def _fixer(code: str):
    from gradlint.rule import rule_by_code

    rule = rule_by_code(code)
    if rule is None or not callable(getattr(rule, "fix", None)):
        return None
    return rule().fix


def parses(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
        import libcst

        libcst.parse_module(text)
    except Exception:
        return False
    return True


def _edits_for(source: CstSource, diagnostic: Diagnostic) -> tuple[Edit, ...]:
    fixer = _fixer(diagnostic.code)
    if fixer is None:
        return ()
    new = fixer(source, diagnostic)
    if new is None:
        return ()
    code = new.code
    if code == source.text:
        return ()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except Exception:
        return ()
    return text_edits(source.text, code)


def attach_edits(text: str, path: str, diagnostics) -> list[Diagnostic]:
    """The diagnostics with the text edits of their fixes filled in.

    ``text`` is the content the diagnostics' positions refer to. Fixes that already carry
    edits are kept as they are; the others are computed by their rule's libcst fixer on
    ``text`` parsed once. A fix that does not apply (or whose fixer fails, or a file libcst
    cannot parse) is dropped: the diagnostic is returned with ``fix=None``. Never raises.
    """
    diagnostics = list(diagnostics)
    pending = [d for d in diagnostics if d.fix is not None and not d.fix.edits]
    if not pending:
        return diagnostics
    source = None
    if any(d.fix.data for d in pending):
        try:
            source = CstSource(text)
        except Exception:
            source = None
    out = []
    for d in diagnostics:
        if d.fix is None or d.fix.edits:
            out.append(d)
            continue
        edits: tuple = ()
        if source is not None and d.fix.data:
            try:
                edits = _edits_for(source, d)
            except Exception:  # a fixer's bug costs its fix, never the run
                edits = ()
        out.append(replace(d, fix=replace(d.fix, edits=edits)) if edits else replace(d, fix=None))
    return out


def with_edits(result, source, path: str):
    """``result`` (an engine FileResult of ``source``, bytes or text) with the edits of its
    fixable findings filled in, the cross-file ones (kept when the other file agrees) too."""
    if not any(d.fix is not None for d in [*result.diagnostics, *(d for _, d in result.deferred)]):
        return result
    if isinstance(source, bytes):
        from gradlint.text import decode

        try:
            source = decode(source)
        except (UnicodeDecodeError, LookupError, SyntaxError):
            return result
    result.diagnostics = attach_edits(source, path, result.diagnostics)
    if result.deferred:
        edited = attach_edits(source, path, [d for _, d in result.deferred])
        result.deferred = [(req, d) for (req, _), d in zip(result.deferred, edited)]
    return result


def lint_with_edits(source, path: str, settings) -> list[Diagnostic]:
    """The file's findings (those that hold without other files), with their edits."""
    from gradlint.engine import analyse

    return with_edits(analyse(source, path, settings), source, path).diagnostics
