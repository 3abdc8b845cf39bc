"""The command line: a thin click layer over the engine, reporters and graph dumps."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys
import time

import click

from gradlint import __version__, install_hint
from gradlint.vocab import Confidence, Severity

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _split(values) -> tuple:
    out = []
    for v in values or ():
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return tuple(out)


#: --color: auto (a terminal, unless NO_COLOR), always, never
_color_mode = "auto"


def _use_color(stream) -> bool:
    if _color_mode != "auto":
        return _color_mode == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


#: how much gradlint says besides the findings: -s/--silent, -q/--quiet, default, -v/--verbose
SILENT, QUIET, NORMAL, VERBOSE = 0, 1, 2, 3
_level = NORMAL


def _say(message: str = "", **kwargs) -> None:
    """A summary, note or warning on stderr: said unless --quiet or --silent."""
    if _level >= NORMAL:
        click.echo(message, err=True, **kwargs)


def _detail(message: str) -> None:
    """What only --verbose says (the configuration, the files, the cache)."""
    if _level >= VERBOSE:
        click.echo(f"gradlint: {message}", err=True)


def _fail(message: str) -> None:
    if _level > SILENT:
        click.echo(f"gradlint: error: {message}", err=True)


def rule_selection_options(f):
    """--select / --ignore, shared by every command that runs rules."""
    f = click.option(
        "--ignore", multiple=True, metavar="CODES", help="Rule codes or prefixes to skip (comma-separated)."
    )(f)
    f = click.option(
        "--select",
        multiple=True,
        metavar="CODES",
        help="Only these rule codes or prefixes (comma-separated), e.g. GL1,GL201.",
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradlint")
def cli() -> None:
    """Find the causes of vanishing and exploding gradients in PyTorch model code."""
    global _level, _color_mode
    _level, _color_mode = NORMAL, "auto"  # each command starts from the defaults (one process may run several)


def _formats():
    from gradlint.reporters import FORMATS

    return FORMATS


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


@cli.command(cls=_CheckCommand)
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
    global _level, _color_mode
    _level = SILENT if silent else QUIET if quiet else VERBOSE if verbose else NORMAL
    _color_mode = color_mode
    from gradlint.reporters import render
    from gradlint.reporters import statistics as render_statistics
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
        if _level > SILENT:
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
        from gradlint.engine import enabled_codes

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
            if fixed.diff and _level > SILENT:
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
    if statistics:
        out = render_statistics(result.diagnostics, unsafe=unsafe_fixes)
    else:
        out = render(
            output_format,
            result.diagnostics,
            color=color,
            root=os.getcwd(),
            sources=result.sources,
            files_checked=result.files,
        )
    if output_file is not None:
        try:
            _write_report(output_file, out)
        except OSError as exc:
            _fail(f"cannot write {output_file}: {exc.strerror or exc}")
            sys.exit(EXIT_ERROR)
    elif out and _level > SILENT:
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


#: --watch: seconds between two looks at the files (more when a look takes long)
WATCH_INTERVAL = 0.5


def _watch(targets, resolver, cache, output_format, statistics, unsafe) -> int:
    """Check ``targets``, then again each time a file to check, or a configuration file the
    run read, is added, changed or removed. It polls (no file-system events), and each run
    goes through the result cache, so only the changed files are analysed again. Ctrl-C ends
    it with exit 0."""
    from gradlint.config_resolve import Resolver
    from gradlint.files import discover
    from gradlint.reporters import render
    from gradlint.reporters import statistics as render_statistics
    from gradlint.run import lint_paths

    def stamp(path):
        try:
            st = os.stat(path)
            return (path, st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return (path, None)

    def signature():
        """(the files to check, the configuration files that are or could be read) with their stats."""
        found = _configured(lambda: discover(targets, resolve=resolver))
        folders = set()
        for path in found.files:
            folder = os.path.dirname(os.path.abspath(path))
            while folder not in folders:
                folders.add(folder)
                parent = os.path.dirname(folder)
                if parent == folder:
                    break
                folder = parent
        candidates = {os.path.join(f, name) for f in folders for name in ("pyproject.toml", "gradlint.toml")}
        candidates |= {str(p) for p in resolver.read_files()}
        return tuple(map(stamp, found.files)), tuple(map(stamp, sorted(candidates)))

    def once(reason: str) -> None:
        if sys.stdout.isatty() and _level > SILENT:
            click.clear()
        _say(f"[{time.strftime('%H:%M:%S')}] {reason}")
        result = _configured(lambda: lint_paths(targets, resolver, cache_dir=cache))
        for _, message in result.errors:
            _fail(message)
        if statistics:
            out = render_statistics(result.diagnostics, unsafe=unsafe)
        else:
            color = output_format == "full" and _use_color(sys.stdout)
            out = render(
                output_format,
                result.diagnostics,
                color=color,
                root=os.getcwd(),
                sources=result.sources,
                files_checked=result.files,
            )
        if out and _level > SILENT:
            click.echo(out, nl=False, color=output_format == "full" and _use_color(sys.stdout))
        _summary(result)
        _say("Watching for changes (Ctrl-C to stop).")
        sys.stdout.flush()

    import signal

    # Ctrl-C ends the watch even when gradlint was started with SIGINT ignored (a shell's
    # background job inherits that); SIGTERM ends it the same way
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        # the state is taken before each run: a change made while it runs is seen after it
        last = signature()
        once("Checking in watch mode...")
        while True:
            started = time.monotonic()
            now = signature()
            spent = time.monotonic() - started
            if now != last:
                if now[1] != last[1]:  # a configuration file changed, came or went: read them all again
                    resolver = Resolver(
                        resolver.overrides,
                        isolated=resolver.isolated,
                        config_file=resolver.config_file,
                        warn=resolver.warn,
                    )
                    now = signature()
                last = now
                once("File change detected...")
            time.sleep(max(WATCH_INTERVAL, 4 * spent))
    except KeyboardInterrupt:
        return EXIT_CLEAN


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


def _shown(path: str) -> str:
    return os.path.relpath(path) if os.path.isabs(path) else path


def _failing(level: str, refuted_fail: bool):
    """Whether a finding makes the run exit 1: at least as severe as ``level``, and not
    refuted by a measurement unless ``refuted_fail``."""
    from gradlint.config import FAIL_LEVELS

    least = FAIL_LEVELS.index(level)

    def fails(d) -> bool:
        if d.confidence == Confidence.REFUTED and not refuted_fail:
            return False
        return d.severity in FAIL_LEVELS and FAIL_LEVELS.index(d.severity) >= least

    return fails


def _all_rules():
    from gradlint.rule import all_rules

    return all_rules()


def _resolver(overrides, config_file, isolated):
    """Each file's settings (its nearest configuration, or ``--config``'s, or none with
    ``--isolated``) with the command line's values over them."""
    from gradlint.config_resolve import Resolver

    return _configured(
        lambda: Resolver(
            overrides, isolated=isolated, config_file=config_file, warn=lambda w: _say(f"gradlint: warning: {w}")
        )
    )


def _configured(call, *args):
    """``call(*args)``, where a configuration file that cannot be used ends the run (exit 2)."""
    from gradlint.config import ConfigError

    try:
        return call(*args)
    except ConfigError as exc:
        _fail(str(exc))
        sys.exit(EXIT_ERROR)


def _start_dir(paths):
    """Where the nearest configuration is looked for: the folder holding every path checked."""
    from pathlib import Path

    existing = [os.path.abspath(p) for p in paths if os.path.exists(p)]
    if not existing:
        # a name that is not on disk (--stdin-filename of a new buffer): its nearest existing folder
        for p in paths:
            folder = os.path.dirname(os.path.abspath(p))
            while folder and not os.path.isdir(folder):
                folder = os.path.dirname(folder)
            if folder:
                return Path(folder)
        return Path.cwd()
    common = os.path.commonpath(existing)
    return Path(common if os.path.isdir(common) else os.path.dirname(common))


def _cache_dir(cache_dir, config):
    if cache_dir:
        return os.path.abspath(cache_dir)
    configured = config.data.get("cache-dir")
    if configured:
        return str((config.root / configured).resolve())
    if os.environ.get("GRADLINT_CACHE_DIR"):
        return os.path.abspath(os.environ["GRADLINT_CACHE_DIR"])
    return str(config.root.resolve() / ".gradlint_cache")


def _write_report(path: str, text: str) -> None:
    from gradlint.text import write_atomic

    write_atomic(path, text.encode("utf-8"))


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


def _dynamic_options(config, device, seeds, timeout, memory_limit, report_dir, hide_refuted, scope=None):
    """CLI flags over ``[tool.gradlint.dynamic]`` over the defaults."""
    from gradlint.dynamic import DynamicOptions

    table = config.data.get("dynamic", {})
    options = DynamicOptions()
    options.device = device or table.get("device", options.device)
    options.seeds = seeds or table.get("seeds", options.seeds)
    options.timeout = float(timeout or table.get("timeout", options.timeout))
    limit = memory_limit if memory_limit is not None else table.get("memory-limit", options.memory_limit)
    options.memory_limit = float(limit) if limit else None
    options.thresholds = dict(table.get("thresholds", {}))
    options.models = dict(table.get("models", {}))
    report = report_dir or table.get("report")
    if report and config.path is not None and not report_dir:
        report = str(config.root / report)
    options.report = report
    options.hide_refuted = bool(hide_refuted if hide_refuted is not None else table.get("hide-refuted", False))
    options.scope = scope or table.get("scope", options.scope)
    return options


def _run_dynamic(diagnostics, options, output_format, files=()):
    from gradlint.dynamic import confirm

    interactive = (
        output_format in ("full", "concise") and sys.stderr.isatty() and not os.environ.get("CI") and _level >= NORMAL
    )
    bar = None

    def progress(done, total, label, measured, diagnostics):
        nonlocal bar
        if not interactive:
            # off a terminal (CI logs, pipes): one line per measured model, as each file finishes
            for m in measured:
                what = f"{m.note}" if m.note else f"{m.seeds} seed{'s' if m.seeds != 1 else ''} on {m.device}"
                _say(f"gradlint --dynamic: {os.path.relpath(m.path)}::{m.name} measured in {m.seconds:.1f} s ({what})")
            return
        if total == 0:
            return
        if bar is None:
            bar = click.progressbar(
                length=total, label="gradlint --dynamic", file=sys.stderr, item_show_func=lambda x: x, show_pos=True
            )
            bar.__enter__()
        bar.update(done - bar.pos, label or None)
        if done >= total:
            bar.__exit__(None, None, None)

    outcome = confirm(diagnostics, options, progress=progress, files=files)
    messages = list(outcome.notes)
    shown = 10  # models without findings that could not be measured: the first few, then a count
    messages += outcome.unmeasured[:shown]
    if len(outcome.unmeasured) > shown:
        messages.append(
            f"... and {len(outcome.unmeasured) - shown} more model(s) without findings not measured"
            + (" (listed in the report)" if options.report else "")
        )
    counts: dict = {}
    for d in outcome.diagnostics:
        verdict = dict(d.evidence).get("verdict") if d.evidence else None
        if verdict:
            counts[verdict] = counts.get(verdict, 0) + 1
    device = outcome.device or "no device (nothing was run)"
    tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no finding to measure"
    messages.append(
        f"Dynamic: {len(outcome.models)} model{'s' if len(outcome.models) != 1 else ''} measured on {device}, "
        f"{options.seeds} seed{'s' if options.seeds != 1 else ''}: {tally}."
    )
    kept = outcome.diagnostics
    if options.hide_refuted:
        kept = [d for d in kept if d.confidence != Confidence.REFUTED]
    if options.report:
        from gradlint.dynamic.report import write_report

        charts: list[str] = []
        try:
            index = write_report(options.report, outcome, options.thresholds, written=charts)
        except ImportError as exc:
            _fail(f"--report needs matplotlib ({exc}): {install_hint('dynamic')}")
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            _fail(f"cannot write the report to {options.report}: {exc.strerror or exc}")
            sys.exit(EXIT_ERROR)
        messages.append(
            f"Report: {index} ({len(outcome.models)} model{'s' if len(outcome.models) != 1 else ''}, "
            f"{len(charts)} chart{'s' if len(charts) != 1 else ''})"
        )
    return kept, messages


def _check_stdin(
    filename, settings, output_format, output_file, statistics, fix, unsafe, diff, exit_zero, failing
) -> int:
    """``gradlint check -``: lint (or with ``--fix`` fix, printing the fixed source) what
    standard input holds, as the file ``--stdin-filename`` names."""
    from gradlint.files import MAX_FILE_BYTES, MAX_NOTEBOOK_BYTES
    from gradlint.reporters import render
    from gradlint.reporters import statistics as render_statistics
    from gradlint.run import analyse_any
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
            if _level > SILENT:
                sys.stdout.write(unified_diff(path, old_text, new_text) if fixed else "")
            _say(f"Would fix {len(fixed)} finding{'s' if len(fixed) != 1 else ''}." if fixed else "No fixes available.")
            return EXIT_FINDINGS if fixed else EXIT_CLEAN
        if _level > SILENT:
            sys.stdout.buffer.write(new)  # the fixed source, for the editor or tool that piped it in
        sys.stdout.flush()
        left = analyse_any(new, path, settings).diagnostics
        _say(f"Fixed {len(fixed)} finding{'s' if len(fixed) != 1 else ''}, {len(left)} left.")
        return EXIT_FINDINGS if any(map(failing, left)) and not exit_zero else EXIT_CLEAN
    result = analyse_any(data, path, settings)
    diags = result.diagnostics
    text = decode(data) if not path.endswith(".ipynb") else None
    if statistics:
        out = render_statistics(diags, unsafe=unsafe)
    else:
        out = render(
            output_format,
            diags,
            color=output_file is None and output_format == "full" and _use_color(sys.stdout),
            root=os.getcwd(),
            sources={path: text} if text is not None else {},
            files_checked=[path],
        )
    if output_file is not None:
        try:
            _write_report(output_file, out)
        except OSError as exc:
            _fail(f"cannot write {output_file}: {exc.strerror or exc}")
            return EXIT_ERROR
    elif out and _level > SILENT:
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
    safe = sum(1 for d in diags if d.fix is not None and d.fix.applicability == "safe")
    unsafe = sum(1 for d in diags if d.fix is not None and d.fix.applicability == "unsafe")
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


@cli.command("rule")
@click.argument("code")
@click.option(
    "--pager/--no-pager",
    default=None,
    help="Page the documentation (default: on a terminal, through $GRADLINT_PAGER, $PAGER or less, as git does).",
)
def rule_cmd(code, pager):
    """Explain one rule: its documentation, levels, options and examples (markdown; rendered on a terminal)."""
    from gradlint.rule import all_rules, rule_by_code

    rule = rule_by_code(code)
    if rule is None:
        names = [r.code for r in all_rules()] + [r.name for r in all_rules()]
        close = difflib.get_close_matches(code, names, n=1)
        _fail(
            f"unknown rule `{code}`" + (f"; did you mean `{close[0]}`?" if close else "; `gradlint rules` lists them")
        )
        sys.exit(EXIT_ERROR)
    from gradlint.docs import render_markdown, rule_markdown

    text = rule_markdown(rule)
    terminal = sys.stdout.isatty()
    if not terminal:
        click.echo(text, nl=False)  # markdown, for a file or another program
        return
    width = min(shutil.get_terminal_size((100, 40)).columns, 100)
    rendered = render_markdown(text, width=width, color=_use_color(sys.stdout))
    if pager is False or os.environ.get("GRADLINT_PAGER", os.environ.get("PAGER")) == "":
        click.echo(rendered, nl=False)
        return
    # as git: less quits at once when it all fits (F), keeps colours (R) and the screen (X)
    os.environ.setdefault("LESS", "FRX")
    if os.environ.get("GRADLINT_PAGER"):
        os.environ["PAGER"] = os.environ["GRADLINT_PAGER"]
    click.echo_via_pager(rendered, color=_use_color(sys.stdout))


@cli.command("rules")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules_cmd(output_format):
    """List every rule with the levels its findings can have."""
    from gradlint.rule import all_rules

    rules = all_rules()
    if output_format == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "code": r.code,
                        "name": r.name,
                        "severity": r.severity,
                        "severities": r.levels(),
                        "summary": r.summary,
                        "options": r.options,
                    }
                    for r in rules
                ],
                indent=2,
            )
        )
        return
    for r in rules:
        click.echo(f"{r.code}  {r.name:<30} {'/'.join(r.levels()):<19} {r.summary}")
    click.echo(
        "\nA rule with several levels gives each finding the one its numbers call for (a gradient predicted "
        "100x beyond its threshold is an error, for instance): `gradlint rule CODE` says when. --fail-level "
        "sets which levels fail the run (default: warning and error)."
    )


@cli.command("schema")
@click.option("--pyproject", is_flag=True, help="A schema for a whole pyproject.toml that checks its [tool.gradlint].")
def schema_cmd(pyproject):
    """Print the JSON Schema of the configuration ([tool.gradlint], or a gradlint.toml), for editors."""
    from gradlint.schema import config_schema, pyproject_schema

    click.echo(json.dumps(pyproject_schema() if pyproject else config_schema(), indent=2))


@cli.command("graph")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text", show_default=True)
@click.option("--model", "model", metavar="CLASS", help="Only this model class.")
@click.option("--flow", is_flag=True, help="Print the predicted gradient-flow profile per layer instead.")
@click.option(
    "--as-checked",
    is_flag=True,
    help="The graphs as `check` builds them: models as the script configures them, blocks marked "
    "when checked inside their model, the sequence length the training code uses.",
)
def graph_cmd(file, fmt, model, flow, as_checked):
    """Print the layer graph gradlint builds for FILE (or, with --flow, its flow profile)."""
    import ast

    from gradlint.graph.builder import build_graphs
    from gradlint.graph.dump import RENDERERS
    from gradlint.text import decode

    try:
        with open(file, "rb") as fh:
            data = fh.read()
        tree = ast.parse(decode(data), filename=file)
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
        sys.exit(EXIT_ERROR)
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        where = f":{exc.lineno}" if getattr(exc, "lineno", None) else ""
        _fail(f"cannot parse {file}{where}: {getattr(exc, 'msg', None) or exc}")
        sys.exit(EXIT_ERROR)
    if as_checked:
        from gradlint.engine import checked_graphs
        from gradlint.text import split_lines

        graphs = checked_graphs(tree, file, split_lines(decode(data)))[1]
    else:
        graphs = build_graphs(tree, file)
    if model:
        graphs = [g for g in graphs if g.name == model]
        if not graphs:
            _fail(f"no model class `{model}` in {file}")
            sys.exit(EXIT_ERROR)
    if flow:
        from gradlint.flow import dump as flow_dump

        if fmt == "dot":
            _fail("--flow prints text or json, not dot")
            sys.exit(EXIT_ERROR)
        click.echo((flow_dump.render_json if fmt == "json" else flow_dump.render_text)(graphs), nl=False)
        return
    click.echo(RENDERERS[fmt](graphs), nl=False)


@cli.command("server")
def server_cmd():
    """Run the language server over stdio (needs torch-gradlint[lsp]); editors start it."""
    try:
        import pygls  # noqa: F401
    except ImportError:
        _fail(f"the language server needs pygls: {install_hint('lsp')}")
        sys.exit(EXIT_ERROR)
    from gradlint.server import main as serve

    serve()


def main() -> None:
    cli(prog_name="gradlint")
