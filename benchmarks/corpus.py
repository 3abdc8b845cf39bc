"""Fetch a corpus of real PyTorch model code for the gradlint speed benchmark.

The three packages are downloaded as wheels with ``pip download`` (nothing is
installed) and only their model source files are unpacked:

    torchvision/models/**/*.py
    timm/models/**/*.py
    transformers/models/*/modeling_*.py   (minus modeling_tf_* / modeling_flax_*)

into ``benchmarks/.corpus/`` (git-ignored), keeping each file's path inside its
package, e.g. ``benchmarks/.corpus/transformers/models/bert/modeling_bert.py``.

The corpus is built in a scratch folder and moved into place in one rename, so
an existing ``.corpus/`` is always complete; if it exists nothing is fetched.

    python benchmarks/corpus.py           # build if missing, print counts
    python benchmarks/corpus.py --force   # rebuild from fresh downloads
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CORPUS_DIR = BENCH_DIR / ".corpus"
MANIFEST_NAME = "MANIFEST.json"

PACKAGES = ("torchvision", "timm", "transformers")

# Which members of each wheel make up the corpus (paths inside the wheel).
_SELECT = {
    "torchvision": re.compile(r"^torchvision/models/(?:[^/]+/)*[^/]+\.py$"),
    "timm": re.compile(r"^timm/models/(?:[^/]+/)*[^/]+\.py$"),
    "transformers": re.compile(r"^transformers/models/[^/]+/modeling_[^/]*\.py$"),
}
# TensorFlow / Flax ports are not PyTorch code (transformers < 5 ships them).
_EXCLUDE = {
    "transformers": re.compile(r"/modeling_(?:tf|flax)_[^/]*\.py$"),
}


def count_lines(data: bytes) -> int:
    """Physical lines in a source file (a last line without newline counts)."""
    return len(data.splitlines())


def corpus_files(root: Path | None = None) -> list[Path]:
    """All corpus ``.py`` files under *root*, sorted."""
    root = CORPUS_DIR if root is None else root
    return sorted(p for p in root.rglob("*.py") if p.is_file())


def corpus_stats(root: Path | None = None) -> tuple[int, int]:
    """(files, lines) of the corpus under *root*."""
    files = corpus_files(root)
    return len(files), sum(count_lines(p.read_bytes()) for p in files)


def _pip_download(dest: Path, packages: list[str], extra: list[str] = ()) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet",
        "-d", str(dest), *extra, *packages,
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


def _find_wheel(dest: Path, package: str) -> Path | None:
    wheels = sorted(dest.glob(f"{package}-*.whl"))
    return wheels[-1] if wheels else None


def download_wheels(dest: Path) -> dict[str, Path]:
    """Download the three wheels into *dest*; return {package: wheel path}.

    One pip call for all three; for a package still missing afterwards it tries
    again alone, then with explicit manylinux platform tags (for a wheel that
    only exists for a platform pip does not consider compatible here).
    """
    first = _pip_download(dest, list(PACKAGES))
    wheels = {p: _find_wheel(dest, p) for p in PACKAGES}
    errors: dict[str, str] = {}
    pyver = f"{sys.version_info.major}{sys.version_info.minor}"
    for pkg in PACKAGES:
        if wheels[pkg] is not None:
            continue
        attempts = [[]] + [
            ["--platform", plat, "--python-version", pyver, "--implementation", "cp"]
            for plat in ("manylinux_2_28_x86_64", "manylinux2014_x86_64", "any")
        ]
        log = [first.stderr.strip()]
        for extra in attempts:
            res = _pip_download(dest, [pkg], extra)
            log.append(f"$ pip download {' '.join(extra)} {pkg}\n{res.stderr.strip()}")
            wheels[pkg] = _find_wheel(dest, pkg)
            if wheels[pkg] is not None:
                break
        if wheels[pkg] is None:
            errors[pkg] = "\n".join(x for x in log if x)
    if errors:
        msg = "\n\n".join(f"--- {pkg} ---\n{err}" for pkg, err in errors.items())
        raise RuntimeError(f"pip download failed for: {', '.join(errors)}\n{msg}")
    return wheels  # type: ignore[return-value]


def _wheel_version(wheel: Path) -> str:
    # name-version-pytag-abitag-plattag.whl
    parts = wheel.name.split("-")
    return parts[1] if len(parts) > 1 else "?"


def extract_models(wheel: Path, package: str, dest: Path) -> tuple[int, int]:
    """Unpack the selected model files of *wheel* under *dest*; (files, lines)."""
    select, exclude = _SELECT[package], _EXCLUDE.get(package)
    files = lines = 0
    dest_resolved = dest.resolve()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not select.match(name) or (exclude and exclude.search(name)):
                continue
            target = (dest / name).resolve()
            if dest_resolved not in target.parents:  # never write outside dest
                raise RuntimeError(f"unsafe path in {wheel.name}: {name!r}")
            data = zf.read(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files += 1
            lines += count_lines(data)
    return files, lines


def build_corpus(force: bool = False, quiet: bool = False) -> Path:
    """Download and unpack the corpus into CORPUS_DIR (replacing it if *force*)."""
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".corpus-build-", dir=BENCH_DIR))
    try:
        wheel_dir = staging / "wheels"
        tree = staging / "tree"
        wheel_dir.mkdir()
        tree.mkdir()
        say(f"corpus: downloading wheels ({', '.join(PACKAGES)}) with pip, no install ...")
        wheels = download_wheels(wheel_dir)
        manifest = {"packages": {}}
        for pkg in PACKAGES:
            n_files, n_lines = extract_models(wheels[pkg], pkg, tree)
            manifest["packages"][pkg] = {
                "wheel": wheels[pkg].name,
                "version": _wheel_version(wheels[pkg]),
                "files": n_files,
                "lines": n_lines,
            }
            say(f"corpus:   {wheels[pkg].name}: {n_files} files, {n_lines} lines")
        (tree / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if CORPUS_DIR.exists():
            shutil.rmtree(CORPUS_DIR)
        os.replace(tree, CORPUS_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CORPUS_DIR


def ensure_corpus(quiet: bool = False, force: bool = False) -> Path:
    """Return the corpus folder, building it first if it is not there yet.

    Prints the corpus size (files, lines) unless *quiet*.
    """
    if force or not CORPUS_DIR.is_dir():
        build_corpus(force=force, quiet=quiet)
    elif not quiet:
        print(f"corpus: already present at {CORPUS_DIR}, nothing downloaded")
    if not quiet:
        n_files, n_lines = corpus_stats(CORPUS_DIR)
        versions = describe_versions(CORPUS_DIR)
        print(f"corpus: {n_files} files, {n_lines} lines" + (f" ({versions})" if versions else ""))
    return CORPUS_DIR


def describe_versions(root: Path | None = None) -> str:
    """'torchvision 0.x, timm 1.x, ...' from the manifest, or '' if none."""
    root = CORPUS_DIR if root is None else root
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
        return ", ".join(f"{k} {v['version']}" for k, v in manifest["packages"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="download and unpack again")
    args = ap.parse_args(argv)
    try:
        ensure_corpus(force=args.force)
    except RuntimeError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
