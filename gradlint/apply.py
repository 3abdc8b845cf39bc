"""``--fix``, ``--diff`` and ``--add-noqa`` over files: find the fixable ones, fix each, write
it back atomically.

One file is fixed by :func:`fix_source` (:func:`fix_bytes` for its bytes): lint -> apply the
applicable, non-overlapping fixes -> lint again until nothing is left to fix (at most
:data:`MAX_ROUNDS` rounds); a round whose result does not parse (``ast`` and libcst) is thrown
away. The edits themselves come from the fix edit engine, :mod:`gradlint.fixes`. Files keep
their encoding, BOM and notebook structure, and a file that changed on disk since it was read
is never overwritten.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

from gradlint.diagnostics import Diagnostic
from gradlint.files import read_source
from gradlint.fixes import apply_edits, attach_edits, line_starts, lint_with_edits, offset_at, parses, unified_diff
from gradlint.text import decode, encode, source_encoding, split_lines, write_atomic
from gradlint.vocab import Applicability

#: most lint -> fix rounds before giving up (fixes that keep producing fixes do not converge)
MAX_ROUNDS = 10


@dataclass
class FixRun:
    #: path -> [(code, fix title, how many)]
    applied: dict = field(default_factory=dict)
    diff: str = ""
    notes: list[str] = field(default_factory=list)
    #: (path, message) for paths that do not exist or cannot be listed
    errors: list = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(n for items in self.applied.values() for _, _, n in items)


def wanted(d, unsafe: bool) -> bool:
    return d.fix is not None and (d.fix.applicability == Applicability.SAFE or unsafe)


def fix_paths(paths, settings, unsafe: bool = False, write: bool = True, cache_dir: str | None = None) -> FixRun:
    """Fix every file under ``paths`` that has a fix to apply; with ``write=False`` only
    collect the unified diff."""
    from gradlint.run import lint_paths
    from gradlint.settings import Settings

    run = FixRun()
    if isinstance(settings, Settings):
        plain = replace(settings, fixes=False)

        def settings_of(_path):
            return settings
    else:  # each file its own (gradlint.config_resolve.Resolver)
        settings_of, memo = settings, {}

        def plain(path):
            own = settings_of(path)
            if own not in memo:
                memo[own] = replace(own, fixes=False)
            return memo[own]

    found = lint_paths(paths, plain, cache_dir=cache_dir)
    run.errors = list(found.errors)
    targets = sorted({d.path for d in found.diagnostics if wanted(d, unsafe)})
    for path in targets:
        satisfied = frozenset(req for p, req in found.satisfied if p == path)
        try:
            original = read_source(path)
        except OSError as exc:
            run.notes.append(f"{path}: cannot read: {exc}; not fixed")
            continue
        try:
            if path.endswith(".ipynb"):
                new, fixed, old_text, new_text = _fix_notebook(original, path, settings_of(path), unsafe, satisfied)
            else:
                outcome = fix_bytes(original, path, settings_of(path), unsafe, satisfied)
                if outcome.error:
                    run.notes.append(f"{path}: fixes not applied: {outcome.error}")
                    continue
                new, fixed, old_text, new_text = outcome.data, outcome.fixed, outcome.original, outcome.source
        except Exception as exc:  # one file's failure never loses the others' fixes
            run.notes.append(f"{path}: fixes not applied: {type(exc).__name__}: {exc}")
            continue
        if not fixed or new == original:
            continue
        if write:
            if not write_atomic(path, new, original):
                run.notes.append(f"{path} changed on disk while it was being fixed; left as it is")
                continue
        elif path.endswith(".ipynb"):
            run.diff += _notebook_diff(path, original, new)
        else:
            run.diff += unified_diff(path, old_text, new_text)
        counts = Counter((d.code, d.fix.title) for d in fixed)
        run.applied[path] = [(code, title, n) for (code, title), n in sorted(counts.items())]
    return run


def _fix_text(text: str, path: str, settings, unsafe: bool, satisfied=frozenset()):
    outcome = fix_source(text, path, settings, unsafe=unsafe, satisfied=satisfied)
    return outcome.source, list(outcome.fixed)


def _fix_notebook(original: bytes, path: str, settings, unsafe: bool, satisfied=frozenset()):
    """Fix the notebook's code cells; (new bytes, fixed findings, old code, new code)."""
    from gradlint.notebook import load, write_back

    nb = load(original)
    new_virtual, fixed = _fix_text(nb.virtual, path, settings, unsafe, satisfied)
    if not fixed:
        return original, [], nb.virtual, nb.virtual
    return write_back(nb, new_virtual), fixed, nb.virtual, new_virtual


def _notebook_diff(path: str, old: bytes, new: bytes) -> str:
    """A unified diff per changed code cell (``path:cell N``), as the notebook shows them."""
    import json

    from gradlint.notebook import _source

    out = []
    for number, (a, b) in enumerate(zip(json.loads(old)["cells"], json.loads(new)["cells"]), start=1):
        if a.get("cell_type") == "code" and _source(a) != _source(b):
            out.append(unified_diff(f"{path}:cell {number}", _source(a), _source(b)))
    return "".join(out)


# ---------------------------------------------------------------- --add-noqa
@dataclass
class NoqaRun:
    #: path -> how many lines got a directive (or more codes in one)
    added: dict = field(default_factory=dict)
    #: (path, line, codes) of the findings no comment can hide where they are
    refused: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list = field(default_factory=list)


#: findings no comment can hide: an internal error is gradlint's, not the code's
_NOT_SUPPRESSIBLE = frozenset({"GL002"})


def add_noqa(paths, settings, cache_dir: str | None = None) -> NoqaRun:
    """``--add-noqa``: give every current finding under ``paths`` a ``# noqa: CODE`` on its
    line (codes added to a ``# noqa:`` list the line has), so that a team can adopt gradlint
    on an existing codebase and see only new findings. A file that does not parse gets
    ``# gradlint: file-ignore[GL001]`` at its top. Running it again changes nothing: every
    finding it can hide is hidden. Files are written atomically, encoding and BOM kept."""
    from gradlint.run import lint_paths
    from gradlint.suppressions import noqa_edits

    run = NoqaRun()
    found = lint_paths(paths, settings, cache_dir=cache_dir)
    run.errors = list(found.errors)
    by_file: dict[str, list] = {}
    for d in found.diagnostics:
        if d.code not in _NOT_SUPPRESSIBLE:
            by_file.setdefault(d.path, []).append(d)
    for path, diags in sorted(by_file.items()):
        try:
            original = read_source(path)
        except OSError as exc:
            run.notes.append(f"{path}: cannot read: {exc}; no directive added")
            continue
        notebook = path.endswith(".ipynb")
        try:
            if notebook:
                from gradlint.notebook import load

                nb = load(original)
                text = nb.virtual
                virtual = {cell_line: n for n, cell_line in enumerate(nb.line_map) if n}
                lines_of = {d: virtual.get((d.cell, d.line)) for d in diags}
            else:
                codec, bom = source_encoding(original)
                text = decode(original)
                lines_of = {d: d.line for d in diags}
        except Exception as exc:  # noqa: BLE001 - one file's failure never loses the others
            run.notes.append(f"{path}: no directive added: {type(exc).__name__}: {exc}")
            continue
        lines = split_lines(text)
        wanted: dict[int, list[str]] = {}
        unparsed = False
        for d in diags:
            if d.code == "GL001" and notebook:  # a cell that does not parse: analysed as `pass`
                run.refused.append((path, d.line, ("GL001",)))
            elif d.code == "GL001":
                unparsed = True
            elif lines_of[d] is not None:
                wanted.setdefault(lines_of[d], []).append(d.code)
        edits, refused = noqa_edits(text, lines, wanted)
        run.refused.extend((path, n, tuple(dict.fromkeys(wanted[n]))) for n in refused)
        new_text = apply_edits(text, edits) if edits else text
        if unparsed and not notebook:
            new_text = _file_ignore(new_text, "GL001")
        if new_text == text:
            continue
        try:
            if notebook:
                from gradlint.notebook import write_back

                new = write_back(nb, new_text)
            else:
                new = bom + new_text.encode(codec)
        except Exception as exc:  # noqa: BLE001
            run.notes.append(f"{path}: no directive added: {type(exc).__name__}: {exc}")
            continue
        if not write_atomic(path, new, original):
            run.notes.append(f"{path} changed on disk while directives were being added; left as it is")
            continue
        run.added[path] = len(edits) + (1 if unparsed and not notebook else 0)
    return run


def _file_ignore(text: str, code: str) -> str:
    """``text`` with ``# gradlint: file-ignore[CODE]`` as its first line, after a shebang and
    an encoding declaration (which must stay on the first two lines)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline) if text else []
    at = 0
    while at < min(2, len(lines)) and (
        lines[at].startswith("#!") and at == 0 or re.match(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+", lines[at])
    ):
        at += 1
    lines.insert(at, f"# gradlint: file-ignore[{code}]")
    return newline.join(lines) if text else lines[0] + newline


# ---------------------------------------------------------------- fixing one file
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
    #: the new file content, encoded like the original (``fix_bytes`` only)
    data: bytes | None = None
    #: why the file was not fixed (``fix_bytes``: it cannot be decoded)
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.source != self.original


def applicable(diagnostic: Diagnostic, unsafe: bool = False) -> bool:
    """Whether ``--fix`` (``unsafe=False``) or ``--fix --unsafe-fixes`` applies this finding's fix."""
    fix = diagnostic.fix
    if fix is None or not fix.edits:
        return False
    return fix.applicability == Applicability.SAFE or (unsafe and fix.applicability == Applicability.UNSAFE)


def _lint(text: str, path: str, settings, satisfied=frozenset()):
    """The file's findings with their edits; with ``satisfied``, also the findings that hold
    through other files of the run (a training loop whose recurrent model is imported)."""
    from gradlint.engine import analyse

    if not satisfied:
        return lint_with_edits(encode(text), path, settings)
    result = analyse(encode(text), path, settings)
    across = [d for req, d in result.deferred if req in satisfied]
    if across:
        across = attach_edits(text, path, across)
    return sorted(result.diagnostics + across, key=Diagnostic.sort_key)


def _spans(d: Diagnostic, starts, length) -> list[tuple[int, int]]:
    return [
        (offset_at(starts, length, e.line, e.column), offset_at(starts, length, e.end_line, e.end_column))
        for e in d.fix.edits
    ]


def _choose(text: str, candidates: list[Diagnostic]) -> list[Diagnostic]:
    """Candidates whose edits neither overlap nor touch each other's (first come, first served)."""
    starts = line_starts(text)
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
    from gradlint.settings import Settings

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
    return new if parses(new) else None


def fix_bytes(
    data: bytes, path: str = "<string>", settings=None, unsafe: bool = False, satisfied=frozenset()
) -> FixOutcome:
    """:func:`fix_source` on a file's bytes: decoded as the engine decodes them (BOM, PEP 263
    cookie) and encoded back the same way; line endings are never translated."""
    from gradlint.settings import Settings

    settings = settings if settings is not None else Settings()
    try:
        text = decode(data)
    except (UnicodeDecodeError, LookupError, SyntaxError) as exc:
        remaining = lint_with_edits(data, path, replace(settings, fixes=True))
        return FixOutcome("", "", [], remaining, 0, True, data, f"cannot decode: {exc}")
    outcome = fix_source(text, path, settings, unsafe, satisfied)
    outcome.data = encode(outcome.source, bom=data.startswith(b"\xef\xbb\xbf")) if outcome.changed else data
    return outcome
