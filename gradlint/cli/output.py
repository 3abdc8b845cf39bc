"""What the command line says besides the findings, and how: exit codes, the output formats,
how much it says (``level``: -s/-q/-v) and whether in colour (``color_mode``), the summary line
and the --output-file write. The group resets ``level`` and ``color_mode`` and ``check`` sets
them; the other modules read them as ``output.level``."""

from __future__ import annotations

import os

import click

from gradlint.vocab import Applicability, Severity

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _formats():
    from gradlint.reporters import FORMATS

    return FORMATS


#: --color: auto (a terminal, unless NO_COLOR), always, never
color_mode = "auto"


def _use_color(stream) -> bool:
    if color_mode != "auto":
        return color_mode == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


#: how much gradlint says besides the findings: -s/--silent, -q/--quiet, default, -v/--verbose
SILENT, QUIET, NORMAL, VERBOSE = 0, 1, 2, 3
level = NORMAL


def _say(message: str = "", **kwargs) -> None:
    """A summary, note or warning on stderr: said unless --quiet or --silent."""
    if level >= NORMAL:
        click.echo(message, err=True, **kwargs)


def _detail(message: str) -> None:
    """What only --verbose says (the configuration, the files, the cache)."""
    if level >= VERBOSE:
        click.echo(f"gradlint: {message}", err=True)


def _fail(message: str) -> None:
    if level > SILENT:
        click.echo(f"gradlint: error: {message}", err=True)


def _shown(path: str) -> str:
    return os.path.relpath(path) if os.path.isabs(path) else path


def _rendered(diagnostics, output_format: str, statistics: bool, unsafe: bool, color: bool, sources, files) -> str:
    """What ``check`` prints of its findings: ``--statistics``' table, or the output format."""
    from gradlint.reporters import render
    from gradlint.reporters import statistics as render_statistics

    if statistics:
        return render_statistics(diagnostics, unsafe=unsafe)
    return render(output_format, diagnostics, color=color, root=os.getcwd(), sources=sources, files_checked=files)


def _write_report(path: str, text: str) -> None:
    from gradlint.text import write_atomic

    write_atomic(path, text.encode("utf-8"))


def _warn_empty_folders(targets, files) -> None:
    """A folder named on the command line in which no file was checked is worth a word."""
    checked = [os.path.abspath(f) for f in files]
    for target in targets:
        if not os.path.isdir(target):
            continue
        folder = os.path.join(os.path.abspath(target), "")
        if not any(f.startswith(folder) for f in checked):
            _say(f"gradlint: warning: no Python files found under {target} (or all of them are excluded)")


def _summary(result, dynamic_seconds: float | None = None) -> None:
    diags = result.diagnostics
    files = len({d.path for d in diags})
    counts = {s: sum(1 for d in diags if d.severity == s) for s in Severity}
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    checked = f"{result.files_checked} file{'s' if result.files_checked != 1 else ''} checked in {result.seconds:.2f} s"
    checked += f", measured by --dynamic in {dynamic_seconds:.1f} s." if dynamic_seconds is not None else "."
    safe = sum(1 for d in diags if d.fix is not None and d.fix.applicability == Applicability.SAFE)
    unsafe = sum(1 for d in diags if d.fix is not None and d.fix.applicability == Applicability.UNSAFE)
    fixable = []
    if safe:
        fixable.append(f"{safe} fixable with --fix")
    if unsafe:
        fixable.append(f"{unsafe} fixable with --unsafe-fixes")
    note = f" ({', '.join(fixable)})" if fixable else ""
    if diags:
        _say(f"Found {', '.join(parts)} in {files} file{'s' if files != 1 else ''}{note}. {checked}")
    else:
        # after a path that does not exist, "No findings." would read as a clean run
        errors = getattr(result, "errors", None)
        _say(f"{checked[0].upper()}{checked[1:]}" if errors else f"No findings. {checked}")
