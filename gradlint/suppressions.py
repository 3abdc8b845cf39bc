"""Suppression comments: which findings a file asks to hide, and which comments hid nothing.

Three forms, all in comments (text inside strings is not a directive):

- ``# noqa`` / ``# noqa: GL101`` / ``# noqa: GL101, GL201`` (or space-separated): on the
  reported line only, as flake8 and ruff read it. A bare ``# noqa`` hides every finding on
  the line.
- ``# gradlint: ignore[GL101]`` / ``# gradlint: ignore[saturating-activation-stack]`` /
  ``# gradlint: ignore``: on the reported line, or on the ``class``/``def`` line of a scope
  the finding lies in (the whole class or function is then covered).
- ``# gradlint: file-ignore[GL101]`` / ``# gradlint: file-ignore``: anywhere in the file.

Each directive records which of its codes hid something, so that GL003
(``unused-suppression``) can report the ones that hid nothing.
"""

from __future__ import annotations

import ast
import bisect
import io
import re
import tokenize
from dataclasses import dataclass, field

#: cheap pre-check on the whole text: files with none of these have no directive
_CANDIDATE = re.compile(r"#.*?(?:noqa|gradlint\s*:)", re.IGNORECASE)
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.IGNORECASE)
_GRADLINT = re.compile(r"#\s*gradlint\s*:\s*(?P<kind>file-ignore|ignore)\b(?:\s*\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)


@dataclass
class Directive:
    kind: str  # "noqa" | "ignore" | "file-ignore"
    line: int  # 1-based line of the comment
    column: int  # 1-based character column where the directive starts
    end_column: int  # exclusive
    #: as written, in order; empty: every code
    codes: tuple[str, ...]
    #: lines this directive covers: the comment's line, or a whole class/def for ``ignore``
    first: int = 0
    last: int = 0
    used: set = field(default_factory=set)  # the written codes (or "*") that hid something
    comment: str = ""  # the whole comment the directive sits in
    comment_column: int = 0  # 1-based character column of its ``#``

    def covers(self, line: int) -> bool:
        return self.kind == "file-ignore" or self.first <= line <= self.last

    def matches(self, code: str, name: str) -> str | None:
        """The written code that selects ``code``/``name``, ``"*"`` for a bare directive."""
        if not self.codes:
            return "*"
        for written in self.codes:
            if code.startswith(written.upper()) or written == name:  # a code, a prefix (GL2) or a name
                return written
        return None


def _comments(
    text: str, lines: set[int], src_lines: list[str] | None = None, tree: ast.AST | None = None
) -> list[tuple[int, int, str]]:
    """(line, 0-based column, comment text) of the real comments on ``lines``.

    With the parsed tree, each line is tokenized on its own: a line that no string of several
    lines touches holds its own tokens (a big file with a few ``noqa`` lines is not tokenized
    whole). Otherwise, or when a candidate line is touched by such a string, the whole text."""
    if tree is not None and src_lines is not None:
        if not _multiline_strings(tree, sorted(lines)):
            out = []
            for n in sorted(lines):
                if not 1 <= n <= len(src_lines):
                    continue
                try:
                    for tok in tokenize.generate_tokens(io.StringIO(src_lines[n - 1]).readline):
                        if tok.type == tokenize.COMMENT:
                            out.append((n, tok.start[1], tok.string))
                except (tokenize.TokenError, IndentationError, SyntaxError):
                    break  # a line that does not tokenize alone (a continued bracket): the whole text
            else:
                return out
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and tok.start[0] in lines:
                out.append((tok.start[0], tok.start[1], tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def _multiline_strings(tree: ast.AST, lines: list[int]) -> list[tuple[int, int]]:
    """(first, last) lines of the string literals that span several lines (f-strings too) and
    touch one of ``lines`` (sorted). Only the statements and expressions around those lines are
    visited: a big file with a few ``noqa`` comments is not walked whole."""
    out = []
    stack = [tree]
    while stack:
        node = stack.pop()
        first = getattr(node, "lineno", None)
        if first is not None:
            last = getattr(node, "end_lineno", None) or first
            decorators = getattr(node, "decorator_list", None)
            if decorators:  # above the ``def``/``class`` line its span starts at
                first = min(first, *(d.lineno for d in decorators))
            i = bisect.bisect_left(lines, first)
            if i == len(lines) or lines[i] > last:
                continue  # no line of interest in this node
            if last > first and (
                isinstance(node, ast.JoinedStr)
                or (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))
            ):
                out.append((first, last))
        stack.extend(ast.iter_child_nodes(node))
    return out


def _scopes(tree: ast.AST | None) -> dict[int, int]:
    """``class``/``def`` header line -> last line of its body."""
    if tree is None:
        return {}
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.lineno] = node.end_lineno or node.lineno
    return out


def parse_directives(text: str, lines: list[str], tree: ast.AST | None = None) -> list[Directive]:
    """Every suppression directive of a file (fast when there is none)."""
    if not _CANDIDATE.search(text):
        return []
    candidates = {i + 1 for i, l in enumerate(lines) if "#" in l and _CANDIDATE.search(l)}
    if not candidates:
        return []
    scopes = None  # only a block directive needs the class/def scopes
    found: list[Directive] = []
    for line, col, comment in _comments(text, candidates, lines, tree):
        for m in _GRADLINT.finditer(comment):
            if scopes is None:
                scopes = _scopes(tree)
            kind = m.group("kind").lower()
            raw = m.group("codes")
            codes = tuple(c for c in re.split(r"[\s,]+", raw or "") if c)
            d = Directive(
                kind, line, col + m.start() + 1, col + m.end() + 1, codes, comment=comment, comment_column=col + 1
            )
            d.first, d.last = line, scopes.get(line, line)
            found.append(d)
        m = _NOQA.search(comment)
        if m is not None:
            codes = tuple(c for c in re.split(r"[\s,]+", m.group("codes") or "") if c)
            found.append(
                Directive(
                    "noqa",
                    line,
                    col + m.start() + 1,
                    col + m.end() + 1,
                    codes,
                    line,
                    line,
                    comment=comment,
                    comment_column=col + 1,
                )
            )
    return found


def suppressing(directives: list[Directive], code: str, name: str, line: int) -> Directive | None:
    """The directive that hides a finding (marking it used), or None."""
    hit = None
    for d in directives:
        if d.covers(line):
            written = d.matches(code, name)
            if written is not None:
                d.used.add(written)
                hit = hit or d
    return hit


def unused(
    directive: Directive, enabled_codes: set[str], known: dict[str, str], everything: bool = True
) -> tuple[list[str], list[str]]:
    """(codes that hid nothing, codes that name no rule) of one directive.

    Only gradlint's own codes are judged: ``# noqa: E501`` belongs to another tool, and a
    bare ``# noqa`` may serve one. A code whose rule is not enabled in this run cannot be
    judged and is left alone; a bare directive is judged only when ``everything`` (every rule
    is enabled for the file). ``known`` maps codes and names to codes."""
    if not directive.codes:
        if directive.kind == "noqa" or "*" in directive.used or not everything:
            return [], []
        return ["*"], []
    dead, unknown = [], []
    all_codes = set(known.values())
    for written in directive.codes:
        is_ours = written.upper().startswith("GL") or directive.kind != "noqa"
        if not is_ours or written in directive.used:
            continue
        exact = known.get(written.upper()) or known.get(written)
        codes = [exact] if exact else [c for c in all_codes if c.startswith(written.upper())]
        if not codes:
            unknown.append(written)
        elif all(c in enabled_codes for c in codes):
            dead.append(written)
    return dead, unknown


def removal(directive: Directive, drop: list[str], line_text: str):
    """(start column, end column, replacement) on the directive's line that removes the codes
    ``drop`` (``["*"]`` or every code: the whole directive, and the comment when nothing else
    is left in it). Columns are 1-based characters, end exclusive."""
    start, end = directive.column, directive.end_column
    dropped = set(drop)  # a set: a directive may list thousands of codes
    keep = [c for c in directive.codes if c not in dropped]
    if keep:
        if directive.kind == "noqa":
            text = "# noqa: " + ", ".join(keep)
        else:
            text = f"# gradlint: {directive.kind}[{', '.join(keep)}]"
        return start, end, text
    c0 = directive.comment_column
    before = directive.comment[: start - c0]
    after = directive.comment[end - c0 :]
    rest = (before + after).strip()
    if rest.strip("#").strip() == "":
        # the comment held only this directive: remove it and the spaces before it
        cut = c0
        while cut > 1 and line_text[cut - 2] in " \t":
            cut -= 1
        return cut, c0 + len(directive.comment), ""
    # other text shares the comment: remove the directive and the separator after it
    tail = len(after) - len(after.lstrip(" \t"))
    if before.strip() in ("", "#"):
        if after.lstrip(" \t").startswith("#"):
            # `# noqa: GL101  # type: ignore` -> `# type: ignore`
            return c0, end + tail, ""
        # `# noqa: GL201 (intentional)` -> `# (intentional)`: the rest stays a comment
        return c0, end + tail, "# "
    if after.strip() == "":
        while start > c0 + 1 and line_text[start - 2] in " \t":
            start -= 1
        return start, c0 + len(directive.comment), ""
    return start, end + tail, ""


_NOQA_LIST = re.compile(r"#\s*noqa\s*:\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*)", re.IGNORECASE)
_BARE_NOQA = re.compile(r"#\s*noqa\b(?!\s*:)", re.IGNORECASE)


def noqa_edits(text: str, lines: list[str], wanted: dict[int, list[str]]):
    """The edits that make ``# noqa`` hide ``wanted`` (1-based line -> codes) on each line:
    the codes are added to the line's ``# noqa: ...`` list when it has one, else
    ``  # noqa: CODES`` is appended. Returns ``(edits, refused)``: ``refused`` are the lines
    where a comment cannot go (the line ends inside a string of several lines, or continues
    with a backslash, or lies past what tokenizes). A line whose codes are all there already
    (or that has a bare ``# noqa``) gets no edit. One pass of the tokenizer for all the lines."""
    from gradlint.diagnostics import Edit

    wanted = {n: c for n, c in wanted.items() if 1 <= n <= len(lines) and c}
    if not wanted:
        return [], []
    last = max(wanted)
    comments: dict[int, tuple[int, str]] = {}  # line -> (0-based column, comment)
    inside: set[int] = set()  # lines whose end lies inside a token (a string of several lines)
    reached = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.start[0] > last:
                reached = last
                break
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = (tok.start[1], tok.string)
            elif tok.end[0] > tok.start[0] and tok.type not in (tokenize.NL, tokenize.NEWLINE):
                inside.update(range(tok.start[0], tok.end[0]))
            reached = tok.end[0]
        else:
            reached = len(lines)
    except (tokenize.TokenError, SyntaxError):
        pass  # what came before the failure is known; the lines after it are refused
    edits, refused = [], []
    for n in sorted(wanted):
        codes = list(dict.fromkeys(c.upper() for c in wanted[n]))
        source = lines[n - 1]
        if n > reached or n in inside or (n not in comments and source.rstrip().endswith("\\")):
            refused.append(n)
            continue
        comment = comments.get(n)
        if comment is not None:
            if _BARE_NOQA.search(comment[1]):
                continue  # a bare # noqa hides everything already
            m = _NOQA_LIST.search(comment[1])
            if m is not None:
                have = {c.upper() for c in re.split(r"[\s,]+", m.group("codes"))}
                missing = [c for c in codes if c not in have]
                if missing:
                    at = comment[0] + m.end("codes") + 1
                    edits.append(Edit(n, at, n, at, "".join(f", {c}" for c in missing)))
                continue
        stripped = len(source.rstrip())
        edits.append(Edit(n, stripped + 1, n, len(source) + 1, f"  # noqa: {', '.join(codes)}"))
    return edits, refused
