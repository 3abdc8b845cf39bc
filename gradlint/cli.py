"""The command line: a thin click layer over the engine, reporters and graph dumps."""

from __future__ import annotations

import difflib
import json
import os
import sys

import click

from gradlint import __version__

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _split(values) -> tuple:
    out = []
    for v in values or ():
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return tuple(out)


def _use_color(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def _fail(message: str) -> None:
    click.echo(f"gradlint: error: {message}", err=True)


def rule_selection_options(f):
    """--select / --ignore, shared by every command that runs rules."""
    f = click.option("--ignore", multiple=True, metavar="CODES", help="Rule codes or prefixes to skip (comma-separated).")(f)
    f = click.option("--select", multiple=True, metavar="CODES", help="Only these rule codes or prefixes (comma-separated), e.g. GL1,GL201.")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradlint")
def cli() -> None:
    """Find the causes of vanishing and exploding gradients in PyTorch model code."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@rule_selection_options
@click.option("--output-format", type=click.Choice(["full", "concise", "json"]), default="full", show_default=True,
              help="How findings are printed.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Replace the default excludes (gitignore syntax).")
@click.option("--extend-exclude", multiple=True, metavar="PATTERN", help="Exclude these too (gitignore syntax).")
@click.option("--respect-gitignore/--no-respect-gitignore", default=True, show_default=True,
              help="Skip files that .gitignore files exclude.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=0, help="Worker processes (0: one per core).")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--dynamic", is_flag=True, help="Confirm each finding by a real backward pass (needs gradlint[dynamic]); runs your model code in a child process.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="[--dynamic] Where to run the backward passes (default: auto, CUDA when present).")
@click.option("--seeds", type=click.IntRange(min=1), default=None, help="[--dynamic] Random initializations measured per model (default: 3).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="[--dynamic] Seconds per model file before its child is stopped (default: 300).")
@click.option("--memory-limit", type=click.FloatRange(min=0), default=None, help="[--dynamic] GiB of memory per child process; 0: no cap (default: 8).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None, help="[--dynamic] Write a gradient-flow chart per model and an HTML page to this folder.")
@click.option("--hide-refuted", is_flag=True, default=None, help="[--dynamic] Drop findings the measurement refuted.")
def check(paths, select, ignore, output_format, exclude, extend_exclude, respect_gitignore, jobs, exit_zero,
          dynamic, device, seeds, timeout, memory_limit, report_dir, hide_refuted):
    """Check PATHS (files or directories; default: the current directory)."""
    from gradlint.engine import Settings, lint_paths
    from gradlint.files import DEFAULT_EXCLUDE
    from gradlint.reporters import render
    from gradlint.rule import all_rules

    select, ignore = _split(select), _split(ignore)
    known = [r.code for r in all_rules()] + [r.name for r in all_rules()]
    for code in (*select, *ignore):
        if not any(k.startswith(code.upper()) or k == code for k in known):
            _fail(f"unknown rule selector `{code}`; `gradlint rules` lists them")
            sys.exit(EXIT_ERROR)
    settings = Settings(
        select=select,
        ignore=ignore,
        exclude=_split(exclude) or DEFAULT_EXCLUDE,
        extend_exclude=_split(extend_exclude),
        respect_gitignore=respect_gitignore,
        jobs=jobs,
    )
    dynamic_options = None
    if dynamic:
        dynamic_options = _dynamic_options(device, seeds, timeout, memory_limit, report_dir, hide_refuted)
    result = lint_paths(paths or (".",), settings)
    for _, message in result.errors:
        _fail(message)
    missing_torch = False
    if dynamic_options is not None:
        from gradlint.dynamic import INSTALL_HINT, torch_available

        if not torch_available():
            missing_torch = True
        else:
            result.diagnostics, dynamic_messages = _run_dynamic(result.diagnostics, dynamic_options, output_format)
    color = _use_color(sys.stdout)
    out = render(output_format, result.diagnostics, color=color)
    if out:
        click.echo(out, nl=False, color=color)
    if dynamic_options is not None and not missing_torch:
        sys.stdout.flush()
        for line in dynamic_messages:
            click.echo(line, err=True)
    _summary(result)
    if missing_torch:
        _fail(INSTALL_HINT)
        sys.exit(EXIT_ERROR)
    if result.errors or result.internal_errors:
        sys.exit(EXIT_ERROR)
    if result.diagnostics and not exit_zero:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_CLEAN)


def _dynamic_options(device, seeds, timeout, memory_limit, report_dir, hide_refuted):
    """CLI flags over ``[tool.gradlint.dynamic]`` over the defaults."""
    from pathlib import Path

    from gradlint.config import ConfigError, load_config
    from gradlint.dynamic import DynamicOptions

    try:
        config = load_config(Path.cwd())
    except ConfigError as exc:
        _fail(str(exc))
        sys.exit(EXIT_ERROR)
    for warning in config.warnings:
        click.echo(f"gradlint: warning: {warning}", err=True)
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
    return options


def _run_dynamic(diagnostics, options, output_format):
    from gradlint.dynamic import confirm

    interactive = output_format in ("full", "concise") and sys.stderr.isatty() and not os.environ.get("CI")
    bar = None

    def progress(done, total, label):
        nonlocal bar
        if not interactive or total == 0:
            return
        if bar is None:
            bar = click.progressbar(length=total, label="gradlint --dynamic", file=sys.stderr,
                                    item_show_func=lambda x: x, show_pos=True)
            bar.__enter__()
        bar.update(done - bar.pos, label or None)
        if done >= total:
            bar.__exit__(None, None, None)

    outcome = confirm(diagnostics, options, progress=progress)
    messages = list(outcome.notes)
    counts: dict = {}
    for d in outcome.diagnostics:
        verdict = dict(d.evidence).get("verdict") if d.evidence else None
        if verdict:
            counts[verdict] = counts.get(verdict, 0) + 1
    device = outcome.device or "no device (nothing was run)"
    tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no finding to measure"
    messages.append(f"Dynamic: {len(outcome.models)} model{'s' if len(outcome.models) != 1 else ''} measured on {device}, "
                    f"{options.seeds} seed{'s' if options.seeds != 1 else ''}: {tally}.")
    kept = outcome.diagnostics
    if options.hide_refuted:
        kept = [d for d in kept if d.confidence != "refuted"]
    if options.report:
        from gradlint.dynamic.report import write_report

        try:
            index = write_report(options.report, outcome, options.thresholds)
        except ImportError as exc:
            _fail(f"--report needs matplotlib ({exc}): pip install 'gradlint[dynamic]'")
            sys.exit(EXIT_ERROR)
        messages.append(f"Report: {index} ({len(outcome.models)} model{'s' if len(outcome.models) != 1 else ''}, "
                        f"{len(outcome.models)} chart{'s' if len(outcome.models) != 1 else ''})")
    return kept, messages


def _summary(result) -> None:
    diags = result.diagnostics
    files = len({d.path for d in diags})
    counts = {s: sum(1 for d in diags if d.severity == s) for s in ("error", "warning", "info")}
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    checked = f"{result.files_checked} file{'s' if result.files_checked != 1 else ''} checked in {result.seconds:.2f} s."
    if diags:
        click.echo(f"Found {', '.join(parts)} in {files} file{'s' if files != 1 else ''}. {checked}", err=True)
    else:
        click.echo(f"No findings. {checked}", err=True)


@cli.command("rule")
@click.argument("code")
def rule_cmd(code):
    """Explain one rule: its documentation, options and examples."""
    from gradlint.rule import all_rules, rule_by_code

    rule = rule_by_code(code)
    if rule is None:
        names = [r.code for r in all_rules()] + [r.name for r in all_rules()]
        close = difflib.get_close_matches(code, names, n=1)
        _fail(f"unknown rule `{code}`" + (f"; did you mean `{close[0]}`?" if close else "; `gradlint rules` lists them"))
        sys.exit(EXIT_ERROR)
    click.echo(f"# {rule.code} {rule.name}\n")
    click.echo(f"Default severity: {rule.severity}")
    if rule.options:
        click.echo("Options: " + ", ".join(f"{k} = {v!r}" for k, v in rule.options.items()))
    click.echo()
    click.echo(rule.documentation())


@cli.command("rules")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules_cmd(output_format):
    """List every rule."""
    from gradlint.rule import all_rules

    rules = all_rules()
    if output_format == "json":
        click.echo(json.dumps([
            {"code": r.code, "name": r.name, "severity": r.severity, "summary": r.summary, "options": r.options}
            for r in rules
        ], indent=2))
        return
    for r in rules:
        click.echo(f"{r.code}  {r.name:<30} {r.severity:<8} {r.summary}")


@cli.command("graph")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text", show_default=True)
@click.option("--model", "model", metavar="CLASS", help="Only this model class.")
def graph_cmd(file, fmt, model):
    """Print the layer graph gradlint builds for FILE."""
    import ast

    from gradlint.engine import decode
    from gradlint.graph.builder import build_graphs
    from gradlint.graph.dump import RENDERERS

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
    graphs = build_graphs(tree, file)
    if model:
        graphs = [g for g in graphs if g.name == model]
        if not graphs:
            _fail(f"no model class `{model}` in {file}")
            sys.exit(EXIT_ERROR)
    click.echo(RENDERERS[fmt](graphs), nl=False)


def main() -> None:
    cli(prog_name="gradlint")
