"""``--fix`` and ``--diff`` over files: find the fixable ones, fix each, write it back atomically.

The fixing itself (libcst, one file at a time, until the fixes converge) lives in
:mod:`gradlint.fixes`; this module reads files, keeps their encoding, BOM and notebook
structure, and never overwrites a file that changed on disk since it was read.
"""

from __future__ import annotations

import codecs
import io
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
    from gradlint.engine import Settings, decode, lint_paths

    run = FixRun()
    if isinstance(settings, Settings):
        plain = replace(settings, fixes=False)

        def settings_of(_path):
            return settings
    else:  # each file its own (gradlint.config.Resolver)
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
