"""``gradlint check --dynamic``: its options, the measurement's progress, and what it says after."""

from __future__ import annotations

import os
import sys

import click

from gradlint import install_hint
from gradlint.cli import output
from gradlint.cli.output import EXIT_ERROR, NORMAL, _fail, _say
from gradlint.vocab import Confidence


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
        output_format in ("full", "concise")
        and sys.stderr.isatty()
        and not os.environ.get("CI")
        and output.level >= NORMAL
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
