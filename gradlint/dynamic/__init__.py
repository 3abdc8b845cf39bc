"""``gradlint check --dynamic``: each finding checked by a real backward pass.

A post-processing stage over the static diagnostics (DESIGN.md): plan what to measure from
the findings' targets (:mod:`.plan`), run one isolated child per model file
(:mod:`.runner` → :mod:`.worker`, the only code that imports torch or the user's file),
judge the numbers (:mod:`.verdict`), and hand back the diagnostics with verdicts and
evidence, plus the per-layer measurements for the report (:mod:`.report`).
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from gradlint.dynamic import verdict as V
from gradlint.dynamic.plan import plan
from gradlint.dynamic.runner import remove_stale_folders, run_child

INSTALL_HINT = "--dynamic needs torch: pip install 'gradlint[dynamic]'"


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
    seq_len: int = 200  # the long sequence of recurrent findings
    report: str | None = None  # folder for the charts and index.html
    jobs: int = 0  # model files measured at once (0: one per core)
    hide_refuted: bool = False


@dataclass
class ModelMeasurement:
    """One model's measurement, for the report."""

    path: str
    name: str
    device: str | None
    seeds: int
    seconds: float
    layers: list  # [{"name", "norms"}] in forward order
    findings: list = field(default_factory=list)  # indexes into the diagnostics
    note: str | None = None


@dataclass
class DynamicOutcome:
    diagnostics: list
    notes: list  # one line each: models that could not be measured
    models: list  # ModelMeasurement
    device: str | None


def _with_verdict(d, verdict: str, numbers: dict, text: str, device: str | None, seeds: int, seconds: float | None):
    evidence = {"verdict": verdict, "device": device, "seeds": seeds, "summary": text, **numbers}
    if seconds is not None:
        evidence["seconds"] = round(seconds, 3)
    confidence = verdict if verdict in (V.CONFIRMED, V.REFUTED) else d.confidence
    return replace(d, confidence=confidence, evidence=tuple(evidence.items()))


def _not_run(d, note: str):
    return replace(d, evidence=(("verdict", "not-run"), ("summary", f"not measured: {note}")))


def confirm(diagnostics, options: DynamicOptions, progress=None) -> DynamicOutcome:
    """Measure every finding that has a target; findings without one are returned as they were.

    ``progress(done, total, label, measured)`` is called as model files finish; ``measured``:
    the :class:`ModelMeasurement` of each model of that file.
    """
    diagnostics = list(diagnostics)
    remove_stale_folders()  # of earlier runs whose gradlint was killed before it cleaned up
    by_file, plan_notes = plan(diagnostics, options.models)
    notes: list[str] = []
    models: list[ModelMeasurement] = []
    device_seen = None
    for i, note in plan_notes.items():
        diagnostics[i] = _not_run(diagnostics[i], note)
        notes.append(f"{diagnostics[i].path}:{diagnostics[i].line}: dynamic check skipped for {diagnostics[i].code}: {note}")
    cap = int(options.memory_limit * 2**30) if options.memory_limit else None
    files = sorted(by_file.items())
    total = len(files)
    workers = max(1, min(len(files) or 1, options.jobs or os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)

    def spec_of(path, runnable):
        return {
            "path": path, "device": options.device, "seeds": options.seeds, "steps": options.steps,
            "seq_len": options.seq_len, "threads": threads,
            "models": [
                {"id": str(k), "name": j.name, "kwargs": j.kwargs, "input": j.input, "config_key": j.config_key,
                 "probes": [{"id": i, "expect": e, "layers": list(l), "clip": c, "length": n}
                            for i, e, l, c, n in j.probes]}
                for k, j in enumerate(runnable)
            ],
        }

    futures = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for path, jobs in files:
            runnable = [j for j in jobs if j.input is not None]
            if runnable:
                futures[path] = pool.submit(run_child, spec_of(path, runnable), options.timeout, cap)
        done_count = 0
        if progress:
            progress(0, total, "", [])
        for path, jobs in files:
            rel = os.path.relpath(path)
            runnable = [j for j in jobs if j.input is not None]
            for job in jobs:
                if job.input is None:
                    why = (f"cannot synthesize an input: {job.input_note} — set input-shape under "
                           f"[tool.gradlint.dynamic.models.\"{job.config_key}\"]")
                    notes.append(f"{rel}: dynamic check skipped for `{job.name}`: {why}")
                    for i, *_ in job.probes:
                        diagnostics[i] = _not_run(diagnostics[i], why)
            before = len(models)
            if runnable:
                child = futures[path].result()
                device_seen = device_seen or child.data.get("device")
                _collect(child, runnable, rel, path, options, diagnostics, notes, models)
            done_count += 1
            if progress:
                progress(done_count, total, rel, models[before:])
    return DynamicOutcome(diagnostics, notes, models, device_seen)


def _collect(child, runnable, rel, path, options, diagnostics, notes, models) -> None:
    """Verdicts for one file's models from its child's result (or notes for why not)."""
    data = child.data
    device = data.get("device")
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
            notes.append(f"{rel}: dynamic check skipped for `{job.name}`: {why}")
            for i, *_ in job.probes:
                diagnostics[i] = _not_run(diagnostics[i], why)
            continue
        measurement = ModelMeasurement(path, job.name, device, options.seeds, entry.get("seconds", 0.0), entry["layers"])
        for i, expect, layers, _clip, _length in job.probes:
            raw = entry.get("probes", {}).get(str(i), {})
            verdict, numbers, text = V.judge(expect, layers, entry, raw, options.thresholds)
            diagnostics[i] = _with_verdict(diagnostics[i], verdict, numbers, text, device, options.seeds, entry.get("seconds"))
            measurement.findings.append(i)
        models.append(measurement)
