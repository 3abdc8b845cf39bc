"""``gradlint check -``: the source read from standard input."""

from __future__ import annotations

import os
import sys
import time

import click

from gradlint.cli import output
from gradlint.cli.output import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FINDINGS,
    SILENT,
    _fail,
    _rendered,
    _say,
    _summary,
    _use_color,
    _write_report,
)


def _check_stdin(
    filename, settings, output_format, output_file, statistics, fix, unsafe, diff, exit_zero, failing
) -> int:
    """``gradlint check -``: lint (or with ``--fix`` fix, printing the fixed source) what
    standard input holds, as the file ``--stdin-filename`` names."""
    from gradlint.files import MAX_FILE_BYTES, MAX_NOTEBOOK_BYTES
    from gradlint.run import lint_bytes
    from gradlint.text import decode

    path = filename or "-"
    limit = MAX_NOTEBOOK_BYTES if path.endswith(".ipynb") else MAX_FILE_BYTES
    started = time.perf_counter()
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        _fail(f"standard input is larger than {limit // 2**20} MB, the most gradlint reads of a file")
        return EXIT_ERROR
    if settings.force_exclude and filename and _excluded(filename, settings):
        return EXIT_CLEAN  # what pre-commit-style runners expect for an excluded file
    if fix or diff:
        from dataclasses import replace as _replace

        from gradlint.apply import _fix_notebook, _fix_text
        from gradlint.fixes import unified_diff
        from gradlint.text import source_encoding

        fixing = _replace(settings, fixes=True)
        if path.endswith(".ipynb"):
            new, fixed, old_text, new_text = _fix_notebook(data, path, fixing, unsafe)
        else:
            codec, bom = source_encoding(data)
            old_text = decode(data)
            new_text, fixed = _fix_text(old_text, path, fixing, unsafe)
            new = bom + new_text.encode(codec) if fixed else data
        if diff:
            if output.level > SILENT:
                sys.stdout.write(unified_diff(path, old_text, new_text) if fixed else "")
            _say(f"Would fix {len(fixed)} finding{'s' if len(fixed) != 1 else ''}." if fixed else "No fixes available.")
            return EXIT_FINDINGS if fixed else EXIT_CLEAN
        if output.level > SILENT:
            sys.stdout.buffer.write(new)  # the fixed source, for the editor or tool that piped it in
        sys.stdout.flush()
        left = lint_bytes(new, path, settings).diagnostics
        _say(f"Fixed {len(fixed)} finding{'s' if len(fixed) != 1 else ''}, {len(left)} left.")
        return EXIT_FINDINGS if any(map(failing, left)) and not exit_zero else EXIT_CLEAN
    result = lint_bytes(data, path, settings)
    diags = result.diagnostics
    text = decode(data) if not path.endswith(".ipynb") else None
    color = output_file is None and output_format == "full" and _use_color(sys.stdout)
    out = _rendered(diags, output_format, statistics, unsafe, color, {path: text} if text is not None else {}, [path])
    if output_file is not None:
        try:
            _write_report(output_file, out)
        except OSError as exc:
            _fail(f"cannot write {output_file}: {exc.strerror or exc}")
            return EXIT_ERROR
    elif out and output.level > SILENT:
        click.echo(out, nl=False, color=_use_color(sys.stdout) and output_format == "full")
    seconds = time.perf_counter() - started
    summary = type("StdinRun", (), {"diagnostics": diags, "files_checked": 1, "seconds": seconds})()
    _summary(summary)
    if any(d.code == "GL002" for d in diags):
        return EXIT_ERROR
    return EXIT_FINDINGS if any(map(failing, diags)) and not exit_zero else EXIT_CLEAN


def _excluded(filename: str, settings) -> bool:
    """Whether the configuration's excludes leave out ``filename`` (for --force-exclude)."""
    from gradlint.files import exclude_spec, file_excluded

    return file_excluded(
        filename, exclude_spec(settings.exclude, settings.extend_exclude), settings.root or os.getcwd()
    )
