"""``--report DIR``: gradient-flow charts per model (SVG) and one HTML page listing them.

The charts are drawn by :mod:`gradlint.dynamic.charts` (what they plot:
:mod:`gradlint.dynamic.chart_data`), several at once by a pool of processes forked with
matplotlib imported; this module names their files and writes ``index.html``: a table of the
measured models, then per model its charts, its findings with their verdicts and the static
prediction against the measurement, then what was not measured.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from gradlint.dynamic.chart_data import prediction_line
from gradlint.dynamic.charts import FIGSIZE, _plt, chart, symmetry_chart, training_chart
from gradlint.text import write_atomic
from gradlint.vocab import Probe


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


# ---------------------------------------------------------------- the page
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gradlint --dynamic report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
h2 {{ font-size: 1.05em; margin-top: 2.2em; border-top: 1px solid #ddd; padding-top: 1em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
.confirmed {{ color: #c0392b; font-weight: bold; }} .refuted {{ color: #2e86c1; font-weight: bold; }}
.inconclusive, .not-run {{ color: #b7950b; font-weight: bold; }}
.healthy {{ color: #1e8449; }} .vanishing, .exploding, .dead {{ color: #c0392b; }}
object {{ width: 100%; aspect-ratio: {aspect}; border: 1px solid #eee; display: block; }}
.muted {{ color: #777; }}
code {{ background: #f4f6f6; padding: 0 0.2em; border-radius: 3px; }}
.prediction {{ font-size: 0.9em; margin: 0.4em 0 0 0; }}
</style></head><body>
<h1>gradlint --dynamic</h1>
<p class="muted">{summary}</p>
{overview}
{sections}
{skipped}
</body></html>
"""


def _draw_one(task) -> str:
    func, args = task
    func(*args)
    return args[-1].name


def _pool(workers: int):
    """A pool of chart drawers forked from this process with matplotlib already imported
    (called once the measurement is over: no other thread of gradlint runs then); None where
    none can start."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _plt()
    try:
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    except (OSError, ValueError, RuntimeError, ImportError):
        return None


def markdown(text: str) -> str:
    """The inline markdown of gradlint's messages as HTML: `code` spans (escaped first)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def _embed(name: str, alt: str) -> str:
    # <object>, not <img>: the SVG's tooltips then show on hover
    return (
        f'<object type="image/svg+xml" data="{html.escape(name)}" aria-label="{html.escape(alt)}">'
        f'<img src="{html.escape(name)}" alt="{html.escape(alt)}"></object>'
    )


class ReportWriter:
    """``--report DIR``: :meth:`add` queues models' charts (drawn by a pool of processes, on
    every core), :meth:`finish` waits for them and writes ``index.html``."""

    def __init__(self, folder: str, thresholds: dict | None = None, parallel: bool = True):
        self.out = Path(folder)
        self.out.mkdir(parents=True, exist_ok=True)
        self.thresholds = thresholds or {}
        self.used: set[str] = set()
        self.charts: dict[int, tuple[str, list]] = {}  # id(measurement) -> (name, [(file, what)])
        self.written: list[str] = []
        self.futures: list = []
        self.pool = _pool(os.cpu_count() or 1) if parallel and (os.cpu_count() or 1) > 1 else None

    def add(self, models, diagnostics) -> None:
        """Queue the charts of ``models`` (their findings' verdicts final)."""
        for m in models:
            base = _slug(f"{Path(m.path).stem}-{m.name}")
            name, n = base, 1
            while name in self.used:
                n += 1
                name = f"{base}-{n}"
            self.used.add(name)
            mine = {i: diagnostics[i] for i in m.findings}  # what the charts read, not the whole run
            tasks = [(chart, (m, mine, self.thresholds, self.out / f"{name}.svg"))]
            charts = [(f"{name}.svg", "gradient flow")]
            for i in m.findings:
                d = diagnostics[i]
                expect = dict(d.target).get("expect") if d.target else None
                file = f"{name}-{d.code}-line{d.line}.svg"
                if expect in (Probe.SYMMETRIC, Probe.STARVED) and i in m.probes:
                    tasks.append((symmetry_chart, (m, m.probes[i], d, self.thresholds, self.out / file)))
                    charts.append((file, f"{d.code}: row spread"))
                elif expect == Probe.RECURRENT_EXPLODING and d.evidence and dict(d.evidence).get("per_step"):
                    tasks.append((training_chart, (m, d, self.thresholds, self.out / file)))
                    charts.append((file, f"{d.code}: gradient norm per training step"))
            self.charts[id(m)] = (name, charts)
            self.written.extend(file for file, _ in charts)
            for task in tasks:
                self.futures.append(self._submit(task))

    def _submit(self, task):
        if self.pool is not None:
            try:
                return self.pool.submit(_draw_one, task)
            except (OSError, RuntimeError):  # the pool broke: draw here from now on
                self.pool = None
        _draw_one(task)
        return None

    def finish(self, outcome) -> Path:
        """Wait for the charts and write ``index.html``; return its path."""
        try:
            for future in self.futures:
                if future is not None:
                    future.result()
        finally:
            if self.pool is not None:
                self.pool.shutdown()
        return self._page(outcome)

    def _page(self, outcome) -> Path:
        diagnostics = outcome.diagnostics
        sections, rows = [], []
        for m in outcome.models:
            if id(m) not in self.charts:
                self.add([m], diagnostics)  # measured, but never handed to add(): drawn here
                for future in self.futures[-len(self.charts[id(m)][1]) :]:
                    if future is not None:
                        future.result()
            name, charts = self.charts[id(m)]
            finding_rows = []
            verdicts = []
            for i in m.findings:
                d = diagnostics[i]
                ev = dict(d.evidence)
                verdict = ev.get("verdict", "")
                verdicts.append(f'{d.code} <span class="{html.escape(verdict)}">{html.escape(verdict)}</span>')
                finding_rows.append(
                    f"<tr><td>{html.escape(d.path)}:{d.line}</td><td>{d.code}</td>"
                    f'<td class="{html.escape(verdict)}">{html.escape(verdict)}</td>'
                    f"<td>{markdown(d.message)}<br><span"
                    f' class="muted">{markdown(ev.get("summary", ""))}</span></td></tr>'
                )
            hazard = m.hazard or {}
            h = hazard.get("hazard", "unknown")
            h = "healthy" if h == "none" else h
            recovered = (getattr(m, "recovered", None) or {}).get("seeds") or ()
            after = (
                f", flows after {m.recovered.get('steps', 3)} SGD steps"
                if h == "dead" and len(recovered) * 2 > m.seeds
                else ""
            )
            anchor = f"m-{name}"
            rows.append(
                f'<tr><td><a href="#{anchor}">{html.escape(os.path.relpath(m.path))} ·'
                f" <code>{html.escape(m.name)}</code></a></td>"
                f'<td class="{html.escape(h)}">{html.escape(h)}{_test_note(hazard, after)}</td>'
                f"<td>{', '.join(verdicts) or '<span class=muted>no static finding</span>'}</td>"
                f"<td>{len(m.layers)}</td><td>{m.seconds:.1f} s</td></tr>"
            )
            line = prediction_line(m, diagnostics)
            table = (
                (
                    f"<table><tr><th>where</th><th>rule</th><th>verdict</th><th>finding and measurement</th></tr>"
                    f"{''.join(finding_rows)}</table>"
                )
                if finding_rows
                else ""
            )
            sections.append(
                f'<h2 id="{anchor}">{html.escape(os.path.relpath(m.path))} · <code>{html.escape(m.name)}</code> · '
                f'measured <span class="{html.escape(h)}">{html.escape(h)}</span></h2>'
                f'<p class="muted">{len(m.layers)} parameterized layers, {m.seeds} seed(s) on'
                f" {html.escape(str(m.device))}, "
                f"{m.seconds:.1f} s</p>"
                + "".join(_embed(file, f"{what} of {m.name}") for file, what in charts)
                + table
                + (f'<p class="prediction">{html.escape(line)}</p>' if line else "")
            )
        skipped = ""
        missing = list(outcome.notes) + list(getattr(outcome, "unmeasured", ()))
        if missing:
            items = "".join(f"<li>{markdown(n)}</li>" for n in missing)
            skipped = f"<h2>Not measured</h2><ul>{items}</ul>"
        counts = {}
        for d in diagnostics:
            v = dict(d.evidence).get("verdict") if d.evidence else None
            if v:
                counts[v] = counts.get(v, 0) + 1
        summary = f"{len(outcome.models)} model(s) measured on {html.escape(str(outcome.device))}; " + (
            ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no findings to measure"
        )
        overview = (
            (
                "<table><tr><th>model</th><th>measured</th><th>findings</th><th>layers</th><th>time</th></tr>"
                + "".join(rows)
                + "</table>"
            )
            if rows
            else ""
        )
        page = _PAGE.format(
            aspect=f"{FIGSIZE[0]:g} / {FIGSIZE[1]:g}",
            summary=summary,
            overview=overview,
            sections="\n".join(sections) or "<p>No model was measured.</p>",
            skipped=skipped,
        )
        index = self.out / "index.html"
        write_atomic(str(index), page.encode("utf-8"))
        return index


def write_report(folder: str, outcome, thresholds: dict | None = None, written: list | None = None) -> Path:
    """Write the charts of every measured model (SVG) and ``index.html``; return the page's
    path. The chart files' names are appended to ``written`` when it is given."""
    writer = ReportWriter(folder, thresholds, parallel=len(outcome.models) >= PARALLEL_FROM)
    writer.add(outcome.models, outcome.diagnostics)
    index = writer.finish(outcome)
    if written is not None:
        written.extend(writer.written)
    return index


#: fewer models than this are drawn in this process (a pool costs more than it saves)
PARALLEL_FROM = 8


def _test_note(hazard: dict, after: str) -> str:
    """`` (ratio test, …)`` after a measured class in the report's table, or nothing."""
    return f" ({html.escape(str(hazard['test']))} test{after})" if hazard.get("test") else ""
