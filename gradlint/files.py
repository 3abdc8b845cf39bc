"""Which files a run checks: explicit files, directories walked with excludes.

Exclusion patterns use gitignore syntax (pathspec). ``.gitignore`` files met while
walking a directory apply to their subtree, like git's own.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

import pathspec

DEFAULT_EXCLUDE = (
    ".git",
    ".hg",
    ".svn",
    ".bzr",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradlint_cache",
    "site-packages",
    "__pypackages__",
    ".eggs",
    "*.egg-info",
    "build",
    "dist",
    ".ipynb_checkpoints",
)
SOURCE_SUFFIXES = (".py", ".ipynb")
#: the most bytes gradlint reads of one file; a bigger one is GL001 "too large". (CPython's own
#: parser needs about 500 bytes of memory per byte of a long literal: 10 MB is about 5 GB.)
MAX_FILE_BYTES = 10 * 1024 * 1024
#: the same for a notebook, whose outputs (images, tables) may be most of it
MAX_NOTEBOOK_BYTES = 100 * 1024 * 1024


class SourceError(OSError):
    """A path that is not a readable source file; ``str()`` says why, in plain words."""


def read_source(path: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them (default: MAX_FILE_BYTES, or
    MAX_NOTEBOOK_BYTES for a ``.ipynb``). Anything else raises
    :class:`SourceError`: a FIFO, socket or device (opened without blocking, never read), a
    directory, a broken symbolic link, a link loop, an unreadable or too large file."""
    if limit is None:
        limit = MAX_NOTEBOOK_BYTES if path.endswith(".ipynb") else MAX_FILE_BYTES
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceError("symbolic link loop") from None
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise SourceError("broken symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise SourceError("is a directory") from None
        raise SourceError(exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SourceError("is a directory")
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
            raise SourceError(f"not a regular file ({kind})")
        if st.st_size > limit:
            raise SourceError(f"too large: {st.st_size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB limit")
        chunks, total = [], 0
        while True:  # a file that grows, or says size 0 (/proc), is still cut at the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise SourceError(f"too large: over the {limit / 1e6:.0f} MB limit")
        return b"".join(chunks)
    except SourceError:
        raise
    except OSError as exc:
        raise SourceError(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


@dataclass
class Discovery:
    files: list[str] = field(default_factory=list)
    #: (path, message) for paths that do not exist or cannot be listed
    errors: list[tuple[str, str]] = field(default_factory=list)


def _spec(patterns) -> pathspec.PathSpec | None:
    patterns = [p for p in patterns if p]
    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


def file_excluded(path: str, spec, root: str) -> bool:
    """Whether the exclude patterns (``spec``, from :func:`exclude_spec`) leave out the file
    ``path``: matched relative to ``root``, or by its name when it lies outside the root."""
    if spec is None:
        return False
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == ".." or rel.startswith(".." + os.sep):
        rel = os.path.basename(path)
    return spec.match_file(rel.replace(os.sep, "/"))


def exclude_spec(exclude=DEFAULT_EXCLUDE, extend_exclude=()):
    """The compiled exclude patterns (gitignore syntax), or None when there are none."""
    return _spec([*exclude, *extend_exclude])


def discover(
    paths,
    exclude=DEFAULT_EXCLUDE,
    extend_exclude=(),
    respect_gitignore=True,
    force_exclude=False,
    root: str | None = None,
    resolve=None,
) -> Discovery:
    """Expand ``paths`` into the sorted list of files to check.

    Patterns are matched against paths relative to ``root`` (the project root: the
    configuration file's folder; default the current directory). Files named explicitly are
    checked even when excluded, unless ``force_exclude`` (pre-commit passes files by name).

    With ``resolve`` (a folder or file -> the engine's Settings), each folder's entries are
    judged by the settings of that folder's own nearest configuration instead: its excludes,
    its root, its ``respect-gitignore`` and ``force-exclude``."""
    result = Discovery()
    seen: set[str] = set()
    if resolve is None:
        fixed = _Rules(
            exclude_spec(exclude, extend_exclude),
            os.path.abspath(root or os.getcwd()),
            respect_gitignore,
            force_exclude,
        )

        def rules_for(_path):
            return fixed
    else:
        memo: dict = {}

        def rules_for(path):
            settings = resolve(path)
            rules = memo.get(settings)
            if rules is None:
                rules = memo[settings] = _Rules(
                    exclude_spec(settings.exclude, settings.extend_exclude),
                    os.path.abspath(settings.root or os.getcwd()),
                    settings.respect_gitignore,
                    settings.force_exclude,
                )
            return rules

    for raw in paths:
        path = os.path.normpath(raw)
        if not os.path.lexists(path):
            result.errors.append((raw, f"path does not exist: {raw}"))
            continue
        if os.path.isdir(path):
            _walk(path, result, rules_for, seen)
        else:
            rules = rules_for(path)
            if rules.force_exclude and file_excluded(path, rules.spec, rules.root):
                continue
            if path not in seen:
                seen.add(path)
                result.files.append(path)
    result.files.sort()
    return result


@dataclass(frozen=True)
class _Rules:
    """What decides which entries of a folder are checked."""

    spec: object
    root: str
    respect_gitignore: bool
    force_exclude: bool

    def excluded(self, path: str, name: str, rel: str, is_dir: bool) -> bool:
        """Inside the project, patterns match the path from its root (gitignore semantics:
        "/legacy/" only there, "legacy/" at any depth); outside it, from the walked folder."""
        if self.spec is None:
            return False
        project_rel = os.path.relpath(path, self.root)
        tail = "/" if is_dir else ""
        if not (project_rel == ".." or project_rel.startswith(".." + os.sep)):
            return self.spec.match_file(project_rel.replace(os.sep, "/") + tail)
        return self.spec.match_file(name + tail) or self.spec.match_file(rel.replace(os.sep, "/") + tail)


def _walk(top: str, result: Discovery, rules_for, seen: set) -> None:
    # stack of (directory, the .gitignore files in force there: (their folder, compiled))
    stack = [(top, [])]
    top_abs = os.path.abspath(top)
    while stack:
        directory, ignores = stack.pop()
        rules = rules_for(directory)
        if rules.respect_gitignore:
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
                # a symbolic link to a directory is not followed (as git and ruff do): two
                # links to "." would otherwise make the walk exponential; a link to a file is
                # a file, and one that is broken or loops is reported when it is read (GL001)
                is_dir = entry.is_dir(follow_symlinks=False)
                if not is_dir and entry.is_symlink() and os.path.isdir(entry.path):
                    continue
            except OSError:
                continue
            if not is_dir and not entry.name.endswith(SOURCE_SUFFIXES):
                continue
            full = os.path.abspath(entry.path)
            if rules.excluded(full, entry.name, os.path.relpath(full, top_abs), is_dir):
                continue
            if rules.respect_gitignore and any(
                spec.match_file(os.path.relpath(entry.path, base).replace(os.sep, "/") + ("/" if is_dir else ""))
                for base, spec in ignores
            ):
                continue
            if is_dir:
                subdirs.append(entry.path)
            elif entry.path not in seen:
                seen.add(entry.path)
                result.files.append(os.path.normpath(entry.path))
        for sub in reversed(subdirs):
            stack.append((sub, ignores))
