"""Fuzzing benchmark: gradlint on programs nobody wrote by hand, as a file would meet it.

    .venv/bin/python benchmarks/fuzz.py [--programs N] [--jobs J] [--seed S]

Three sources, a third of the programs each (default 10,000 in all):

- ``grammar``: hypothesmith's programs from the Python grammar (syntactically valid, random);
- ``models``: structure-aware model code: random ``nn.Module`` classes with containers, loops,
  comprehensions, inits applied inside and outside the class, formula activations,
  hand-written recurrences, training loops, call sites, and constant folds of every size;
- ``mutants``: mutations of real files (the benchmark corpus when ``benchmarks/corpus.py``
  has fetched it, else ``fixtures/``): lines deleted, duplicated, re-indented or cut, numbers
  made huge, names swapped, brackets unbalanced, files truncated.

Each program is linted by ``gradlint.engine.analyse_source`` in a worker process whose address
space is capped at 1 GiB (RLIMIT_AS) and whose every program runs under a 10 s alarm. The
goals: 0 GL002, 0 tracebacks (``analyse_source`` must never raise), no program over 5 s, no
worker over 1 GiB. A program that misses one is written to ``benchmarks/.work/fuzz/`` with
what happened, and the script exits 1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

CAP_BYTES = 1 << 30
ALARM_S = 10
SLOW_S = 5.0


# ---------------------------------------------------------------- structure-aware model code
ACTS = ["ReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "LeakyReLU", "Softplus", "ELU", "Identity", "Hardtanh"]
NORMS = ["LayerNorm({w})", "BatchNorm1d({w})", "GroupNorm(1, {w})", "RMSNorm({w})"]
INITS = [
    "nn.init.zeros_({p})",
    "nn.init.constant_({p}, {c})",
    "nn.init.normal_({p}, 0, {c})",
    "nn.init.xavier_uniform_({p})",
    "nn.init.kaiming_normal_({p}, nonlinearity='relu')",
    "nn.init.orthogonal_({p})",
    "{p}.data.fill_({c})",
    "{p}.data.mul_({c})",
    "nn.init.uniform_({p}, -{c}, {c})",
]
NUMBERS = [
    "0",
    "1",
    "2",
    "8",
    "16",
    "64",
    "0.5",
    "1e-3",
    "10 ** 3",
    "2 ** 64",
    "1 << 40",
    "10 ** 9",
    "-1",
    "3.7",
    "(1 << (1 << 12))",
    "int('9' * 50)",
    "float('inf')",
    "len('abc') * 4",
    "n",
    "CONFIG['depth']",
]


def model_program(rng: random.Random) -> str:
    w = rng.choice(["8", "16", "64", "WIDTH", "w", "2 ** 20", "0"])
    depth = rng.choice(["3", "12", "50", "DEPTH", "depth", "10 ** 7", "-2", "n_layers"])
    act = rng.choice(ACTS)
    lines = [
        "import torch",
        "import torch.nn as nn",
        "import torch.nn.functional as F",
        f"WIDTH = {rng.choice(NUMBERS)}",
        f"DEPTH = {rng.choice(NUMBERS)}",
        f"CONFIG = {{'depth': {rng.choice(NUMBERS)}, 'act': '{act}'}}",
    ]
    if rng.random() < 0.3:
        lines += ["from model import *", "from .layers import Block as B"]
    if rng.random() < 0.5:
        lines += [
            "class Base(nn.Module):",
            "    def forward(self, x):",
            f"        {rng.choice(['return self.net(x)', 'for l in self.layers: x = l(x)', 'return x'])}",
            "        return x",
        ]
    base = rng.choice(["nn.Module", "Base", "nn.Sequential", "nn.ModuleList", "Unknown", "B"])
    lines += [
        f"class Net({base}):",
        f"    def __init__(self, w={w}, depth={depth}, act='{act}', **kw):",
        "        super().__init__()",
    ]
    body = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(12)
        if kind == 0:
            body.append(
                f"self.layers = nn.ModuleList([nn.Linear(w, w) for _ in range({rng.choice(['depth', depth])})])"
            )
        elif kind == 1:
            body.append(f"self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(w, w), nn.{act}())])")
        elif kind == 2:
            body.append(f"self.norm = nn.{rng.choice(NORMS).format(w='w')}")
        elif kind == 3:
            p = rng.choice(["self.layers[0].weight", "self.net[0].weight", "self.fc.weight", "self.p"])
            body.append(rng.choice(INITS).format(p=p, c=rng.choice(NUMBERS)))
        elif kind == 4:
            body.append(
                f"self.rnn = nn.{rng.choice(['RNN', 'LSTM', 'GRU', 'RNNCell'])}(w, w,"
                f" {rng.choice(['2', 'depth', '1'])})"
            )
        elif kind == 5:
            body.append(f"self.p = nn.Parameter(torch.randn(w, w) * {rng.choice(NUMBERS)})")
        elif kind == 6:
            bias = rng.choice(["False", "True", "kw.get('b')"])
            body.append(f"self.fc = nn.Linear(w, {rng.choice(NUMBERS)}, bias={bias})")
        elif kind == 7:
            body.append("for i in range(depth):\n            setattr(self, f'h{i}', nn.Linear(w, w))")
        elif kind == 8:
            body.append(
                f"self.head ="
                f" self.{rng.choice(['net', 'layers', 'fc'])}[{rng.choice(['0', '-1', '1:', '0.5:', 'depth', ':n'])}]"
            )
        elif kind == 9:
            body.append(
                "if kw.get('deep'):\n            self.extra = nn.Sequential(*[nn.Tanh() for _ in range(depth)])"
            )
        elif kind == 10:
            body.append(f'self.tag = f"{{{rng.choice(NUMBERS)}}}" * {rng.choice(NUMBERS)}')
        else:
            body.append("self.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)")
    lines += ["        " + b for b in body]
    fwd = rng.choice(
        [
            "for l in self.layers:\n            x = torch.sigmoid(l(x))",
            "x = self.net(x)",
            "h = x\n        for t in range(x.size(0)):\n            h = torch.tanh(self.fc(torch.cat((x[t], h),"
            " 1)))\n        x = h",
            "x = x + self.net(self.norm(x))",
            "x = 1 / (1 + torch.exp(-self.fc(x)))",
            "x = torch.where(x > 0, x, 0.01 * x) * x.clamp(min=0)",
            "out, h = self.rnn(x)\n        x = out[-1]",
            "x = self.head(x) ** 64 ** 64",
        ]
    )
    lines += ["    def forward(self, x):", "        " + fwd, "        return x"]
    site = rng.choice(
        [
            "model = Net()",
            "model = Net(w=8, depth=100)",
            "model = Net(depth=10 ** 9)",
            "model = Net(**CONFIG)",
            "model = nn.Sequential(*[nn.Sigmoid() for _ in range(40)])",
            "def make():\n    return Net(depth=30)\nmodel = make()",
        ]
    )
    lines += [site]
    if rng.random() < 0.6:
        lines += [
            rng.choice(["model.apply(init)", "init_weights(model)", "model.apply(lambda m: None)"]),
            "def init(m):",
            f"    {rng.choice(INITS).format(p='m.weight', c=rng.choice(NUMBERS))}",
        ]
    if rng.random() < 0.6:
        clip = rng.choice(
            [
                "",
                "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)",
                "    torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)",
            ]
        )
        lines += [
            "opt = torch.optim.SGD(model.parameters(), lr=0.1)",
            f"for step in range({rng.choice(['10', '1000', 'DEPTH', 'n'])}):",
            "    loss = model(torch.randn(35, 8, 8)).sum()",
            "    opt.zero_grad()",
            "    loss.backward()",
            clip,
            "    opt.step()",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- mutations of real files
def _sources() -> list[str]:
    corpus = HERE / ".corpus"
    roots = [corpus] if corpus.is_dir() else [ROOT / "fixtures"]
    files = sorted(p for r in roots for p in r.rglob("*.py"))
    return [str(p) for p in files if p.stat().st_size < 200_000]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True) or ["\n"]
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(lines))
        op = rng.randrange(9)
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = "    " + lines[i]
        elif op == 3:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)] + "\n"
        elif op == 4:
            lines[i] = "".join(
                rng.choice(["10 ** 9", "1 << 64", "0", "-1", "2.5"]) if c.isdigit() else c for c in lines[i]
            )
        elif op == 5:
            lines[i] = lines[i].replace("self", rng.choice(["other", "self.self", "cls", "self[0]"]))
        elif op == 6:
            lines[i] = lines[i] + rng.choice(["(", ")", "[", "]", ":", "\\", "'''", "# noqa: GL101, X\n"])
        elif op == 7:
            lines = lines[: i + 1]
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


# ---------------------------------------------------------------- grammar programs
def grammar_programs(n: int, seed: int) -> list[str]:
    """``n`` programs from hypothesmith's grammar strategy, reproducibly for ``seed``."""
    import warnings

    import hypothesmith
    from hypothesis import HealthCheck, Phase, given, settings

    warnings.simplefilter("ignore", SyntaxWarning)

    out: list[str] = []

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(hypothesmith.from_grammar())
    def collect(source):
        out.append("import torch\n" + source)

    collect()
    return out[:n]


# ---------------------------------------------------------------- the workers
def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))


class _Alarm(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Alarm


def lint_batch(batch):
    """Lint each (kind, name, source); what went wrong, and the slowest time, per program."""
    import warnings

    from gradlint.engine import analyse_source

    _limit()
    signal.signal(signal.SIGALRM, _on_alarm)
    warnings.simplefilter("ignore", SyntaxWarning)  # ``1()`` in a grammar program: Python's own remark

    problems, worst = [], (0.0, None)
    for kind, name, source in batch:
        start = time.perf_counter()
        signal.alarm(ALARM_S)
        try:
            diags = analyse_source(source, f"{name}.py")
            bad = [d for d in diags if d.code == "GL002"]
            if bad:
                problems.append((kind, name, source, "GL002: " + bad[0].message))
        except _Alarm:
            problems.append((kind, name, source, f"hang: over the {ALARM_S} s alarm"))
        except BaseException:  # noqa: BLE001 - what the benchmark is here to catch
            problems.append((kind, name, source, "traceback:\n" + traceback.format_exc()))
        finally:
            signal.alarm(0)
        spent = time.perf_counter() - start
        if spent > SLOW_S:
            problems.append((kind, name, source, f"slow: {spent:.1f} s"))
        if spent > worst[0]:
            worst = (spent, f"{kind}/{name}")
    return problems, worst, _peak_mb(), len(batch)


def _peak_mb() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would include the parent's, across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    third = args.programs // 3
    t0 = time.perf_counter()
    programs = [("grammar", f"g{i}", s) for i, s in enumerate(grammar_programs(third, args.seed))]
    programs += [("models", f"m{i}", model_program(rng)) for i in range(third)]
    sources = _sources()
    texts: dict[str, str] = {}
    for i in range(args.programs - len(programs)):
        path = rng.choice(sources)
        if path not in texts:
            texts[path] = Path(path).read_text(encoding="utf-8", errors="replace")
        programs.append(("mutants", f"x{i}", mutate(texts[path], rng)))
    generated = time.perf_counter() - t0
    by_kind = {k: sum(1 for p in programs if p[0] == k) for k in ("grammar", "models", "mutants")}
    print(
        f"gradlint fuzz benchmark: {len(programs)} programs ({', '.join(f'{v} {k}' for k, v in by_kind.items())}), "
        f"generated in {generated:.1f} s; mutants from {len(texts)} files of "
        f"{'the benchmark corpus' if (HERE / '.corpus').is_dir() else 'fixtures/'}"
    )
    rng.shuffle(programs)
    batches = [programs[i :: args.jobs * 8] for i in range(args.jobs * 8)]
    t1 = time.perf_counter()
    # spawned, not forked: a fork would carry this process's memory (the programs, hypothesis)
    # into the 1 GiB address-space cap of each worker
    ctx = multiprocessing.get_context("spawn")
    problems, worst, peak, done = [], (0.0, None), 0.0, 0
    with ctx.Pool(args.jobs, maxtasksperchild=1) as pool:
        for found, slowest, peak_mb, n in pool.imap_unordered(lint_batch, batches):
            problems += found
            worst = max(worst, slowest, key=lambda w: w[0])
            peak = max(peak, peak_mb)
            done += n
    linted = time.perf_counter() - t1
    counts = {"GL002": 0, "traceback": 0, "hang": 0, "slow": 0}
    for _, _, _, what in problems:
        counts[what.split(":")[0]] = counts.get(what.split(":")[0], 0) + 1
    print(f"linted {done} programs in {linted:.1f} s with {args.jobs} worker(s)")
    print(
        f"  GL002: {counts['GL002']}   tracebacks: {counts['traceback']}   hangs (> {ALARM_S} s): {counts['hang']}   "
        f"over {SLOW_S:g} s: {counts['slow']}"
    )
    print(
        f"  slowest program: {worst[0]:.2f} s ({worst[1]});  peak worker RSS: {peak:.0f} MB (cap {CAP_BYTES >> 20} MB)"
    )
    if problems:
        out = HERE / ".work" / "fuzz"
        out.mkdir(parents=True, exist_ok=True)
        for kind, name, source, what in problems:
            (out / f"{kind}-{name}.py").write_text(source, encoding="utf-8", errors="surrogatepass")
            (out / f"{kind}-{name}.txt").write_text(what, encoding="utf-8")
        print(f"  {len(problems)} problem program(s) written to {out.relative_to(ROOT)}/")
    ok = not problems and peak < CAP_BYTES / 2**20
    print("RESULT:", "pass" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
