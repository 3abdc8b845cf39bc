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
3. :func:`fix_source` / :func:`fix_bytes` / :func:`fix_path` loop lint -> apply the
   applicable, non-overlapping fixes -> lint again until nothing is left to fix (at most
   :data:`MAX_ROUNDS` rounds); a round whose result does not parse (``ast`` and libcst) is
   thrown away. :func:`write_atomic` writes the result only if the file did not change on
   disk meanwhile.

libcst is imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import io
import tokenize
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache

from gradlint.diagnostics import Diagnostic, Edit
from gradlint.files import read_source
from gradlint.text import LINE_BREAK, write_atomic  # noqa: F401  (--fix writes through it)
from gradlint.text import split_lines_keepends as split_lines

#: most lint -> fix rounds before giving up (fixes that keep producing fixes do not converge)
MAX_ROUNDS = 10


# ---------------------------------------------------------------- text edits
def _line_starts(text: str) -> list[int]:
    """Offsets where lines start; a text ending in a line break has an empty last line."""
    return [0] + [m.end() for m in LINE_BREAK.finditer(text)]


def _offset(starts: list[int], length: int, line: int, column: int) -> int:
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
    starts = _line_starts(text)
    spans = sorted(
        (
            (
                _offset(starts, len(text), e.line, e.column),
                _offset(starts, len(text), e.end_line, e.end_column),
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
    starts = _line_starts(old)
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


# ---------------------------------------------------------------- the libcst side
@lru_cache(maxsize=1)
def _replacer_class():
    import libcst

    class _Replacer(libcst.CSTTransformer):
        """Rebuilds a tree, replacing the nodes (of the original tree) named in ``table``."""

        def __init__(self, table):
            super().__init__()
            self.table = table

        def on_leave(self, original_node, updated_node):
            change = self.table.get(id(original_node))
            return updated_node if change is None else change(updated_node)

    return _Replacer


class CstSource:
    """One file parsed by libcst, with what fixers need to locate and rewrite nodes.

    Nodes are located by ``PositionProvider`` ranges (1-based lines, 0-based character
    columns, end exclusive; parentheses around an expression excluded, as in ``ast``).
    """

    def __init__(self, text: str):
        import libcst
        from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

        self.text = text
        wrapper = MetadataWrapper(libcst.parse_module(text))
        self.module = wrapper.module
        if self.module.code != text:  # libcst is lossless; anything else is not ours to edit
            raise ValueError("libcst does not round-trip this file")
        self.positions = wrapper.resolve(PositionProvider)
        self.parents = wrapper.resolve(ParentNodeProvider)

    # ------------------------------------------------------------ reading
    def code(self, node) -> str:
        return self.module.code_for_node(node)

    def node_at(self, where, kinds=None):
        """The innermost node of one of ``kinds`` whose range contains ``where``
        (``(line, column, end_line, end_column)``, 1-based characters, end exclusive): the
        node with exactly that range when there is one. None when there is none."""
        import libcst

        kinds = kinds or (libcst.CSTNode,)
        line, column, end_line, end_column = where
        want_start, want_end = (line, column - 1), (end_line, end_column - 1)
        best = best_range = None
        for node, r in self.positions.items():
            if not isinstance(node, kinds):
                continue
            start, end = (r.start.line, r.start.column), (r.end.line, r.end.column)
            if not (start <= want_start and want_end <= end):
                continue
            # the nodes that contain ``where`` are nested: keep the innermost (a call
            # rather than the expression statement of the same range)
            if best is None or (
                best_range[0] <= start
                and end <= best_range[1]
                and ((start, end) != best_range or self.contains(best, node))
            ):
                best, best_range = node, (start, end)
        return best

    def node_for(self, diagnostic: Diagnostic, kinds=None):
        """The node a diagnostic's own span points at."""
        return self.node_at((diagnostic.line, diagnostic.column, diagnostic.end_line, diagnostic.end_column), kinds)

    def parent(self, node):
        return self.parents.get(node)

    def ancestors(self, node):
        node = self.parents.get(node)
        while node is not None:
            yield node
            node = self.parents.get(node)

    def enclosing(self, node, kinds):
        for a in self.ancestors(node):
            if isinstance(a, kinds):
                return a
        return None

    def before(self, a, b) -> bool:
        """``a`` ends at or before the start of ``b``."""
        ra, rb = self.positions[a], self.positions[b]
        return (ra.end.line, ra.end.column) <= (rb.start.line, rb.start.column)

    def contains(self, outer, inner) -> bool:
        return any(x is outer for x in self.ancestors(inner))

    def statement_of(self, node):
        """``(small_statement, container)`` holding ``node``: the simple statement it is part
        of, and the ``SimpleStatementLine``/``SimpleStatementSuite`` around it. None when the
        node sits in a compound statement's header (``if x.backward():``)."""
        import libcst

        small = node if isinstance(node, libcst.BaseSmallStatement) else None
        if small is None:
            for a in self.ancestors(node):
                if isinstance(a, libcst.BaseSmallStatement):
                    small = a
                    break
                if isinstance(a, (libcst.BaseCompoundStatement, libcst.Lambda)):
                    return None
        if small is None:
            return None
        container = self.parent(small)
        if not isinstance(container, (libcst.SimpleStatementLine, libcst.SimpleStatementSuite)):
            return None
        return small, container

    def calls_in(self, node, attr: str) -> list:
        """Calls of a method or function named ``attr`` inside ``node``."""
        import libcst

        found = []
        for n in self.positions:
            if isinstance(n, libcst.Call) and self._callee_name(n) == attr and (n is node or self.contains(node, n)):
                found.append(n)
        return found

    @staticmethod
    def _callee_name(call) -> str | None:
        import libcst

        if isinstance(call.func, libcst.Attribute):
            return call.func.attr.value
        if isinstance(call.func, libcst.Name):
            return call.func.value
        return None

    # ------------------------------------------------------------ names and imports
    def bindings(self, near) -> list[tuple[str, str]]:
        """``(name, qualified name)`` for the imports visible from ``near``, in source order:
        ``import torch as T`` -> ``("T", "torch")``, ``import torch.nn`` -> ``("torch", "torch")``,
        ``from torch.nn.utils import clip_grad_norm_ as clip`` ->
        ``("clip", "torch.nn.utils.clip_grad_norm_")``."""
        import libcst
        from libcst.helpers import get_full_name_for_node

        scopes = (libcst.FunctionDef, libcst.ClassDef, libcst.Lambda)
        near_scope = self.enclosing(near, scopes)
        found = []
        for node in self.positions:
            if not isinstance(node, (libcst.Import, libcst.ImportFrom)):
                continue
            scope = self.enclosing(node, scopes)
            if scope is not None:
                # a function's own imports (before the use); a class body's only in that body
                if scope is not near_scope and not (
                    isinstance(scope, libcst.FunctionDef) and self.contains(scope, near)
                ):
                    continue
            if (scope is not None or near_scope is None) and not self.before(node, near):
                continue
            pairs = []
            if isinstance(node, libcst.Import):
                for alias in node.names:
                    full = get_full_name_for_node(alias.name)
                    if not full:
                        continue
                    if alias.asname is not None and isinstance(alias.asname.name, libcst.Name):
                        pairs.append((alias.asname.name.value, full))
                    else:
                        head = full.split(".")[0]
                        pairs.append((head, head))
            else:
                if node.relative or node.module is None or isinstance(node.names, libcst.ImportStar):
                    continue
                module = get_full_name_for_node(node.module)
                for alias in node.names:
                    if not isinstance(alias.name, libcst.Name):
                        continue
                    obj = alias.name.value
                    name = (
                        alias.asname.name.value
                        if alias.asname is not None and isinstance(alias.asname.name, libcst.Name)
                        else obj
                    )
                    pairs.append((name, f"{module}.{obj}"))
            r = self.positions[node]
            found.extend(((r.start.line, r.start.column), p) for p in pairs)
        found.sort(key=lambda x: x[0])
        return [p for _, p in found]

    def spell(self, qualified: str, near, prefer=None, same_as=(), fallback=None):
        """How to write ``qualified`` (``torch.nn.utils.clip_grad_norm_``) at ``near`` through
        the file's own imports: returns ``(text, import_to_add)`` where ``import_to_add`` is
        None or ``(module, obj)`` for :meth:`add_import`.

        ``prefer``: qualified prefixes to try, in order (default: longest first);
        ``same_as``: other qualified names of the same object; ``fallback``: the import to add
        when nothing fits (default ``import <top package>``)."""
        parts = qualified.split(".")
        prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        order = list(prefer) if prefer else prefixes
        bindings = self.bindings(near)
        for exact in (qualified, *same_as):
            for name, q in bindings:
                if q == exact:
                    return name, None
        for prefix in order:
            if prefix not in prefixes:
                continue
            for name, q in bindings:
                if q == prefix:
                    return name + qualified[len(prefix) :], None
        if fallback is None:
            return qualified, (parts[0], None)
        module, obj = fallback
        if obj is None:
            return qualified, (module, None)
        return obj + qualified[len(f"{module}.{obj}") :], (module, obj)

    @staticmethod
    def add_import(module, item):
        """``module`` with ``import <mod>`` / ``from <mod> import <obj>`` added after the
        file's first import block (after a docstring and ``__future__`` imports), unless it
        is there already (libcst's ``AddImportsVisitor``)."""
        if item is None:
            return module
        from libcst.codemod import CodemodContext
        from libcst.codemod.visitors import AddImportsVisitor, ImportItem

        name, obj = item
        return module.visit(AddImportsVisitor(CodemodContext(), [ImportItem(name, obj)]))

    # ------------------------------------------------------------ building and rewriting
    def statement(self, code: str):
        """One statement in this file's conventions (line endings)."""
        import libcst

        return libcst.parse_statement(code, config=self.module.config_for_parsing)

    def expression(self, code: str):
        import libcst

        return libcst.parse_expression(code, config=self.module.config_for_parsing)

    def insert_after(self, anchor, statements, table=None) -> dict | None:
        """Schedule ``statements`` (``SimpleStatementLine`` nodes) right after the simple
        statement holding ``anchor``, in the same block; returns the replacement table for
        :meth:`rewrite` (``table`` extended), or None where they cannot go (the statement
        returns or raises, or sits in a compound statement's header)."""
        import libcst

        found = self.statement_of(anchor)
        if found is None:
            return None
        small, container = found
        if isinstance(small, (libcst.Return, libcst.Raise, libcst.Continue, libcst.Break)):
            return None
        table = {} if table is None else table
        if isinstance(container, libcst.SimpleStatementLine) and container.body[-1] is small:
            previous = table.get(id(container))

            def add_lines(updated):
                updated = updated if previous is None else previous(updated)
                if isinstance(updated, libcst.FlattenSentinel):
                    return libcst.FlattenSentinel([*updated.nodes, *statements])
                return libcst.FlattenSentinel([updated, *statements])

            table[id(container)] = add_lines
        else:  # ``a.backward(); opt.step()`` or ``if c: a.backward()``: stay on the line
            smalls = [s.with_changes(semicolon=libcst.MaybeSentinel.DEFAULT) for line in statements for s in line.body]
            table[id(small)] = lambda updated: libcst.FlattenSentinel([updated, *smalls])
        return table

    def rewrite(self, table: dict):
        """The module with each original node ``n`` replaced by ``table[id(n)](updated_n)``
        (a node, ``libcst.RemovalSentinel.REMOVE`` or a ``libcst.FlattenSentinel``)."""
        if not table:
            return self.module
        return self.module.visit(_replacer_class()(table))


# ---------------------------------------------------------------- fixers -> edits
@lru_cache(maxsize=None)
def _fixer(code: str):
    from gradlint.rule import rule_by_code

    rule = rule_by_code(code)
    if rule is None or not callable(getattr(rule, "fix", None)):
        return None
    return rule().fix


def _parses(text: str) -> bool:
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


# ---------------------------------------------------------------- fixing files
@dataclass
class FixOutcome:
    """What fixing one file did."""

    #: the text before and after
    original: str
    source: str
    #: the diagnostics whose fixes were applied (positions as in the round that fixed them)
    fixed: list[Diagnostic] = field(default_factory=list)
    #: the diagnostics of the fixed text (their fixes carry edits where they can be applied)
    remaining: list[Diagnostic] = field(default_factory=list)
    rounds: int = 0
    #: False when fixes kept producing new fixes for MAX_ROUNDS rounds (or went in a circle)
    converged: bool = True
    #: the new file content, encoded like the original (``fix_bytes``/``fix_path`` only)
    data: bytes | None = None
    #: ``fix_path`` with ``write=True``: whether the file was written (None: nothing to write)
    written: bool | None = None
    #: why the file was not fixed or not written, when something went wrong
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.source != self.original


def applicable(diagnostic: Diagnostic, unsafe: bool = False) -> bool:
    """Whether ``--fix`` (``unsafe=False``) or ``--fix --unsafe-fixes`` applies this finding's fix."""
    fix = diagnostic.fix
    if fix is None or not fix.edits:
        return False
    return fix.applicability == "safe" or (unsafe and fix.applicability == "unsafe")


def _source_encoding(text: str) -> str:
    """The encoding a PEP 263 cookie names (utf-8 without one)."""
    head = text[:400]
    if "coding" not in head:
        return "utf-8"
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(head.encode("utf-8", "surrogatepass")).readline)
    except (SyntaxError, LookupError):
        return "utf-8"
    return "utf-8" if encoding == "utf-8-sig" else encoding


def _encode(text: str, bom: bool = False) -> bytes:
    encoding = _source_encoding(text)
    try:
        data = text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        data = text.encode("utf-8", "surrogatepass")
    return (b"\xef\xbb\xbf" + data) if bom else data


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


def _lint(text: str, path: str, settings, satisfied=frozenset()):
    """The file's findings with their edits; with ``satisfied``, also the findings that hold
    through other files of the run (a training loop whose recurrent model is imported)."""
    from gradlint.engine import analyse

    if not satisfied:
        return lint_with_edits(_encode(text), path, settings)
    result = analyse(_encode(text), path, settings)
    across = [d for req, d in result.deferred if req in satisfied]
    if across:
        across = attach_edits(text, path, across)
    return sorted(result.diagnostics + across, key=Diagnostic.sort_key)


def _spans(d: Diagnostic, starts, length) -> list[tuple[int, int]]:
    return [
        (_offset(starts, length, e.line, e.column), _offset(starts, length, e.end_line, e.end_column))
        for e in d.fix.edits
    ]


def _choose(text: str, candidates: list[Diagnostic]) -> list[Diagnostic]:
    """Candidates whose edits neither overlap nor touch each other's (first come, first served)."""
    starts = _line_starts(text)
    taken: list[tuple[int, int]] = []
    chosen = []
    for d in candidates:
        spans = _spans(d, starts, len(text))
        if any(s <= e2 and s2 <= e for s, e in spans for s2, e2 in taken):
            continue
        taken.extend(spans)
        chosen.append(d)
    return chosen


def _fix_key(d: Diagnostic) -> tuple:
    return (d.code, d.fix.title, d.message)


def fix_source(
    text: str, path: str = "<string>", settings=None, unsafe: bool = False, satisfied=frozenset()
) -> FixOutcome:
    """Apply the fixes of one file's findings until none is left: safe fixes, and unsafe
    ones too when ``unsafe``. Each round lints the current text, applies the applicable
    non-overlapping fixes, and keeps the result only if it parses (``ast`` and libcst);
    otherwise the round's fixes are tried one by one and the ones that break the file are
    skipped from then on. ``satisfied``: the requirements of cross-file findings that held in
    the run (``RunResult.satisfied``), so that they are fixed too. Pure: no file I/O."""
    from gradlint.engine import Settings

    settings = replace(settings if settings is not None else Settings(), fixes=True)
    current = text
    seen = {current}
    fixed: list[Diagnostic] = []
    rejected: set = set()
    rounds = 0
    converged = True
    diagnostics = _lint(current, path, settings, satisfied)
    while True:
        candidates = [d for d in diagnostics if applicable(d, unsafe) and _fix_key(d) not in rejected]
        if not candidates:
            break
        if rounds >= MAX_ROUNDS:
            converged = False
            break
        rounds += 1
        chosen = _choose(current, sorted(candidates, key=Diagnostic.sort_key))
        new = _apply(current, chosen)
        if new is None:
            # something in this round breaks the file: apply the first fix that does not,
            # and skip the ones before it from now on
            for d in chosen:
                new = _apply(current, [d])
                if new is not None:
                    chosen = [d]
                    break
                rejected.add(_fix_key(d))
            else:
                continue  # every fix of the round rejected; look at what is left
        if new in seen:
            converged = False
            current = new
            fixed.extend(chosen)
            diagnostics = _lint(current, path, settings, satisfied)
            break
        seen.add(new)
        current = new
        fixed.extend(chosen)
        diagnostics = _lint(current, path, settings, satisfied)
    return FixOutcome(text, current, fixed, diagnostics, rounds, converged)


def _apply(text: str, chosen: list[Diagnostic]) -> str | None:
    try:
        new = apply_edits(text, [e for d in chosen for e in d.fix.edits])
    except ValueError:
        return None
    return new if _parses(new) else None


def fix_bytes(data: bytes, path: str = "<string>", settings=None, unsafe: bool = False) -> FixOutcome:
    """:func:`fix_source` on a file's bytes: decoded as the engine decodes them (BOM, PEP 263
    cookie) and encoded back the same way; line endings are never translated."""
    from gradlint.engine import Settings
    from gradlint.text import decode

    settings = settings if settings is not None else Settings()
    try:
        text = decode(data)
    except (UnicodeDecodeError, LookupError, SyntaxError) as exc:
        remaining = lint_with_edits(data, path, replace(settings, fixes=True))
        return FixOutcome("", "", [], remaining, 0, True, data, None, f"cannot decode: {exc}")
    outcome = fix_source(text, path, settings, unsafe)
    outcome.data = _encode(outcome.source, bom=data.startswith(b"\xef\xbb\xbf")) if outcome.changed else data
    return outcome


def fix_path(path: str, settings=None, unsafe: bool = False, write: bool = True) -> FixOutcome:
    """Fix one file on disk (``--fix``; ``write=False`` for ``--diff``, which writes nothing).

    The file is written atomically, and only if its content did not change since it was
    read (``outcome.written`` is False and ``outcome.error`` says why otherwise)."""
    try:
        original = read_source(path)
    except OSError as exc:
        return FixOutcome("", "", error=f"cannot read: {exc}")
    outcome = fix_bytes(original, path, settings, unsafe)
    if write and outcome.changed and outcome.data is not None:
        try:
            outcome.written = write_atomic(path, outcome.data, original)
        except OSError as exc:
            outcome.written = False
            outcome.error = f"cannot write: {exc.strerror or exc}"
        else:
            if not outcome.written:
                outcome.error = "changed on disk while it was being fixed; not written"
    return outcome


__all__ = [
    "CstSource",
    "Edit",
    "FixOutcome",
    "MAX_ROUNDS",
    "applicable",
    "apply_edits",
    "attach_edits",
    "lint_with_edits",
    "with_edits",
    "fix_bytes",
    "fix_path",
    "fix_source",
    "split_lines",
    "text_edits",
    "unified_diff",
    "write_atomic",
]
