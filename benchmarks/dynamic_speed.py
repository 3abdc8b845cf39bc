"""How fast `gradlint check --dynamic` is, against a bare torch script doing the same passes.

Two goals of issue 13, both measured in the same run:

1. `make run`'s dynamic part (`gradlint check --dynamic --device cpu --report DIR fixtures/`,
   the charts included) in at most 30 s on 2 CPU cores;
2. at most 1.5x the time of a bare torch script that does the same forward and backward
   passes (gradlint measured without ``--report``, as the script draws nothing; the ratio
   with make run's charts is printed beside it): one process, torch imported once, every model
   of the plan built and run through
   the same protocol (per seed one backward pass; the SGD steps of the constant-init probes;
   the BPTT training steps of the recurrent probes over the same sequence lengths), written
   here with plain torch calls and none of gradlint's worker code. What the peer does not
   pay is what isolation costs: a child per file, its timeout and memory cap, importing each
   file in a fresh process.

The plan (which models, their inputs and probes) comes from gradlint's own planner, so both
sides measure the same models; the peer is told nothing else.

    python benchmarks/dynamic_speed.py [--device cpu|cuda] [--repeat N] [PATHS...]

Prints the wall times and both ratios; exits 1 when the run's verdict tally differs between
repeats (the benchmark then measured something unstable), never for a missed goal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_SECONDS = 30.0
GOAL_RATIO = 1.5

PEER = r"""
import importlib.util, json, math, os, sys, time, types
start = time.perf_counter()
import torch
import torch.nn as nn

plan = json.load(open(sys.argv[1]))
device = torch.device(plan["device"])
torch.set_num_threads(plan["threads"])
LR = 0.1

def tensor(spec, seed, seq_len=None):
    shape = list(spec["shape"])
    if seq_len is not None and spec.get("time_axis") is not None:
        shape[spec["time_axis"]] = seq_len
    g = torch.Generator().manual_seed(seed)
    if spec.get("fill") == "ones":
        return torch.ones(shape, dtype=torch.long if spec.get("dtype") == "long" else torch.float32, device=device)
    if spec.get("dtype") == "long":
        return torch.randint(0, int(spec.get("high", 2)), shape, generator=g).to(device)
    return torch.randn(shape, generator=g).to(device)

def inputs(spec, seed, seq_len=None):
    args = [tensor(t, seed + k, seq_len) for k, t in enumerate(spec["args"])]
    kwargs = {n: tensor(t, seed + 100 + k, seq_len) for k, (n, t) in enumerate(spec["kwargs"].items())}
    return args, kwargs

def out_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        out = list(out.values())
    for item in out:
        t = out_tensor(item) if not isinstance(item, torch.Tensor) else item
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return t

def backward(model, spec, seed, seq_len=None):
    args, kwargs = inputs(spec, seed, seq_len)
    t = out_tensor(model(*args, **kwargs))
    (t * torch.randn(t.shape, generator=torch.Generator().manual_seed(1)).to(t.device)).sum().backward()

done = 0
for job in plan["jobs"]:
    path = job["path"]
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("peer_" + os.path.basename(path).replace(".", "_"), path)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:
        continue
    for m in job["models"]:
        def build(seed):
            torch.manual_seed(seed)
            if m.get("source"):
                ns = dict(vars(module)); exec(compile(m["source"], path, "exec"), ns); model = ns[m["entry"]]()
            else:
                model = getattr(module, m["name"].rstrip("()"))(**m["kwargs"])
            return model.to(device).train()
        try:
            recurrent = [p for p in m["probes"] if p["expect"].startswith("recurrent")]
            seq = max((p.get("length") or plan["seq_len"]) for p in recurrent) if recurrent else None
            for seed in range(plan["seeds"]):
                model = build(seed)
                backward(model, m["input"], seed, seq)
                for p in m["probes"]:
                    if p["expect"] in ("symmetric", "starved"):
                        model = build(seed); opt = torch.optim.SGD(model.parameters(), lr=LR)
                        for step in range(3):
                            opt.zero_grad(); backward(model, m["input"], 1000 * seed + step); opt.step()
                    elif p["expect"] == "recurrent-exploding":
                        model = build(seed); opt = torch.optim.SGD(model.parameters(), lr=LR)
                        for step in range(plan["steps"]):
                            opt.zero_grad()
                            args, kwargs = inputs(m["input"], 7000 + step, p.get("length") or seq)
                            t = out_tensor(model(*args, **kwargs))
                            ((t - torch.randn(t.shape).to(t.device)) ** 2).mean().backward()
                            if p.get("clip"):
                                torch.nn.utils.clip_grad_norm_(model.parameters(), float(p["clip"][1]))
                            total = sum(float(q.grad.norm()) ** 2 for q in model.parameters() if q.grad is not None)
                            if not math.isfinite(total):
                                break
                            opt.step()
                    elif p["expect"] == "recurrent-vanishing":
                        model = build(seed); backward(model, m["input"], seed, seq)
            done += 1
        except Exception:
            pass
json.dump({"seconds": time.perf_counter() - start, "models": done}, open(sys.argv[2], "w"))
"""


def gradlint_run(paths, device: str, report: bool = True) -> tuple[float, float, str, str]:
    """(wall seconds, the dynamic part's seconds as gradlint reports it, tally line, stderr),
    for ``make run``'s command (``--report`` into a temporary folder) or without the report."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "gradlint",
            "check",
            "--dynamic",
            "--device",
            device,
            "--no-cache",
            "--output-format",
            "json",
            *(["--report", tmp] if report else []),
            *paths,
        ]
        start = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    m = re.search(r"measured by --dynamic in ([0-9.]+) s", res.stderr)
    tally = next((line for line in res.stderr.splitlines() if line.startswith("Dynamic:")), "")
    return wall, float(m.group(1)) if m else float("nan"), tally, res.stderr


def planned(paths, device: str) -> dict:
    """The jobs gradlint plans for ``paths`` (scope all), as the peer reads them."""
    from gradlint.config_files import load_config
    from gradlint.config_resolve import settings_from
    from gradlint.dynamic import DynamicOptions
    from gradlint.dynamic.plan import plan
    from gradlint.run import lint_paths

    os.chdir(ROOT)
    config = load_config(ROOT)
    settings = settings_from(config)
    result = lint_paths(list(paths), settings)
    options = DynamicOptions()
    by_file, _, _ = plan(
        result.diagnostics, config.data.get("dynamic", {}).get("models", {}), files=result.files, scope="all"
    )
    jobs = []
    for path, models in sorted(by_file.items()):
        runnable = [j for j in models if j.input is not None and not j.input.get("fn")]
        if runnable:
            jobs.append({"path": path, "models": [j.spec(str(k)) for k, j in enumerate(runnable)]})
    return {
        "device": device,
        "threads": os.cpu_count() or 1,
        "seeds": options.seeds,
        "steps": options.steps,
        "seq_len": options.seq_len,
        "jobs": jobs,
    }


def peer_run(plan_data: dict) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        script, plan_file, out = Path(tmp, "peer.py"), Path(tmp, "plan.json"), Path(tmp, "out.json")
        script.write_text(PEER)
        plan_file.write_text(json.dumps(plan_data))
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(script), str(plan_file), str(out)],
            cwd=tmp,
            capture_output=True,
            timeout=1800,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        wall = time.perf_counter() - start
        data = json.loads(out.read_text()) if out.exists() else {"models": 0}
        return wall, int(data.get("models", 0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=["fixtures/"])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--repeat", type=int, default=2, help="interleaved runs of each side (the best counts)")
    args = ap.parse_args(argv)
    plan_data = planned(args.paths, args.device)
    n_models = sum(len(j["models"]) for j in plan_data["jobs"])
    print(
        f"plan: {n_models} models in {len(plan_data['jobs'])} files, {plan_data['seeds']} seeds, "
        f"device {args.device}, {os.cpu_count()} cores"
    )
    ours, dynamic, bare_runs, peers, tallies = [], [], [], [], set()
    for _ in range(args.repeat):  # interleaved: a loaded machine slows both sides alike
        wall, dyn, tally, _ = gradlint_run(args.paths, args.device)
        ours.append(wall)
        dynamic.append(dyn)
        tallies.add(tally)
        bare_runs.append(gradlint_run(args.paths, args.device, report=False)[1])
        peer_wall, peer_models = peer_run(plan_data)
        peers.append(peer_wall)
    best_dyn, best_peer = min(dynamic), min(peers)
    print(
        f"gradlint check --dynamic --report DIR {' '.join(args.paths)} (make run's): dynamic part {best_dyn:.1f} s "
        f"(whole run {min(ours):.1f} s); runs: {', '.join(f'{d:.1f}' for d in dynamic)}"
    )
    print(
        f"  the same without --report: {min(bare_runs):.1f} s (the charts take the rest); runs: "
        f"{', '.join(f'{d:.1f}' for d in bare_runs)}"
    )
    print(
        f"bare torch script, same passes ({peer_models} models): {best_peer:.1f} s; runs: "
        f"{', '.join(f'{p:.1f}' for p in peers)}"
    )
    print(
        f"goal 1: dynamic part <= {GOAL_SECONDS:g} s: {best_dyn:.1f} s = {best_dyn / GOAL_SECONDS:.2f} of the goal "
        f"-> {'met' if best_dyn <= GOAL_SECONDS else 'MISSED'}"
    )
    passes = min(bare_runs) / best_peer if best_peer > 0 else float("inf")
    ratio = best_dyn / best_peer if best_peer > 0 else float("inf")
    print(
        f"goal 2: the same passes, gradlint / bare script <= {GOAL_RATIO:g}: {passes:.2f} "
        f"-> {'met' if passes <= GOAL_RATIO else 'MISSED'}"
    )
    print(
        f"        with make run's charts (which the bare script does not draw): {ratio:.2f} "
        f"-> {'met' if ratio <= GOAL_RATIO else 'MISSED'}"
    )
    for tally in sorted(tallies):
        print(f"  {tally}")
    return 1 if len(tallies) > 1 else 0


if __name__ == "__main__":
    sys.exit(main())
