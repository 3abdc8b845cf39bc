"""What gradlint makes of the benchmark corpus and the bundled fixtures, as one text to diff.

    .venv/bin/python benchmarks/digest.py OUT.txt [--hash-seed N]

For every corpus file (benchmarks/corpus.py), fixture and test model: the graphs ``check``
builds (the JSON dump of ``gradlint graph --as-checked``), their flow profiles (``--flow``)
and the findings. A change meant to make gradlint faster, not different, must leave this text
as it was: run it before and after, and ``cmp`` the two. It also prints the digest's SHA-256
and the seconds it took (not a speed measurement: ``speed.py`` is).

Runs with ``PYTHONHASHSEED`` set (0 unless ``--hash-seed``), in a child interpreter, so that
two runs differ only where gradlint does; a text that changes with the seed is a bug (a set's
order leaking into output).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PATTERNS = ("fixtures/**/*.py", "tests/dynamic_models/**/*.py", "rules/*.py")


def _write(out: Path) -> int:
    import ast
    import gc
    import json

    sys.path.insert(0, str(BENCH_DIR))
    from corpus import corpus_files, ensure_corpus

    from gradlint.engine import checked_graphs
    from gradlint.flow import dump as flow_dump
    from gradlint.graph.dump import RENDERERS
    from gradlint.run import lint_bytes
    from gradlint.settings import Settings
    from gradlint.text import decode, split_lines

    ensure_corpus()
    files = [Path(f) for f in corpus_files()]
    for pattern in PATTERNS:
        files += sorted(REPO.glob(pattern))
    gc.disable()  # as the workers lint
    with out.open("w", encoding="utf-8") as fh:
        for path in files:
            name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            data = path.read_bytes()
            try:
                text = decode(data)
                tree = ast.parse(text)
            except (SyntaxError, ValueError, UnicodeDecodeError, LookupError) as exc:
                fh.write(f"== {name}\nnot parsed: {type(exc).__name__}\n")
                continue
            graphs = checked_graphs(tree, str(name), split_lines(text))[1]
            result = lint_bytes(data, str(name), Settings())
            found = [(d.code, d.line, d.column, d.severity, d.message) for d in result.diagnostics]
            fh.write(f"== {name}\n{RENDERERS['json'](graphs)}\n{flow_dump.render_json(graphs)}\n")
            fh.write(json.dumps(found) + "\n")
    return len(files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="where to write the digest")
    ap.add_argument("--hash-seed", default="0", help="PYTHONHASHSEED of the run (default 0)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child:
        env = {**os.environ, "PYTHONHASHSEED": args.hash_seed}
        return subprocess.call([sys.executable, __file__, str(args.out), "--child"], env=env, cwd=REPO)
    start = time.perf_counter()
    n = _write(args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{n} files, {args.out.stat().st_size:,} bytes, sha256 {digest} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
