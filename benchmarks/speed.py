"""gradlint speed benchmark.

    .venv/bin/python benchmarks/speed.py [--skip-libcst] [--jobs N] [--repeat N]

1. Makes sure the corpus of real model and training code is there (benchmarks/corpus.py).
2. Times one cold ``python -m gradlint check --output-format json`` over the
   whole corpus (a subprocess, cache disabled when the CLI allows it), counts
   the findings per code and checks that no GL002 (internal error) occurred.
   The raw JSON goes to benchmarks/.work/findings.json.
3. Times the floors in this process, one file after the other: reading every
   file and ``ast.parse`` on it, then ``libcst.parse_module`` (unless
   --skip-libcst). gradlint and the ast.parse floor are then timed again, interleaved,
   ``--repeat`` rounds in all (default 3), and the fastest run of each is compared: on a
   shared machine one run of either can be inflated by other load.
4. Linearity: gradlint over 10, 100 and 1000 copies of one small model file.

Prints plain text. Exit status: 0 fine, 1 gradlint reported GL002,
2 gradlint could not be run or failed (exit status other than 0/1, bad JSON).
Timings are ratios to compare, not pass/fail.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import corpus_files, count_lines, describe_versions, ensure_corpus  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
FINDINGS_JSON = WORK_DIR / "findings.json"
LIN_DIR = WORK_DIR / "lin"
LIN_SIZES = (10, 100, 1000)

GL_PARSE = "GL001"  # file could not be parsed
GL_INTERNAL = "GL002"  # internal error

# One small, realistic model file, copied many times for the linearity runs.
LIN_MODEL = '''\
"""A small sigmoid MLP classifier (benchmark input for gradlint)."""

import torch
from torch import nn


class SigmoidMLP(nn.Module):
    """Deep stack of Linear + Sigmoid layers."""

    def __init__(self, in_features: int = 784, hidden: int = 256, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.Sigmoid(),
            nn.Linear(hidden, hidden),
            nn.Sigmoid(),
            nn.Linear(hidden, hidden),
            nn.Sigmoid(),
            nn.Linear(hidden, hidden),
            nn.Sigmoid(),
            nn.Linear(hidden, hidden),
            nn.Sigmoid(),
        )
        self.dropout = nn.Dropout(p=0.1)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, start_dim=1)
        x = self.features(x)
        x = self.dropout(x)
        return self.classifier(x)


def build_model(num_classes: int = 10) -> SigmoidMLP:
    model = SigmoidMLP(num_classes=num_classes)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)
    return model
'''


# --------------------------------------------------------------------------- #
# gradlint subprocess
# --------------------------------------------------------------------------- #


class GradlintUnavailable(RuntimeError):
    pass


def gradlint_check_flags(jobs: int | None) -> tuple[list[str], list[str]]:
    """Flags for ``gradlint check`` that this CLI really has, plus notes.

    Reads ``python -m gradlint check --help`` and only passes --no-cache /
    --jobs when they are listed there.
    """
    res = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise GradlintUnavailable(
            f"`python -m gradlint check --help` exited {res.returncode}:\n" + (res.stderr.strip() or res.stdout.strip())
        )
    help_text = res.stdout + res.stderr

    def has(flag: str) -> bool:
        return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None

    flags = ["--output-format", "json"]
    notes = []
    if not has("--output-format"):
        raise GradlintUnavailable("`gradlint check --help` lists no --output-format")
    if has("--no-cache"):
        flags.append("--no-cache")
    else:
        notes.append("CLI has no --no-cache flag: run (a) is cold only if gradlint keeps no cache")
    if jobs is not None:
        if has("--jobs"):
            flags += ["--jobs", str(jobs)]
        else:
            notes.append(f"CLI has no --jobs flag: --jobs {jobs} ignored")
    return flags, notes


TIMEOUT_S = 1800.0  # per gradlint run; set from --timeout


def run_gradlint(target: Path, flags: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [sys.executable, "-m", "gradlint", "check", *flags, str(target)]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        fail(
            f"gradlint on {rel(target)} ran past {TIMEOUT_S:.0f} s and was stopped",
            subprocess.CompletedProcess(cmd, -9, "", err),
        )
    return time.perf_counter() - t0, res


def parse_findings(stdout: str) -> list[dict]:
    data = json.loads(stdout)
    if isinstance(data, dict):  # tolerate {"findings": [...]}-style wrappers
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ValueError("JSON output is an object, expected a list of findings")
        data = lists[0]
    if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
        raise ValueError("JSON output is not a list of finding objects")
    return data


def fail(msg: str, res: subprocess.CompletedProcess | None = None) -> None:
    print(f"\nFAILED: {msg}")
    if res is not None:
        print(f"exit status {res.returncode}; stderr:")
        print(res.stderr.rstrip() or "(empty)")
        if not res.stdout.lstrip().startswith(("[", "{")):
            print("stdout (first 2000 chars):")
            print(res.stdout[:2000].rstrip() or "(empty)")
    sys.exit(2)


def checked_run(target: Path, flags: list[str], what: str) -> tuple[float, subprocess.CompletedProcess, list[dict]]:
    """Run gradlint on *target*; accept exit 0/1 only; return (secs, process, findings)."""
    secs, res = run_gradlint(target, flags)
    if res.returncode not in (0, 1):
        fail(f"gradlint on {what} exited {res.returncode} (0 or 1 expected)", res)
    try:
        findings = parse_findings(res.stdout)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        fail(f"gradlint on {what}: could not read its JSON output ({exc})", res)
    return secs, res, findings


def files_checked(stderr: str) -> int | None:
    """The file count of gradlint's summary line ("... 710 files checked in ..."), if any."""
    m = re.search(r"(\d+) files? checked", stderr)
    return int(m.group(1)) if m else None


def finding_path(f: dict) -> Path:
    p = Path(str(f.get("path", "")))
    return (p if p.is_absolute() else REPO / p).resolve()


# --------------------------------------------------------------------------- #
# floors (this process, one file after the other)
# --------------------------------------------------------------------------- #


def ast_floor(files: list[Path]) -> tuple[float, list[tuple[Path, str]]]:
    failures = []
    t0 = time.perf_counter()
    for path in files:
        source = path.read_bytes()
        try:
            ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError) as exc:
            failures.append((path, f"{type(exc).__name__}: {exc}"))
    return time.perf_counter() - t0, failures


def libcst_floor(files: list[Path]) -> tuple[float, list[tuple[Path, str]]]:
    import libcst

    failures = []
    t0 = time.perf_counter()
    for path in files:
        source = path.read_bytes()
        try:
            libcst.parse_module(source)
        except Exception as exc:  # ParserSyntaxError or anything else: a failure
            failures.append((path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
    return time.perf_counter() - t0, failures


# --------------------------------------------------------------------------- #
# output helpers
# --------------------------------------------------------------------------- #


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def fmt_rate(lines: int, secs: float) -> str:
    return f"{lines / secs:,.0f}" if secs > 0 else "inf"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cores() -> str:
    return f"{usable_cores()} usable of {os.cpu_count()}"


def libcst_version() -> str:
    try:
        from importlib.metadata import version

        return version("libcst")
    except Exception:
        return "?"


def show_failures(label: str, failures: list[tuple[Path, str]], limit: int = 10) -> None:
    if not failures:
        return
    print(f"{label} failed on {len(failures)} file(s):")
    for path, msg in failures[:limit]:
        print(f"  {rel(path)}: {msg}")
    if len(failures) > limit:
        print(f"  ... and {len(failures) - limit} more")


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #


def write_lin_dirs() -> dict[int, Path]:
    dirs = {}
    for n in LIN_SIZES:
        d = LIN_DIR / f"n{n}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        width = len(str(n - 1))
        for i in range(n):
            (d / f"model_{i:0{width}d}.py").write_text(LIN_MODEL)
        dirs[n] = d
    return dirs


def linearity(flags: list[str]) -> int:
    """Time gradlint on 10/100/1000 copies of LIN_MODEL; return the GL002 count."""
    lin_lines_per_file = count_lines(LIN_MODEL.encode())
    dirs = write_lin_dirs()
    print(
        f"(d) linearity: gradlint check {' '.join(flags)} on N copies of one "
        f"{lin_lines_per_file}-line model ({rel(LIN_DIR)}/nN)"
    )
    lin_rows = []
    rates = {}
    times = {}
    internal_total = 0
    for n, d in dirs.items():
        secs, res, findings = checked_run(d, flags, rel(d))
        checked = files_checked(res.stderr)
        if checked is not None and checked != n:
            print(f"    WARNING: gradlint says {checked} files checked in {rel(d)}, expected {n}")
        lines = n * lin_lines_per_file
        rates[n] = lines / secs if secs > 0 else float("inf")
        times[n] = secs
        internal = sum(1 for f in findings if f.get("code") == GL_INTERNAL)
        internal_total += internal
        lin_rows.append([str(n), str(lines), f"{secs:.2f}", fmt_rate(lines, secs), str(len(findings)), str(internal)])
    table(["files", "lines", "seconds", "lines/s", "findings", GL_INTERNAL], lin_rows)
    print(
        f"lines/s(1000) / lines/s(100) = {rates[1000] / rates[100]:.2f}"
        "  (1.0 = linear; above 1 = fixed start-up cost being amortised; well below 1 = superlinear)"
    )
    per_line = lin_lines_per_file
    for a, b in ((10, 100), (100, 1000)):
        extra = times[b] - times[a]
        rate = f"{(b - a) * per_line / extra:,.0f}" if extra > 0 else "n/a"
        print(f"marginal rate {a} -> {b} files: {rate} lines/s ({extra:.2f} s for {(b - a) * per_line} more lines)")
    return internal_total


def main(argv: list[str] | None = None) -> int:
    global TIMEOUT_S
    ap = argparse.ArgumentParser(description="gradlint speed benchmark")
    ap.add_argument("--skip-libcst", action="store_true", help="do not time libcst.parse_module")
    ap.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="passed on as `gradlint check --jobs N` when the CLI has that flag",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="time gradlint and the ast.parse floor N times, interleaved, and compare the "
        "fastest of each (a shared machine's load inflates single runs; default 3)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_S,
        metavar="S",
        help=f"stop a gradlint run after S seconds (default {TIMEOUT_S:.0f})",
    )
    args = ap.parse_args(argv)
    TIMEOUT_S = args.timeout

    print("gradlint speed benchmark")
    print(f"python {platform.python_version()} ({sys.executable}), {platform.platform()}, cores: {cores()}")
    corpus = ensure_corpus()
    files = corpus_files(corpus)
    n_files = len(files)
    n_lines = sum(count_lines(p.read_bytes()) for p in files)  # also warms the page cache
    WORK_DIR.mkdir(parents=True, exist_ok=True)

    status = 0
    rows: list[list[str]] = []

    # (a) gradlint, cold, whole corpus -------------------------------------- #
    print()
    gl_secs: float | None = None
    try:
        flags, notes = gradlint_check_flags(args.jobs)
    except GradlintUnavailable as exc:
        flags, notes = None, []
        print(f"(a) gradlint: NOT RUN, the CLI is not usable: {exc}")
        status = 2
    if flags is not None:
        print(f"(a) gradlint check {' '.join(flags)} {rel(corpus)}")
        for note in notes:
            print(f"    note: {note}")
        gl_secs, res, findings = checked_run(corpus, flags, "the corpus")
        FINDINGS_JSON.write_text(res.stdout)
        checked = files_checked(res.stderr)
        by_code = Counter(str(f.get("code", "?")) for f in findings)
        parse_files = {finding_path(f) for f in findings if f.get("code") == GL_PARSE}
        internal = [f for f in findings if f.get("code") == GL_INTERNAL]
        reported_files = {finding_path(f) for f in findings}
        print(
            f"    {gl_secs:.2f} s, {len(findings)} findings in {len(reported_files)} of {n_files} files"
            f" (raw JSON: {rel(FINDINGS_JSON)})"
        )
        if checked is None:
            print("    gradlint printed no 'N files checked' summary on stderr")
        else:
            print(
                f"    gradlint says: {checked} files checked"
                + ("" if checked == n_files else f"  <-- WARNING: the corpus has {n_files}")
            )
        print("    findings per code:")
        for code, count in sorted(by_code.items()):
            name = next((str(f.get("name", "")) for f in findings if str(f.get("code")) == code), "")
            print(f"      {code:<8} {count:>7}  {name}")
        print(f"    {GL_PARSE} (could not parse): {by_code.get(GL_PARSE, 0)} findings in {len(parse_files)} files")
        for path in sorted(parse_files)[:10]:
            print(f"      {rel(path)}")
        if len(parse_files) > 10:
            print(f"      ... and {len(parse_files) - 10} more")
        print(f"    {GL_INTERNAL} (internal error): {len(internal)}")
        for f in internal[:20]:
            print(f"      {f.get('path')}:{f.get('line')}:{f.get('column')}: {f.get('message')}")
        if len(internal) > 20:
            print(f"      ... and {len(internal) - 20} more")
        if internal:
            status = max(status, 1)
        rows.append(
            [
                "gradlint check (subprocess)",
                str(n_files),
                str(n_lines),
                f"{gl_secs:.2f}",
                fmt_rate(n_lines, gl_secs),
                "",
            ]
        )

    # (b) ast.parse floor ---------------------------------------------------- #
    print()
    ast_secs, ast_fail = ast_floor(files)
    print(f"(b) ast.parse (read + parse, this process): {ast_secs:.2f} s")
    show_failures("    ast.parse", ast_fail)
    if args.repeat > 1 and gl_secs is not None:
        # more rounds, interleaved, so both sides meet the same load; the fastest of each counts
        gl_runs, ast_runs = [gl_secs], [ast_secs]
        for _ in range(args.repeat - 1):
            gl_runs.append(checked_run(corpus, flags, "the corpus")[0])
            ast_runs.append(ast_floor(files)[0])
        print(
            f"    {args.repeat} interleaved rounds: gradlint {', '.join(f'{x:.2f}' for x in gl_runs)} s; "
            f"ast.parse {', '.join(f'{x:.2f}' for x in ast_runs)} s; the fastest of each is compared"
        )
        gl_secs, ast_secs = min(gl_runs), min(ast_runs)
        rows[0][3], rows[0][4] = f"{gl_secs:.2f}", fmt_rate(n_lines, gl_secs)
    rows.append(["ast.parse floor", str(n_files), str(n_lines), f"{ast_secs:.2f}", fmt_rate(n_lines, ast_secs), "1.00"])

    # (c) libcst floor ------------------------------------------------------- #
    if not args.skip_libcst:
        cst_secs, cst_fail = libcst_floor(files)
        print(
            f"(c) libcst {libcst_version()} parse_module (read + parse, this process): "
            f"{cst_secs:.2f} s, {len(cst_fail)} failure(s)"
        )
        show_failures("    libcst", cst_fail)
        rows.append(
            [
                "libcst.parse_module floor",
                str(n_files),
                str(n_lines),
                f"{cst_secs:.2f}",
                fmt_rate(n_lines, cst_secs),
                f"{cst_secs / ast_secs:.2f}",
            ]
        )
    else:
        print("(c) libcst: skipped (--skip-libcst)")

    if gl_secs is not None:
        rows[0][5] = f"{gl_secs / ast_secs:.2f}"
        n_cores = usable_cores()
        if gl_secs < ast_secs / n_cores:
            print(
                f"    WARNING: gradlint took less than the ast.parse floor divided by {n_cores} cores;"
                " it may have skipped files (hidden or git-ignored folders?)"
            )
        if not reported_files and checked is None:
            print("    WARNING: gradlint reported no finding at all on the corpus; check that it looked at the files")
        if ast_fail:
            ast_bad = {p.resolve() for p, _ in ast_fail}
            missed = ast_bad - parse_files
            print(
                f"    files ast.parse rejects: {len(ast_bad)}, of them without a {GL_PARSE} "
                f"from gradlint: {len(missed)}"
            )

    print()
    print(f"Corpus: {rel(corpus)} ({describe_versions(corpus) or 'versions unknown'})")
    table(["tool", "files", "lines", "seconds", "lines/s", "x ast time"], rows)
    jobs_used = flags is not None and "--jobs" in flags
    print(
        "gradlint runs as a subprocess (interpreter start included) and "
        + (f"was told --jobs {args.jobs}" if jobs_used else f"may use all the machine's cores ({cores()})")
        + "; the ast.parse and libcst floors run in this one process, one file at a time."
    )
    print("'x ast time' = seconds / ast.parse seconds.")

    # (d) linearity ---------------------------------------------------------- #
    print()
    if flags is None:
        print("(d) linearity: NOT RUN, the gradlint CLI is not usable")
    else:
        if linearity(flags):
            status = max(status, 1)
    # (e) the result cache: a cold run fills it, a warm run (nothing changed) reads it ------- #
    print()
    if flags is None or "--no-cache" not in flags:
        print("(e) cache: NOT RUN, the CLI has no --no-cache/--cache-dir")
    else:
        cache = WORK_DIR / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        cached = [f for f in flags if f != "--no-cache"] + ["--cache-dir", str(cache)]
        cold, _ = run_gradlint(corpus, cached)
        warm, _ = run_gradlint(corpus, cached)
        print(
            f"(e) cache (--cache-dir {rel(cache)}): cold {cold:.2f} s, warm {warm:.2f} s; "
            f"warm / ast.parse floor = {warm / ast_secs:.2f}, warm / cold = {warm / cold:.3f}"
        )
    print()
    if status == 1:
        print(f"RESULT: {GL_INTERNAL} (internal error) reported, see above")
    elif status == 2:
        print("RESULT: gradlint could not be benchmarked, see above")
    else:
        print(f"RESULT: no {GL_INTERNAL}")
    return status


if __name__ == "__main__":
    sys.exit(main())
