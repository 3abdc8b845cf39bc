"""What ``check --fix``, ``--diff`` and ``--add-noqa`` say about the files they change."""

from __future__ import annotations

from gradlint.cli.output import EXIT_CLEAN, EXIT_ERROR, _fail, _say, _shown
from gradlint.cli.settings import _configured


def _add_noqa(targets, settings, cache) -> int:
    from gradlint.apply import add_noqa

    run = _configured(lambda: add_noqa(targets, settings, cache_dir=cache))
    for _, message in run.errors:
        _fail(message)
    for message in run.notes:
        _say(f"gradlint: warning: {message}")
    for path, line, codes in run.refused:
        _say(
            f"gradlint: warning: {_shown(path)}:{line}: no comment can go on this line (it ends inside a string "
            f"of several lines, or continues with a backslash): {', '.join(codes)} left as found"
        )
    n, files = sum(run.added.values()), len(run.added)
    _say(
        f"Added {n} noqa directive{'s' if n != 1 else ''} to {files} file{'s' if files != 1 else ''}."
        if n
        else "No noqa directive to add."
    )
    return EXIT_ERROR if run.errors else EXIT_CLEAN


def _fix_summary(fixed, diff: bool, show: bool) -> None:
    n = fixed.count
    if show and fixed.applied:
        verb = "Would fix" if diff else "Fixed"
        _say(f"{verb} {n} finding{'s' if n != 1 else ''}:")
        for path, items in fixed.applied.items():
            _say(f"- {path}:")
            for code, title, count in items:
                _say(f"    {count} × {code} ({title})")
    elif n:
        _say(
            f"{'Would fix' if diff else 'Fixed'} {n} finding{'s' if n != 1 else ''} "
            f"in {len(fixed.applied)} file{'s' if len(fixed.applied) != 1 else ''}."
        )
    elif diff:
        _say("No fixes available.")
