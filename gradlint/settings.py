"""What a run is asked to do and what one file gives back: :class:`Settings` (the rule
selection, options, excludes and the rest of the configuration, resolved for a file by
:mod:`gradlint.config_resolve`) and :class:`FileResult` (one file's findings, with what other
files of the run need from it). Plain data, below the rules and the pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gradlint.diagnostics import Diagnostic
from gradlint.files import DEFAULT_EXCLUDE


@dataclass(frozen=True)
class Settings:
    select: tuple = ()
    ignore: tuple = ()
    extend_select: tuple = ()
    #: ((gitignore-style pattern relative to ``root``, (codes, ...)), ...)
    per_file_ignores: tuple = ()
    preview: bool = False
    rule_options: tuple = ()  # ((code, ((option, value), ...)), ...)
    exclude: tuple = DEFAULT_EXCLUDE
    extend_exclude: tuple = ()
    respect_gitignore: bool = True
    force_exclude: bool = False
    jobs: int = 0  # 0: one per core
    #: compute the text edits of fixable findings (libcst; --fix, --diff, --show-fixes, the editor):
    #: a run (:mod:`gradlint.run`) and :func:`gradlint.fixes.lint_with_edits` do; the pipeline does not
    fixes: bool = False
    #: the project root (the configuration file's folder): per-file-ignores and excludes are relative to it
    root: str = ""
    #: models the configuration builds with constructor kwargs (``[tool.gradlint.dynamic.models]``):
    #: ((absolute path, class name, ((keyword, value), ...)), ...), analysed as configured
    configured: tuple = ()


@dataclass
class FileResult:
    """One file's findings, plus what other files of the run may need from it."""

    diagnostics: list[Diagnostic]
    #: findings that hold only if a class imported from another file is recurrent
    deferred: list[tuple] = field(default_factory=list)
    #: classes of this file whose models contain recurrent layers
    recurrent_classes: frozenset = frozenset()
    #: for notebooks: "path:cell N" -> the cell's source, for excerpts
    sources: dict = field(default_factory=dict)


def configured_for(settings: Settings, path: str) -> tuple:
    """The ``(class name, kwargs pairs)`` the configuration builds in the file ``path``."""
    if not settings.configured:
        return ()
    here = os.path.abspath(path)
    return tuple((name, kwargs) for file, name, kwargs in settings.configured if file == here)
