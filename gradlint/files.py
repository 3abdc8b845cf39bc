"""Which files a run checks: explicit files, directories walked with excludes.

Exclusion patterns use gitignore syntax (pathspec). ``.gitignore`` files met while
walking a directory apply to their subtree, like git's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pathspec

DEFAULT_EXCLUDE = (
    ".git", ".hg", ".svn", ".bzr", ".venv", "venv", ".tox", ".nox", "__pycache__", "node_modules",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".gradlint_cache", "site-packages",
    "__pypackages__", ".eggs", "*.egg-info", "build", "dist", ".ipynb_checkpoints",
)
SOURCE_SUFFIXES = (".py", ".ipynb")


@dataclass
class Discovery:
    files: list[str] = field(default_factory=list)
    #: (path, message) for paths that do not exist or cannot be listed
    errors: list[tuple[str, str]] = field(default_factory=list)


def _spec(patterns) -> pathspec.PathSpec | None:
    patterns = [p for p in patterns if p]
    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


def discover(paths, exclude=DEFAULT_EXCLUDE, extend_exclude=(), respect_gitignore=True, force_exclude=False,
             root: str | None = None) -> Discovery:
    """Expand ``paths`` into the sorted list of files to check.

    Patterns are matched against paths relative to ``root`` (the project root: the
    configuration file's folder; default the current directory). Files named explicitly are
    checked even when excluded, unless ``force_exclude`` (pre-commit passes files by name)."""
    result = Discovery()
    excluded = _spec([*exclude, *extend_exclude])
    seen: set[str] = set()
    root = os.path.abspath(root or os.getcwd())

    def is_excluded(rel: str, is_dir: bool) -> bool:
        if excluded is None:
            return False
        rel = rel.replace(os.sep, "/")
        return excluded.match_file(rel + "/" if is_dir else rel)

    def from_root(path: str) -> str | None:
        rel = os.path.relpath(os.path.abspath(path), root)
        return None if rel == ".." or rel.startswith(".." + os.sep) else rel

    for raw in paths:
        path = os.path.normpath(raw)
        if not os.path.lexists(path):
            result.errors.append((raw, f"path does not exist: {raw}"))
            continue
        if os.path.isdir(path):
            _walk(path, result, is_excluded, respect_gitignore, seen, from_root)
        else:
            rel = from_root(path)
            if force_exclude and (is_excluded(rel, False) if rel is not None else is_excluded(os.path.basename(path), False)):
                continue
            if path not in seen:
                seen.add(path)
                result.files.append(path)
    result.files.sort()
    return result


def _walk(root: str, result: Discovery, is_excluded, respect_gitignore: bool, seen: set, from_root) -> None:
    # stack of (base directory, compiled .gitignore) in force for the current directory
    stack = [(root, [])]
    while stack:
        directory, ignores = stack.pop()
        if respect_gitignore:
            gi = os.path.join(directory, ".gitignore")
            if os.path.isfile(gi):
                try:
                    with open(gi, encoding="utf-8", errors="replace") as fh:
                        spec = pathspec.GitIgnoreSpec.from_lines(fh.read().splitlines())
                    ignores = ignores + [(directory, spec)]
                except OSError:
                    pass
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            result.errors.append((directory, f"cannot list directory: {directory}: {exc.strerror}"))
            continue
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            rel = os.path.relpath(entry.path, root)
            project_rel = from_root(entry.path)
            # inside the project, patterns match the path from its root (gitignore semantics:
            # "/legacy/" only there, "legacy/" at any depth); outside it, from the walked folder
            if is_excluded(project_rel, is_dir) if project_rel is not None else (
                is_excluded(entry.name, is_dir) or is_excluded(rel, is_dir)
            ):
                continue
            if any(spec.match_file(os.path.relpath(entry.path, base).replace(os.sep, "/") + ("/" if is_dir else "")) for base, spec in ignores):
                continue
            if is_dir:
                subdirs.append(entry.path)
            elif entry.name.endswith(SOURCE_SUFFIXES) and entry.path not in seen:
                seen.add(entry.path)
                result.files.append(os.path.normpath(entry.path))
        for sub in reversed(subdirs):
            stack.append((sub, ignores))
