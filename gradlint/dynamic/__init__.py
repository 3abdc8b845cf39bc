"""``gradlint check --dynamic``: each finding checked by a real backward pass.

A post-processing stage over the static diagnostics (DESIGN.md): plan what to measure from
the findings' targets (:mod:`.plan`), run one isolated child per model file
(:mod:`.runner` → :mod:`.worker` and the modules it alone imports, the only code that imports
torch or the user's file), judge the numbers (:mod:`.verdict`), and hand back the
diagnostics with verdicts and evidence, plus the per-layer measurements for the report
(:mod:`.report`).
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from gradlint import install_hint
from gradlint.diagnostics import Diagnostic
from gradlint.dynamic import verdict as V
from gradlint.dynamic import zygote_client
from gradlint.dynamic.plan import TRAINING_SEQUENCE, plan
from gradlint.dynamic.runner import remove_stale_folders, run_child
from gradlint.rule import all_rules, char_column
from gradlint.vocab import Confidence, Hazard, Probe

INSTALL_HINT = f"--dynamic needs torch: {install_hint('dynamic')}"


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


@dataclass
class DynamicOptions:
    device: str = "auto"
    seeds: int = 3
    timeout: float = 300.0  # seconds per model file
    memory_limit: float | None = 8.0  # GiB of address space per child; None: no cap
    thresholds: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # (abs path, name) -> config table
    steps: int = 8  # BPTT training steps for recurrent findings
    seq_len: int = TRAINING_SEQUENCE  # the BPTT length when the training code does not say
    report: str | None = None  # folder for the charts and index.html
    jobs: int = 0  # model files measured at once (0: one per core)
    hide_refuted: bool = False
    #: ``all``: every model of the checked files; ``findings``: only the models with findings
    scope: str = "all"
    #: ``enabled(path)``: the codes enabled for a file; a GL9xx finding is made only where its
    #: code is (None: all are)
    enabled: object = None


@dataclass
class ModelMeasurement:
    """One model's measurement, for the report."""

    path: str
    name: str
    device: str | None
    seeds: int
    seconds: float
    layers: list  # [{"name", "norms", "output_norms", "kind", "weighted"}] in execution order
    findings: list = field(default_factory=list)  # indexes into the diagnostics
    note: str | None = None
    modules: list = field(default_factory=list)  # every submodule, in execution order (forward hooks)
    hazard: dict = field(default_factory=dict)  # verdict.model_class: what the whole model measures
    probes: dict = field(default_factory=dict)  # diagnostic index -> the probe's raw measurements
    #: ``{"seeds": [...], "steps": n}``: the seeds in which a gradient blocked below the last
    #: weighted layer at initialization flows after ``steps`` SGD steps
    recovered: dict = field(default_factory=dict)


@dataclass
class DynamicOutcome:
    diagnostics: list
    notes: list  # one line each: models that could not be measured
    models: list  # ModelMeasurement
    device: str | None
    #: models without findings that were not measured, and why (one line each)
    unmeasured: list = field(default_factory=list)


def _with_verdict(d, verdict: str, numbers: dict, text: str, device: str | None, seeds: int, seconds: float | None):
    evidence = {"verdict": verdict, "device": device, "seeds": seeds, "summary": text, **numbers}
    if seconds is not None:
        evidence["seconds"] = round(seconds, 3)
    confidence = verdict if verdict in (V.CONFIRMED, V.REFUTED) else d.confidence
    return replace(d, confidence=confidence, evidence=tuple(evidence.items()))


def _not_run(d, note: str):
    return replace(d, evidence=(("verdict", "not-run"), ("summary", f"not measured: {note}")))


def confirm(diagnostics, options: DynamicOptions, progress=None, files=()) -> DynamicOutcome:
    """Measure the models of the run: with ``options.scope == "all"`` every model of ``files``
    (the checked files) and of the findings, else only the models findings target. Findings
    get verdicts; a hazard a model measures that no finding of it predicted becomes a finding
    of its own (GL9xx); findings without a target are returned as they were.

    ``progress(done, total, label, measured, diagnostics)`` is called as model files finish;
    ``measured``: the :class:`ModelMeasurement` of each model of that file, complete (its
    findings' verdicts, and its GL9xx finding, are in ``diagnostics`` then).
    """
    diagnostics = list(diagnostics)
    remove_stale_folders()  # of earlier runs whose gradlint was killed before it cleaned up
    by_file, plan_notes, unmeasured = plan(diagnostics, options.models, files=files, scope=options.scope)
    run = _Run(options, diagnostics, unmeasured=unmeasured, progress=progress)
    notes = run.notes
    for i, note in plan_notes.items():
        diagnostics[i] = _not_run(diagnostics[i], note)
        notes.append(
            f"{diagnostics[i].path}:{diagnostics[i].line}: dynamic check skipped for {diagnostics[i].code}: {note}"
        )
    files_planned = sorted(by_file.items())
    run.workers = max(1, min(len(files_planned) or 1, options.jobs or os.cpu_count() or 1))

    try:
        _measure(run, files_planned)
    finally:
        zygote_client.close()  # the fork server of this run (its children are done)
    return DynamicOutcome(run.diagnostics, run.notes, run.models, run.device, run.unmeasured)


@dataclass
class _Run:
    """One ``--dynamic`` run: its options, and what it finds as model files finish (the
    findings with their verdicts, notes, measurements, models not measured, the device)."""

    options: DynamicOptions
    diagnostics: list
    notes: list[str] = field(default_factory=list)
    models: list[ModelMeasurement] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)
    progress: object = None
    workers: int = 1
    device: str | None = None  # as the children report it

    @property
    def cap(self) -> int | None:
        """Bytes of memory per child, or None: no cap."""
        return int(self.options.memory_limit * 2**30) if self.options.memory_limit else None

    def spec_of(self, path, runnable) -> dict:
        """What the child measuring one model file is told."""
        o = self.options
        return {
            "path": path,
            "device": o.device,
            "seeds": o.seeds,
            "steps": o.steps,
            "seq_len": o.seq_len,
            "threads": max(1, (os.cpu_count() or 1) // self.workers),
            "models": [j.spec(str(k)) for k, j in enumerate(runnable)],
        }


def _measure(run: _Run, files_planned) -> None:
    diagnostics, notes, models, progress = run.diagnostics, run.notes, run.models, run.progress
    total = len(files_planned)
    futures = {}
    with ThreadPoolExecutor(max_workers=run.workers) as pool:
        for path, jobs in files_planned:
            runnable = [j for j in jobs if j.input is not None]
            if runnable:
                futures[path] = pool.submit(run_child, run.spec_of(path, runnable), run.options.timeout, run.cap)
        done_count = 0
        if progress:
            progress(0, total, "", [], diagnostics)
        for path, jobs in files_planned:
            rel = os.path.relpath(path)
            runnable = [j for j in jobs if j.input is not None]
            for job in jobs:
                if job.input is None:
                    why = (
                        f"cannot synthesize an input: {job.input_note} — set inputs (or input-shape, input-fn) under "
                        f'[tool.gradlint.dynamic.models."{job.config_key}"]'
                    )
                    notes.append(f"{rel}: dynamic check skipped for `{job.name}`: {why}")
                    for i, *_ in job.probes:
                        diagnostics[i] = _not_run(diagnostics[i], why)
            before = len(models)
            if runnable:
                child = futures[path].result()
                if run.device is None:
                    run.device = child.data.get("device")
                _collect(run, child, runnable, rel, path)
            done_count += 1
            if progress:
                progress(done_count, total, rel, models[before:], diagnostics)


def _collect(run: _Run, child, runnable, rel, path) -> None:
    """Verdicts for one file's models from its child's result (or notes for why not)."""
    options, diagnostics, notes, models, unmeasured = (
        run.options,
        run.diagnostics,
        run.notes,
        run.models,
        run.unmeasured,
    )
    data = child.data
    device = data.get("device")
    t = {**V.THRESHOLDS, **(options.thresholds or {})}
    for k, job in enumerate(runnable):
        entry = data.get("models", {}).get(str(k))
        if data.get("import_note"):
            why = data["import_note"]
        elif entry is None:
            why = child.note or "the child process ended without a result"
        elif not entry.get("ok"):
            why = entry.get("note", "failed")
        else:
            why = None
        if why is not None:
            if job.probes:
                notes.append(f"{rel}: dynamic check skipped for `{job.name}`: {why}")
            else:
                unmeasured.append(f"{rel}::{job.name}: not measured: {why}")
            for i, *_ in job.probes:
                diagnostics[i] = _not_run(diagnostics[i], why)
            continue
        measurement = ModelMeasurement(
            path,
            job.name,
            device,
            options.seeds,
            entry.get("seconds", 0.0),
            entry["layers"],
            modules=list(entry.get("modules") or ()),
            recovered=dict(entry.get("recovered") or {}),
        )
        measurement.hazard = V.model_class(entry["layers"], t)
        for i, expect, layers, _clip, _length in job.probes:
            raw = entry.get("probes", {}).get(str(i), {})
            measurement.probes[i] = raw
            verdict, numbers, text = V.judge(
                expect, layers, entry, raw, options.thresholds, claim=getattr(diagnostics[i], "hazard", Hazard.NONE)
            )
            diagnostics[i] = _with_verdict(
                diagnostics[i], verdict, numbers, text, device, options.seeds, entry.get("seconds")
            )
            measurement.findings.append(i)
        finding = measured_finding(job, measurement, [diagnostics[i] for i, *_ in job.probes], t, options)
        if finding is not None:
            # appended at once: the original findings keep their indexes, and the file's
            # measurements are complete when progress reports them (the report draws them then)
            measurement.findings.append(len(diagnostics))
            diagnostics.append(finding)
        models.append(measurement)


def measured_finding(job, measurement, findings, t, options):
    """A GL9xx finding for a hazard the model measures that none of its findings predicted
    (their ``hazard``), at the class (or the line that configures the model); None otherwise."""

    hazard = measurement.hazard.get("hazard")
    rule = measured_rules().get(hazard)
    if rule is None or job.span is None:
        return None
    code = rule.code
    if options.enabled is not None and code not in options.enabled(job.path):
        return None
    if any(hazard in predicted_classes(d) for d in findings):
        return None
    recovered = (measurement.recovered or {}).get("seeds") or ()
    if hazard == Hazard.DEAD and len(recovered) * 2 > measurement.seeds:
        # the gradient is blocked only until a zero-initialized layer (an output head, a
        # deliberate choice) has had its first update: not a dead network
        return None
    line, col, end_line, end_col = job.span
    text, notebook = "", None
    try:
        from gradlint.files import read_source
        from gradlint.text import decode, split_lines

        if job.path.endswith(".ipynb"):  # the graph's lines are the code cells' joined source
            from gradlint.notebook import load

            notebook = load(read_source(job.path))
            text = notebook.virtual
        else:
            text = decode(read_source(job.path))
        lines = split_lines(text)
    except Exception:  # noqa: BLE001 - the columns then count bytes; the finding stays
        lines = []
    if lines and _suppressed(text, lines, line, code, rule.name):
        return None
    model = measurement.hazard
    text = V.describe_class(model, t)
    kind, _, numbers = text.partition(": ")
    message = (
        f"a real backward pass ({measurement.seeds} seed{'s' if measurement.seeds != 1 else ''} on "
        f"{measurement.device}) measures"
        f" {_a_hazard(kind)} "
        f"in `{job.name}`: {numbers}; no static finding predicted it"
    )
    evidence = {
        "verdict": V.CONFIRMED,
        "device": measurement.device,
        "seeds": measurement.seeds,
        "summary": f"measured {text}",
        "measured_hazard": hazard,
        "decided_by": model.get("test"),
        "first_layer": model.get("first_layer"),
        "last_layer": model.get("last_layer"),
        "ratio": model.get("ratio"),
        "first_grad_norm": model.get("first"),
        "total_grad_norm": model.get("total"),
        "leaves_band_at": model.get("leaves_band_at"),
        "layers": [{"name": e["name"], "grad_norm": V.geomean(e["norms"])} for e in measurement.layers],
        "seconds": round(measurement.seconds, 3),
    }
    finding = Diagnostic(
        path=job.path
        if not os.path.isabs(job.path)
        else os.path.relpath(job.path)
        if _under_cwd(job.path)
        else job.path,
        line=line,
        column=char_column(lines, line, col),
        end_line=end_line,
        end_column=char_column(lines, end_line, end_col),
        code=code,
        name=rule.name,
        severity=rule.severity,
        message=message,
        confidence=Confidence.MEASURED,
        help=rule.measured_help,
        evidence=tuple(evidence.items()),
        hazard=hazard,
        target=(
            ("model", job.name),
            ("layers", (model.get("first_layer"), model.get("last_layer"))),
            ("expect", hazard),
        ),
    )
    if notebook is not None:  # at its cell and the line within it, as the static findings are
        from gradlint.notebook import map_diagnostic

        finding = map_diagnostic(notebook, finding)
    return finding


#: what a finding's ``expect`` claims, as measured hazard classes
_EXPECTS = {
    Probe.VANISHING: {Hazard.VANISHING},
    Probe.EXPLODING: {Hazard.EXPLODING},
    Probe.DEAD: {Hazard.DEAD},
    Probe.RECURRENT_VANISHING: {Hazard.VANISHING},
    Probe.RECURRENT_EXPLODING: {Hazard.EXPLODING},
    Probe.SYMMETRIC: {Hazard.DEAD},
    Probe.STARVED: {Hazard.DEAD},
    Probe.DEGRADATION: {Hazard.VANISHING, Hazard.EXPLODING},
}
#: a dead first layer is a vanished gradient, and the reverse: one family for "predicted"
_FAMILY = {
    Hazard.VANISHING: {Hazard.VANISHING, Hazard.DEAD},
    Hazard.DEAD: {Hazard.DEAD, Hazard.VANISHING},
    Hazard.EXPLODING: {Hazard.EXPLODING},
}


def predicted_classes(d) -> set:
    """The hazard classes a static finding predicts: its ``hazard``, and what its target expects."""
    out = set()
    hazard = getattr(d, "hazard", Hazard.NONE)
    if hazard and hazard != Hazard.NONE:
        out.add(Hazard(hazard))
    expect = dict(d.target).get("expect") if d.target else None
    out |= _EXPECTS.get(expect, set())
    return {c for h in out for c in _FAMILY.get(h, {h})}


def _under_cwd(path: str) -> bool:
    try:
        return not os.path.relpath(path).startswith("..")
    except ValueError:
        return False


def _suppressed(text: str, lines, line: int, code: str, name: str) -> bool:
    from gradlint.suppressions import parse_directives, suppressing

    try:
        return bool(suppressing(parse_directives(text, lines), code, name, line))
    except Exception:  # noqa: BLE001
        return False


def measured_rules() -> dict:
    """The measured hazard class -> the GL9xx rule that reports it (each declares its
    ``measures`` and ``measured_help`` in its own file)."""
    return {rule.measures: rule for rule in all_rules() if rule.measured}


def _a_hazard(kind: str) -> str:
    """ "a dead network", "an exploding gradient", "a vanishing gradient"."""
    if kind == Hazard.DEAD:
        return "a dead network"
    return f"an {kind} gradient" if kind[0] in "aeiou" else f"a {kind} gradient"
