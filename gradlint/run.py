"""A run over many files: discovery, worker processes, the result cache, notebooks, the fix
edits a run asks for, and the findings that hold across files.

It sits above the single-file pipeline (:mod:`gradlint.engine`: source -> findings), the fix
edit engine (:mod:`gradlint.fixes`), the cache (storage only) and notebooks, and imports them
all; none of them imports it. Its verb is *lint*: :func:`lint_paths` (a run), :func:`lint_file`
(one path), :func:`lint_bytes` (one file's content, a notebook by its name), :func:`lint_notebook`
and :func:`lint_cached`.
"""

from __future__ import annotations

import gc
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from gradlint import engine
from gradlint.diagnostics import Diagnostic
from gradlint.engine import PREFILTER, _tool_diagnostic
from gradlint.files import SourceError, discover, read_source
from gradlint.rule import enabled_rules
from gradlint.settings import FileResult, Settings


@dataclass
class RunResult:
    diagnostics: list[Diagnostic]
    files_checked: int
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message): not checked
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    #: texts findings point into that are not plain files on disk: "nb.ipynb:cell 3" -> source
    sources: dict = field(default_factory=dict)
    #: (path, requirement) of the cross-file findings that held
    satisfied: set = field(default_factory=set)

    @property
    def internal_errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.code == "GL002"]


def read_file(path: str) -> tuple[bytes | None, FileResult | None]:
    """(bytes, None), or (None, a GL001 result) for a path that cannot be read
    (:func:`gradlint.files.read_source`: only regular files, at most ``MAX_FILE_BYTES``)."""
    try:
        return read_source(path), None
    except SourceError as exc:
        return None, FileResult([_tool_diagnostic("GL001", path, 1, 1, f"cannot read: {exc} — file skipped")])


def lint_file(path: str, settings: Settings = Settings()) -> FileResult:
    data, failed = read_file(path)
    if failed is not None:
        return failed
    return lint_bytes(data, path, settings)


def lint_bytes(data: bytes, path: str, settings: Settings) -> FileResult:
    """A Python file or a Jupyter notebook, by its name; with ``settings.fixes``, the fixable
    findings carry their edits."""
    if path.endswith(".ipynb"):
        return lint_notebook(data, path, settings)
    result = engine.analyse(data, path, settings)
    if settings.fixes:
        from gradlint.fixes import with_edits

        result = with_edits(result, data, path)
    return result


def lint_notebook(data: bytes, path: str, settings: Settings) -> FileResult:
    """The code cells as one module; findings moved to their cell and line."""
    from gradlint.notebook import NotebookError, load, map_diagnostic

    if PREFILTER not in data:
        return FileResult([])
    try:
        nb = load(data)
    except NotebookError as exc:
        enabled = {r.code for r in enabled_rules(settings, path)}
        return FileResult(
            [_tool_diagnostic("GL001", path, 1, 1, f"cannot parse: {exc} — file skipped")] if "GL001" in enabled else []
        )
    if not nb.python or not nb.cells:
        return FileResult([])
    result = engine.analyse(nb.virtual, path, settings)
    if nb.broken and "GL001" in {r.code for r in enabled_rules(settings, path)}:
        result.diagnostics = [
            *result.diagnostics,
            *(
                _tool_diagnostic(
                    "GL001",
                    path,
                    line,
                    col,
                    f"cannot parse this cell: {msg} — the cell is skipped, the other cells are analysed",
                )
                for line, col, msg in nb.broken
            ),
        ]
    result.diagnostics = [map_diagnostic(nb, d) for d in result.diagnostics]
    result.deferred = [(req, map_diagnostic(nb, d)) for req, d in result.deferred]
    result.sources = {f"{path}:cell {n}": text for n, text in nb.texts.items()}
    return result


def lint_cached(cache, path: str) -> FileResult:
    """:func:`lint_file` through ``cache`` (a :class:`gradlint.cache.ResultCache`, whose settings
    it lints with): a hit is returned as stored; a miss is linted from the bytes the lookup
    read, and stored."""
    found = cache.lookup(path)
    if found.result is not None:
        return found.result
    if found.data is None:
        return lint_file(path, cache.settings)
    result = lint_bytes(found.data, path, cache.settings)
    cache.store(found, result)
    return result


def _lint_chunk(args) -> list[tuple[str, FileResult]]:
    paths, settings, cache_dir = args
    out: list[tuple[str, FileResult]] = []
    lint = lint_file
    if cache_dir:
        from gradlint.cache import ResultCache

        cache = ResultCache(cache_dir, settings)

        def lint(path, _settings):
            return lint_cached(cache, path)

    # Syntax trees and graphs are acyclic and freed by reference counting; the cyclic
    # collector would only rescan them while they are built (a third of parse time).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, p in enumerate(paths):
            try:
                result = lint(p, settings)
            except Exception as exc:  # last line of defence: one file's crash never ends the run
                result = FileResult(
                    [_tool_diagnostic("GL002", p, 1, 1, f"internal error: {type(exc).__name__}: {exc}")]
                )
            out.append((p, result))
            if i % 64 == 63:
                gc.collect(0)
    finally:
        if was_enabled:
            gc.enable()
    return out


# ---------------------------------------------------------------- many files
def _module_names(path: str) -> list[str]:
    """Dotted names a file may be imported as: ``a/b/c.py`` -> ``c``, ``b.c``, ``a.b.c``."""
    parts = os.path.normpath(path).replace(os.sep, "/").split("/")
    parts[-1] = parts[-1][:-3] if parts[-1].endswith(".py") else parts[-1]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return [".".join(parts[i:]) for i in range(len(parts)) if parts[i:]]


def resolve_across_files(results, satisfied: set | None = None) -> list[Diagnostic]:
    """Keep the deferred findings whose imported model class is recurrent in another file;
    ``satisfied`` collects the (path, requirement) pairs that held (``--fix`` needs them)."""
    recurrent: dict[str, set[str]] = {}  # module name -> recurrent classes
    for path, result in results:
        if result.recurrent_classes:
            for name in _module_names(path):
                recurrent.setdefault(name, set()).update(result.recurrent_classes)
    kept = []
    for path, result in results:
        for (kind, qualname), diag in result.deferred:
            module, _, cls = qualname.rpartition(".")
            if module.startswith("."):  # relative: from the importing file's package
                level = len(module) - len(module.lstrip("."))
                base = os.path.dirname(os.path.normpath(path))
                for _ in range(level - 1):
                    base = os.path.dirname(base)
                rest = module.lstrip(".")
                target = os.path.join(base, *rest.split(".")) + ".py" if rest else os.path.join(base, "__init__.py")
                candidates = _module_names(target)[:1] and [_module_names(target)[-1]]
            else:
                candidates = [module]
            if kind == "recurrent" and any(cls in recurrent.get(m, ()) for m in candidates):
                kept.append(diag)
                if satisfied is not None:
                    satisfied.add((path, (kind, qualname)))
    return kept


def lint_paths(paths, settings=Settings(), cache_dir: str | None = None) -> RunResult:
    """Lint every file under ``paths``; with ``cache_dir``, through the result cache there.

    ``settings`` is one :class:`Settings` for every file, or a callable giving each file (and
    folder) its own, such as :class:`gradlint.config_resolve.Resolver` (the nearest configuration)."""
    start = time.perf_counter()
    if isinstance(settings, Settings):
        found = discover(
            paths,
            settings.exclude,
            settings.extend_exclude,
            settings.respect_gitignore,
            settings.force_exclude,
            settings.root or None,
        )
        groups = {settings: found.files}
    else:
        found = discover(paths, resolve=settings)
        groups = {}
        for path in found.files:
            groups.setdefault(settings(path), []).append(path)
    files = found.files
    if isinstance(settings, Settings):
        jobs = settings.jobs
    else:  # the run's own: that of the folder holding every path
        here = [os.path.abspath(p) for p in paths if os.path.exists(p)] or [os.getcwd()]
        jobs = settings(os.path.commonpath(here)).jobs
    jobs = jobs or os.cpu_count() or 1
    for each in groups:
        enabled_rules(each)  # import the rules once, before workers fork
    results: list[tuple[str, FileResult]] = []
    if jobs > 1 and len(files) >= 8:
        # strided chunks, many per worker: the last to finish are small, so no worker idles long
        # at the end (32 per worker ran 3-15% faster than 8 on the benchmark corpus)
        n = min(len(files), jobs * 32)
        work = []
        for each, group in groups.items():
            k = max(1, round(n * len(group) / len(files)))
            work.extend((group[i::k], each, cache_dir) for i in range(min(k, len(group))))
        import multiprocessing

        ctx = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            for part in pool.map(_lint_chunk, work):
                results.extend(part)
    else:
        for each, group in groups.items():
            results.extend(_lint_chunk((group, each, cache_dir)))
    diagnostics = [d for _, r in results for d in r.diagnostics]
    satisfied: set = set()
    diagnostics.extend(resolve_across_files(results, satisfied))
    diagnostics.sort(key=Diagnostic.sort_key)
    sources = {k: v for _, r in results for k, v in r.sources.items()}
    return RunResult(
        diagnostics, len(files), found.errors, time.perf_counter() - start, list(files), sources, satisfied
    )
