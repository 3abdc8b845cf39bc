"""``--fix`` and ``--diff`` over files: find the fixable ones, fix each, write it back atomically.

The fixing itself (libcst, one file at a time, until the fixes converge) lives in
:mod:`gradlint.fixes`; this module reads files, keeps their encoding, BOM and notebook
structure, and never overwrites a file that changed on disk since it was read.
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize
from collections import Counter
from dataclasses import dataclass, field, replace

from gradlint.files import read_source


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


def _encoding(data: bytes) -> tuple[str, bytes]:
    """(codec, BOM) a Python file was written in."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8", codecs.BOM_UTF8
    if b"coding" in data[:400]:
        try:
            return tokenize.detect_encoding(io.BytesIO(data).readline)[0], b""
        except SyntaxError:
            pass
    return "utf-8", b""


def wanted(d, unsafe: bool) -> bool:
    return d.fix is not None and (d.fix.applicability == "safe" or unsafe)


def fix_paths(paths, settings, unsafe: bool = False, write: bool = True, cache_dir: str | None = None) -> FixRun:
    """Fix every file under ``paths`` that has a fix to apply; with ``write=False`` only
    collect the unified diff."""
    from gradlint.engine import Settings
    from gradlint.run import lint_paths
    from gradlint.text import decode

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
                codec, bom = _encoding(original)
                old_text = decode(original)
                new_text, fixed = _fix_text(old_text, path, settings_of(path), unsafe, satisfied)
                new = bom + new_text.encode(codec)
        except Exception as exc:  # one file's failure never loses the others' fixes
            run.notes.append(f"{path}: fixes not applied: {type(exc).__name__}: {exc}")
            continue
        if not fixed or new == original:
            continue
        if write:
            from gradlint.fixes import write_atomic

            if not write_atomic(path, new, original):
                run.notes.append(f"{path} changed on disk while it was being fixed; left as it is")
                continue
        elif path.endswith(".ipynb"):
            run.diff += _notebook_diff(path, original, new)
        else:
            from gradlint.fixes import unified_diff

            run.diff += unified_diff(path, old_text, new_text)
        counts = Counter((d.code, d.fix.title) for d in fixed)
        run.applied[path] = [(code, title, n) for (code, title), n in sorted(counts.items())]
    return run


def _fix_text(text: str, path: str, settings, unsafe: bool, satisfied=frozenset()):
    from gradlint.fixes import fix_source

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

    from gradlint.fixes import unified_diff
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
    from gradlint.fixes import apply_edits, write_atomic
    from gradlint.run import lint_paths
    from gradlint.suppressions import noqa_edits
    from gradlint.text import decode, split_lines

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
                codec, bom = _encoding(original)
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
