"""Reporters: pure functions ``render(diagnostics, **kwargs) -> str``, one module each.

Every reporter accepts, and ignores what it does not use of, these keyword arguments:

- ``color`` (bool): ANSI colour (``full`` only);
- ``root`` (str): the project/repository root; ``github``, ``sarif``, ``gitlab`` and ``junit``
  print paths relative to it, with forward slashes (default: the current directory;
  ``github`` prefers ``$GITHUB_WORKSPACE`` when it is set);
- ``files_checked`` (list of paths): ``junit`` adds a passing testcase per clean file;
- ``sources`` (dict): path -> text for content that is not on disk; a notebook cell's
  text is keyed ``f"{path}:cell {n}"``.

Module names use underscores where the format name has a dash (``json-lines``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections import Counter

from gradlint.text import source_lines, split_lines
from gradlint.vocab import Applicability, Verdict

FORMATS = ("full", "concise", "json", "json-lines", "github", "sarif", "junit", "gitlab")

_MARKS = {Verdict.CONFIRMED: "✔", Verdict.REFUTED: "✘", Verdict.INCONCLUSIVE: "?", "not-run": "-"}


def verdict_line(d) -> str | None:
    """``✔ confirmed on cpu, 3 seeds (0.4 s): <numbers>`` for a finding checked by --dynamic."""
    if not d.evidence:
        return None
    ev = dict(d.evidence)
    verdict = ev.get("verdict", "")
    summary = ev.get("summary", "")
    if verdict == "not-run":
        return f"{_MARKS[verdict]} {summary}"
    if summary.startswith(f"{verdict}: "):
        summary = summary[len(verdict) + 2 :]
    where = (
        f" on {ev['device']}, {ev.get('seeds')} seed{'s' if ev.get('seeds') != 1 else ''}" if ev.get("device") else ""
    )
    tail = " — kept, marked refuted" if verdict == Verdict.REFUTED else ""
    return f"{_MARKS.get(verdict, '?')} {verdict}{where}: {summary}{tail}"


def render(fmt: str, diagnostics, **kwargs) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    module = importlib.import_module(f"gradlint.reporters.{fmt.replace('-', '_')}")
    shown = _relative_display if fmt in TEXT_FORMATS else display_path
    diagnostics = [_displayable(d, shown) for d in diagnostics]
    if kwargs.get("files_checked"):
        kwargs["files_checked"] = [shown(p) for p in kwargs["files_checked"]]
    if kwargs.get("sources"):
        kwargs["sources"] = {shown(k): v for k, v in kwargs["sources"].items()}
    return module.render(diagnostics, **kwargs)


#: the formats people read: their paths are relative to the working directory when under it
TEXT_FORMATS = ("full", "concise")


def _relative_display(path: str) -> str:
    """:func:`display_path`, relative to the working directory for a path under it (as the
    user would type it); an absolute path elsewhere stays absolute."""
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:  # another drive (Windows)
            rel = path
        if rel != ".." and not rel.startswith(".." + os.sep):
            path = rel
    return display_path(path)


def display_path(path: str) -> str:
    """A path as every output shows it: a file name that is not valid UTF-8 (``bad\\xff.py``
    on disk, read by Python as a lone surrogate) is written with each undecodable byte as the
    four characters ``\\xNN``, so that JSON, SARIF and the other formats stay valid UTF-8."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        try:
            raw = path.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return path.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


def _displayable(d, shown=None):
    """``d`` with its paths made displayable (unchanged, the same object, in the common case)."""
    shown = shown or display_path
    if shown(d.path) == d.path and all(shown(r.path) == r.path for r in d.related):
        return d
    related = tuple(dataclasses.replace(r, path=shown(r.path)) for r in d.related)
    return dataclasses.replace(d, path=shown(d.path), related=related)


def statistics(diagnostics, unsafe: bool = False) -> str:
    """One line per rule code, like ruff's ``--statistics``: count, code, ``[*]`` when some
    finding of the code has a fix that ``--fix`` would apply with the current flags (a safe
    one, or an unsafe one when ``unsafe``: ``--unsafe-fixes``), and the rule's name; most
    frequent first."""
    diagnostics = list(diagnostics)
    counts = Counter(d.code for d in diagnostics)
    names: dict[str, str] = {}
    fixable: set[str] = set()
    for d in diagnostics:
        names.setdefault(d.code, d.name)
        if d.fix is not None and (d.fix.applicability == Applicability.SAFE or unsafe):
            fixable.add(d.code)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if not rows:
        return ""
    width = max(len(str(n)) for _, n in rows)
    code_width = max(len(code) for code, _ in rows)
    marker_width = 4 if fixable else 0
    out = []
    for code, n in rows:
        marker = ("[*] " if code in fixable else "    ") if marker_width else ""
        out.append(f"{str(n).rjust(width)}\t{code.ljust(code_width)}\t{marker}{names[code]}\n")
    return "".join(out)


# ---------------------------------------------------------------- helpers for CI formats


def relative_path(path: str, root: str | None = None) -> str:
    """``path`` relative to ``root`` (default: the current directory) with forward slashes;
    a path outside the root stays absolute."""
    base = os.path.abspath(root or os.getcwd())
    full = os.path.abspath(path)
    for a, b in ((full, base), (os.path.realpath(full), os.path.realpath(base))):
        try:
            rel = os.path.relpath(a, b)
        except ValueError:  # another drive
            continue
        if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
            return rel.replace(os.sep, "/")
    return full.replace(os.sep, "/")


def is_outside(rel: str) -> bool:
    """Whether ``relative_path`` had to keep the path absolute."""
    return os.path.isabs(rel) or rel.startswith("/")


def cell_key(d) -> str:
    """The ``sources`` key of a notebook cell's text."""
    return f"{d.path}:cell {d.cell}"


class SourceLines:
    """Lines of the checked files: from ``sources`` first, else read from disk (once each).

    Notebook findings are looked up in their cell's text only."""

    def __init__(self, sources: dict | None = None):
        self._sources = dict(sources or {})
        self._cache: dict[str, list[str]] = {}

    def lines(self, key: str, read: bool = True) -> list[str]:
        if key not in self._cache:
            if key in self._sources:
                self._cache[key] = split_lines(str(self._sources[key]))
            elif read:
                self._cache[key] = source_lines(key)
            else:
                self._cache[key] = []
        return self._cache[key]

    def line_text(self, d) -> str:
        if d.cell is not None:
            lines = self.lines(cell_key(d), read=False)
        else:
            lines = self.lines(d.path)
        return lines[d.line - 1] if 1 <= d.line <= len(lines) else ""


def stable_identities(diagnostics, root: str | None = None, sources: dict | None = None) -> list[str]:
    """For each diagnostic (in the given order), a string that identifies the finding without
    its line number: code, root-relative path, the flagged line's text with whitespace
    normalized, and the occurrence index of that (code, text) pair within the file. Inserting
    or deleting lines elsewhere leaves it unchanged; the CI formats hash it into fingerprints."""
    diagnostics = list(diagnostics)
    src = SourceLines(sources)
    texts = [" ".join(src.line_text(d).split()) for d in diagnostics]
    paths = [relative_path(d.path, root) for d in diagnostics]
    order = sorted(
        range(len(diagnostics)),
        key=lambda i: (
            paths[i],
            diagnostics[i].cell or 0,
            diagnostics[i].line,
            diagnostics[i].column,
            diagnostics[i].code,
            diagnostics[i].message,
        ),
    )
    seen: Counter = Counter()
    out = [""] * len(diagnostics)
    for i in order:
        key = (paths[i], diagnostics[i].code, texts[i])
        out[i] = "\0".join((diagnostics[i].code, paths[i], texts[i], str(seen[key])))
        seen[key] += 1
    return out
