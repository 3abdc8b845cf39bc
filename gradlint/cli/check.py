"""``gradlint check``: its options, and the run they drive over the paths."""

from __future__ import annotations

import os
import sys
import time

import click

from gradlint.cli import output
from gradlint.cli.dynamic import _dynamic_options, _run_dynamic
from gradlint.cli.fixing import _add_noqa, _fix_summary
from gradlint.cli.output import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FINDINGS,
    NORMAL,
    QUIET,
    SILENT,
    VERBOSE,
    _detail,
    _fail,
    _formats,
    _rendered,
    _say,
    _shown,
    _summary,
    _use_color,
    _warn_empty_folders,
    _write_report,
)
from gradlint.cli.settings import (
    _all_rules,
    _cache_dir,
    _configured,
    _failing,
    _resolver,
    _split,
    _start_dir,
    rule_selection_options,
)
from gradlint.cli.stdin import _check_stdin
from gradlint.cli.watch import _watch
from gradlint.vocab import Severity


class _CheckCommand(click.Command):
    """``check``, where ``--dynamic=findings`` (or ``=all``) sets the scope: ``--dynamic`` alone
    stays a flag, so ``--dynamic PATH`` never takes the path as its value."""

    def parse_args(self, ctx, args):
        out = []
        for k, arg in enumerate(args):
            if arg == "--":  # paths follow, whatever they look like
                out += args[k:]
                break
            if arg.startswith("--dynamic="):
                out += ["--dynamic", "--dynamic-scope", arg.split("=", 1)[1]]
            else:
                out.append(arg)
        return super().parse_args(ctx, out)


@click.command(cls=_CheckCommand)
@click.argument("paths", nargs=-1, type=click.Path())
@rule_selection_options
@click.option(
    "--extend-select", multiple=True, metavar="CODES", help="Rule codes or prefixes to enable on top of the selection."
)
@click.option("--preview/--no-preview", default=None, help="Enable rules that are still in preview.")
@click.option(
    "--output-format",
    type=click.Choice(_formats()),
    default=None,
    envvar="GRADLINT_OUTPUT_FORMAT",
    show_envvar=True,
    help="How findings are printed (default: full).",
)
@click.option(
    "-o",
    "--output-file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the findings to this file instead of standard output.",
)
@click.option("--statistics", is_flag=True, help="Print how many findings each rule made, instead of the findings.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Replace the default excludes (gitignore syntax).")
@click.option("--extend-exclude", multiple=True, metavar="PATTERN", help="Exclude these too (gitignore syntax).")
@click.option(
    "--force-exclude/--no-force-exclude",
    default=None,
    help="Apply excludes to files named on the command line too (for pre-commit).",
)
@click.option(
    "--respect-gitignore/--no-respect-gitignore",
    default=None,
    help="Skip files that .gitignore files exclude (default: on).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Use this pyproject.toml or gradlint.toml instead of the nearest one.",
)
@click.option("--isolated", is_flag=True, help="Ignore every configuration file.")
@click.option("--fix/--no-fix", default=None, help="Apply safe fixes (files are rewritten in place, atomically).")
@click.option("--unsafe-fixes/--no-unsafe-fixes", default=None, help="Apply unsafe fixes too (with --fix or --diff).")
@click.option(
    "--diff", is_flag=True, help="Print the fixes as a unified diff and write nothing; exit 1 if there is a diff."
)
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Check again whenever a checked file or a configuration file changes "
    "(through the cache: only changed files are analysed again). Ctrl-C stops it.",
)
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add `# noqa: CODE` to the line of every current finding (to adopt "
    "gradlint on an existing codebase); a second run changes nothing.",
)
@click.option(
    "--show-fixes/--no-show-fixes",
    default=None,
    help="List the fixes applied, and the fixes available for what remains.",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the result cache lives (default: .gradlint_cache).",
)
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=None, help="Worker processes (0: one per core).")
@click.option("--exit-zero", is_flag=True, default=None, help="Exit 0 even when there are findings.")
@click.option(
    "--fail-level",
    type=click.Choice([s.value for s in reversed(Severity)]),
    default=None,
    help="The least severe finding that makes the run exit 1 (default: warning: info findings never fail it).",
)
@click.option(
    "--fail-on-refuted/--no-fail-on-refuted",
    default=None,
    help="[--dynamic] Let findings the measurement refuted fail the run too (default: they do not).",
)
@click.option(
    "--dynamic",
    is_flag=True,
    help="Measure every model with real backward passes and give each finding a verdict "
    "(needs torch-gradlint[dynamic]); runs your model code in child processes. --dynamic=findings: only the models"
    " with findings.",
)
@click.option(
    "--dynamic-scope",
    type=click.Choice(["all", "findings"]),
    default=None,
    help="[--dynamic] all: every model of the checked files (default); findings: only those with static findings.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="[--dynamic] Where to run the backward passes (default: auto, CUDA when present).",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="[--dynamic] Random initializations measured per model (default: 3).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="[--dynamic] Seconds per model file before its child is stopped (default: 300).",
)
@click.option(
    "--memory-limit",
    type=click.FloatRange(min=0),
    default=None,
    help="[--dynamic] GiB of memory per child process; 0: no cap (default: 8).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="[--dynamic] Write a gradient-flow chart per model and an HTML page to this folder.",
)
@click.option("--hide-refuted/--show-refuted", default=None, help="[--dynamic] Drop findings the measurement refuted.")
@click.option("-q", "--quiet", is_flag=True, help="Print the findings only: no summary, notes or warnings.")
@click.option("-s", "--silent", is_flag=True, help="Print nothing at all; the exit status tells.")
@click.option("-v", "--verbose", is_flag=True, help="Also say which configuration, files and cache the run used.")
@click.option(
    "--color",
    "color_mode",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the full format (auto: on a terminal, unless NO_COLOR is set).",
)
@click.option(
    "--show-settings",
    type=click.Path(),
    default=None,
    metavar="FILE",
    help="Print the settings FILE is checked with, and the configuration files they came from; check nothing.",
)
@click.option("--show-files", is_flag=True, help="Print the files that would be checked, one per line; check nothing.")
@click.option(
    "--stdin-filename",
    type=click.Path(),
    default=None,
    help="With `-` as the path: the file the source read from standard input is (for configuration, "
    "per-file ignores and the names in output).",
)
def check(
    paths,
    select,
    ignore,
    extend_select,
    preview,
    output_format,
    output_file,
    statistics,
    exclude,
    extend_exclude,
    force_exclude,
    respect_gitignore,
    config_file,
    isolated,
    fix,
    unsafe_fixes,
    diff,
    show_fixes,
    no_cache,
    cache_dir,
    jobs,
    exit_zero,
    fail_level,
    watch,
    add_noqa,
    fail_on_refuted,
    dynamic,
    dynamic_scope,
    device,
    seeds,
    timeout,
    memory_limit,
    report_dir,
    hide_refuted,
    quiet,
    silent,
    verbose,
    color_mode,
    show_settings,
    show_files,
    stdin_filename,
):
    """Check PATHS (files, directories or notebooks; default: the current directory)."""
    output.level = SILENT if silent else QUIET if quiet else VERBOSE if verbose else NORMAL
    output.color_mode = color_mode
    from gradlint.run import lint_paths

    select, ignore, extend_select = _split(select), _split(ignore), _split(extend_select)
    known = [r.code for r in _all_rules()] + [r.name for r in _all_rules()]
    for code in (*select, *ignore, *extend_select):
        if not any(k.startswith(code.upper()) or k == code for k in known):
            _fail(f"unknown rule selector `{code}`; `gradlint rules` lists them")
            sys.exit(EXIT_ERROR)
    stdin = "-" in paths
    if stdin and len(paths) != 1:
        _fail("`-` (standard input) cannot be checked together with other paths")
        sys.exit(EXIT_ERROR)
    if stdin and dynamic:
        _fail("--dynamic imports the model's file: it cannot measure standard input")
        sys.exit(EXIT_ERROR)
    if stdin_filename and not stdin:
        _fail("--stdin-filename names the file read from standard input: give `-` as the path")
        sys.exit(EXIT_ERROR)
    resolver = _resolver(
        dict(
            select=select,
            extend_select=extend_select,
            ignore=ignore,
            exclude=_split(exclude),
            extend_exclude=_split(extend_exclude),
            respect_gitignore=respect_gitignore,
            force_exclude=force_exclude,
            preview=preview,
            jobs=jobs,
        ),
        config_file,
        isolated,
    )
    # the run's own options (formats, fixing, exit codes, cache, --dynamic) come from the
    # configuration of the folder holding every path; each file's rules from its nearest one
    config = _configured(resolver.config_for, _start_dir((stdin_filename,) if stdin and stdin_filename else paths))
    data = config.data
    output_format = output_format or data.get("output-format", "full")
    fix = bool(fix if fix is not None else data.get("fix", False))
    unsafe_fixes = bool(unsafe_fixes if unsafe_fixes is not None else data.get("unsafe-fixes", False))
    show_fixes = bool(show_fixes if show_fixes is not None else data.get("show-fixes", False))
    exit_zero = bool(exit_zero if exit_zero is not None else data.get("exit-zero", False))
    resolver.override(fixes=show_fixes)
    if show_settings is not None:
        click.echo(_configured(resolver.show, show_settings), nl=False)
        sys.exit(EXIT_CLEAN)
    from gradlint.config import DEFAULT_FAIL_LEVEL

    failing = _failing(
        fail_level or data.get("fail-level", DEFAULT_FAIL_LEVEL),
        bool(fail_on_refuted if fail_on_refuted is not None else data.get("fail-on-refuted", False)),
    )
    if show_files:
        from gradlint.files import discover

        found = _configured(lambda targets: discover(targets, resolve=resolver), paths or (".",))
        for _, message in found.errors:
            _fail(message)
        if output.level > SILENT:
            for path in found.files:
                click.echo(path)
        sys.exit(EXIT_ERROR if found.errors else EXIT_CLEAN)
    settings = resolver
    # --diff writes nothing, the cache included
    cache = None if no_cache or (diff and not fix) else _cache_dir(cache_dir, config)
    dynamic_options = None
    if dynamic:
        dynamic_options = _dynamic_options(
            config, device, seeds, timeout, memory_limit, report_dir, hide_refuted, dynamic_scope
        )
        from gradlint.rule import enabled_codes

        dynamic_options.enabled = lambda path: enabled_codes(resolver(path), path)
    if stdin:
        sys.exit(
            _check_stdin(
                stdin_filename,
                _configured(resolver, stdin_filename or os.path.join(os.getcwd(), "-")),
                output_format,
                output_file,
                statistics,
                fix,
                unsafe_fixes,
                diff,
                exit_zero,
                failing,
            )
        )
    targets = paths or (".",)
    if watch:
        if fix or diff or dynamic or add_noqa or stdin or show_files:
            _fail(
                "--watch checks again on every change: use it without --fix, --diff, --dynamic, --add-noqa, "
                "--show-files or `-`"
            )
            sys.exit(EXIT_ERROR)
        sys.exit(_watch(targets, resolver, cache, output_format, statistics, unsafe_fixes))
    if add_noqa:
        if fix or diff or dynamic:
            _fail("--add-noqa adds suppressions to the findings as they are: use it without --fix, --diff or --dynamic")
            sys.exit(EXIT_ERROR)
        sys.exit(_add_noqa(targets, settings, cache))
    fixed = None
    if fix or diff:
        from gradlint.apply import fix_paths

        fixed = _configured(lambda: fix_paths(targets, settings, unsafe=unsafe_fixes, write=not diff, cache_dir=cache))
        for message in fixed.notes:
            _say(f"gradlint: warning: {message}")
        if diff:
            for _, message in fixed.errors:
                _fail(message)
            if fixed.diff and output.level > SILENT:
                click.echo(fixed.diff, nl=False)
            _fix_summary(fixed, diff=True, show=show_fixes)
            sys.exit(EXIT_ERROR if fixed.errors else EXIT_FINDINGS if fixed.diff else EXIT_CLEAN)
    _detail(f"configuration: {config.path if config.path is not None else 'none found (the defaults)'}")
    _detail(f"cache: {cache or 'off'}")
    result = _configured(lambda: lint_paths(targets, settings, cache_dir=cache))
    for path in result.files:
        own = resolver.config_for(path).path
        _detail(
            f"checked {_shown(path)}"
            + (f" (configuration: {_shown(str(own))})" if own is not None and own != config.path else "")
        )
    for _, message in result.errors:
        _fail(message)
    _warn_empty_folders(targets, result.files)
    missing_torch = False
    dynamic_seconds = None
    dynamic_messages: list[str] = []
    if dynamic_options is not None:
        from gradlint.dynamic import INSTALL_HINT, torch_available

        if not torch_available():
            missing_torch = True
        else:
            _say(
                "gradlint: warning: --dynamic imports and runs the checked files' code (in child processes "
                "with a timeout and a memory cap)"
            )
            started = time.perf_counter()
            result.diagnostics, dynamic_messages = _run_dynamic(
                result.diagnostics, dynamic_options, output_format, result.files
            )
            dynamic_seconds = time.perf_counter() - started
    stream = sys.stdout
    color = output_file is None and output_format == "full" and _use_color(stream)
    out = _rendered(result.diagnostics, output_format, statistics, unsafe_fixes, color, result.sources, result.files)
    if output_file is not None:
        try:
            _write_report(output_file, out)
        except OSError as exc:
            _fail(f"cannot write {output_file}: {exc.strerror or exc}")
            sys.exit(EXIT_ERROR)
    elif out and output.level > SILENT:
        click.echo(out, nl=False, color=color)
    if dynamic_options is not None and not missing_torch:
        sys.stdout.flush()
        for line in dynamic_messages:
            _say(line)
    if fixed is not None:
        _fix_summary(fixed, diff=False, show=show_fixes)
    _summary(result, dynamic_seconds)
    if missing_torch:
        _fail(INSTALL_HINT)
        sys.exit(EXIT_ERROR)
    if result.errors or result.internal_errors:
        sys.exit(EXIT_ERROR)
    if any(map(failing, result.diagnostics)) and not exit_zero:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_CLEAN)
