"""Fetch a corpus of real PyTorch code for the gradlint benchmarks.

Two kinds of code, nothing installed and nothing vendored into the repository:

* **model code**, from wheels fetched with ``pip download``:

      torchvision/models/**/*.py
      timm/models/**/*.py
      transformers/models/*/modeling_*.py   (minus modeling_tf_* / modeling_flax_*)

* **training code**, as people write it around their models:

      d2l/torch.py                          (Dive into Deep Learning: train_ch3..ch13, RNNs from scratch)
      lightning/pytorch/demos/*.py          (LightningModules and Trainer use)
      accelerate/test_utils/**/*.py         (Accelerate and Hugging Face training scripts)
      ignite/engine/*.py, ignite/contrib/engines/*.py   (supervised and truncated-BPTT steps)
      skorch/net.py                         (a fit loop)
      pytorch-examples/**/*.py              (github.com/pytorch/examples at a pinned commit)

  The wheels come from the package registry like the model code. pytorch/examples is not on
  a registry: it is downloaded as a GitHub archive of the pinned commit, or read from a local
  git mirror when ``GRADLINT_CORPUS_MIRROR`` names a folder holding ``pytorch+examples/repo``
  (a bare clone). Where neither can be reached it is left out, and the manifest and the
  printed summary say so; the rest of the corpus is still built.

Everything lands in ``benchmarks/.corpus/`` (git-ignored), keeping each file's path inside its
package, e.g. ``benchmarks/.corpus/transformers/models/bert/modeling_bert.py``.

The corpus is built in a scratch folder and moved into place in one rename, so an existing
``.corpus/`` is always complete. If it exists and has this script's layout, nothing is fetched.

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
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CORPUS_DIR = BENCH_DIR / ".corpus"
MANIFEST_NAME = "MANIFEST.json"

#: Bumped when the set of sources changes, so an older ``.corpus/`` is rebuilt.
LAYOUT = 2


@dataclass(frozen=True)
class WheelSource:
    """Files of one wheel: *requirement* for pip, members matching *select* but not *exclude*."""

    requirement: str
    select: re.Pattern
    exclude: re.Pattern | None = None
    kind: str = "models"

    @property
    def name(self) -> str:
        """The distribution name as a wheel file spells it (``pytorch_ignite``)."""
        return re.split(r"[=<>!~ ]", self.requirement, maxsplit=1)[0].replace("-", "_")


@dataclass(frozen=True)
class GitSource:
    """A pinned commit of a GitHub repository, unpacked under ``.corpus/<folder>/``."""

    repo: str
    commit: str
    folder: str
    select: re.Pattern
    exclude: re.Pattern | None = None
    kind: str = "training"


WHEELS = (
    WheelSource("torchvision", re.compile(r"^torchvision/models/(?:[^/]+/)*[^/]+\.py$")),
    WheelSource("timm", re.compile(r"^timm/models/(?:[^/]+/)*[^/]+\.py$")),
    # TensorFlow / Flax ports are not PyTorch code (transformers < 5 ships them).
    WheelSource(
        "transformers",
        re.compile(r"^transformers/models/[^/]+/modeling_[^/]*\.py$"),
        re.compile(r"/modeling_(?:tf|flax)_[^/]*\.py$"),
    ),
    # Training code is pinned: the reviewed sample of findings in the notes refers to these.
    WheelSource("d2l==1.0.3", re.compile(r"^d2l/torch\.py$"), kind="training"),
    WheelSource("lightning==2.6.6", re.compile(r"^lightning/pytorch/demos/[^/]+\.py$"), kind="training"),
    WheelSource("accelerate==1.15.0", re.compile(r"^accelerate/test_utils/(?:[^/]+/)*[^/]+\.py$"), kind="training"),
    WheelSource("pytorch-ignite==0.5.5", re.compile(r"^ignite/(?:engine|contrib/engines)/[^/]+\.py$"), kind="training"),
    WheelSource("skorch==1.4.0", re.compile(r"^skorch/net\.py$"), kind="training"),
)
PACKAGES = tuple(w.name for w in WHEELS)

GIT_SOURCES = (
    GitSource(
        "pytorch/examples",
        "77f55b912142e11fcfdf5b530231fb9c52f181e8",
        "pytorch-examples",
        re.compile(r"^(?:[^/]+/)*[^/]+\.py$"),
        re.compile(r"^(?:docs|cpp)/"),
    ),
)
MIRROR_ENV = "GRADLINT_CORPUS_MIRROR"
ARCHIVE_URL = "https://codeload.github.com/{repo}/tar.gz/{commit}"
DOWNLOAD_TIMEOUT_S = 60
MAX_ARCHIVE_BYTES = 200 * 1024 * 1024


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
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(dest),
        *extra,
        *packages,
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


def _find_wheel(dest: Path, package: str) -> Path | None:
    wheels = sorted(dest.glob(f"{package}-*.whl"))
    return wheels[-1] if wheels else None


def download_wheels(dest: Path) -> dict[str, Path]:
    """Download every wheel of WHEELS into *dest*; return {wheel name: wheel path}.

    One pip call for all of them; for a wheel still missing afterwards it tries again
    alone, then with explicit manylinux platform tags (for a wheel that only exists for
    a platform pip does not consider compatible here).
    """
    first = _pip_download(dest, [w.requirement for w in WHEELS])
    wheels = {w.name: _find_wheel(dest, w.name) for w in WHEELS}
    errors: dict[str, str] = {}
    pyver = f"{sys.version_info.major}{sys.version_info.minor}"
    for source in WHEELS:
        if wheels[source.name] is not None:
            continue
        attempts = [[]] + [
            ["--platform", plat, "--python-version", pyver, "--implementation", "cp"]
            for plat in ("manylinux_2_28_x86_64", "manylinux2014_x86_64", "any")
        ]
        log = [first.stderr.strip()]
        for extra in attempts:
            res = _pip_download(dest, [source.requirement], extra)
            log.append(f"$ pip download {' '.join(extra)} {source.requirement}\n{res.stderr.strip()}")
            wheels[source.name] = _find_wheel(dest, source.name)
            if wheels[source.name] is not None:
                break
        if wheels[source.name] is None:
            errors[source.requirement] = "\n".join(x for x in log if x)
    if errors:
        msg = "\n\n".join(f"--- {pkg} ---\n{err}" for pkg, err in errors.items())
        raise RuntimeError(f"pip download failed for: {', '.join(errors)}\n{msg}")
    return wheels  # type: ignore[return-value]


def _wheel_version(wheel: Path) -> str:
    # name-version-pytag-abitag-plattag.whl
    parts = wheel.name.split("-")
    return parts[1] if len(parts) > 1 else "?"


def _safe_target(dest: Path, name: str, origin: str) -> Path:
    target = (dest / name).resolve()
    if dest.resolve() not in target.parents:  # never write outside dest
        raise RuntimeError(f"unsafe path in {origin}: {name!r}")
    return target


def _write(target: Path, data: bytes) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return count_lines(data)


def extract_wheel(wheel: Path, source: WheelSource, dest: Path) -> tuple[int, int]:
    """Unpack the selected files of *wheel* under *dest*; (files, lines)."""
    files = lines = 0
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not source.select.match(name) or (source.exclude and source.exclude.search(name)):
                continue
            lines += _write(_safe_target(dest, name, wheel.name), zf.read(name))
            files += 1
    return files, lines


def _git_archive(source: GitSource, into: Path) -> tuple[Path, str]:
    """A tar of *source*'s commit in *into*, from the mirror or GitHub; (path, where from)."""
    tar = into / f"{source.folder}.tar"
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        git_dir = Path(mirror) / source.repo.replace("/", "+") / "repo"
        if git_dir.is_dir():
            res = subprocess.run(
                [
                    "git",
                    "--git-dir",
                    str(git_dir),
                    "archive",
                    "--format=tar",
                    f"--prefix={source.folder}/",
                    "-o",
                    str(tar),
                    source.commit,
                    "--",
                    ":(glob)**/*.py",
                ],  # a mirror may lack big data files
                capture_output=True,
                text=True,
            )
            if res.returncode == 0:
                return tar, f"mirror {git_dir}"
    url = ARCHIVE_URL.format(repo=source.repo, commit=source.commit)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, open(tar, "wb") as out:
        got = 0
        while chunk := resp.read(1 << 20):
            got += len(chunk)
            if got > MAX_ARCHIVE_BYTES:
                raise RuntimeError(f"{url}: larger than {MAX_ARCHIVE_BYTES} bytes")
            out.write(chunk)
    return tar, url


def extract_git(tar: Path, source: GitSource, dest: Path) -> tuple[int, int]:
    """Unpack the selected ``.py`` files of a repository archive under ``dest/<folder>/``."""
    files = lines = 0
    with tarfile.open(tar) as tf:
        for member in tf:
            if not member.isfile():
                continue
            # GitHub archives put everything under "<name>-<commit>/"; git archive under the prefix.
            _, _, inner = member.name.partition("/")
            if not source.select.match(inner) or (source.exclude and source.exclude.search(inner)):
                continue
            data = tf.extractfile(member).read()
            lines += _write(_safe_target(dest, f"{source.folder}/{inner}", tar.name), data)
            files += 1
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
        say(f"corpus: downloading wheels ({', '.join(w.requirement for w in WHEELS)}) with pip, no install ...")
        wheels = download_wheels(wheel_dir)
        manifest: dict = {"layout": LAYOUT, "packages": {}, "repositories": {}}
        for source in WHEELS:
            wheel = wheels[source.name]
            n_files, n_lines = extract_wheel(wheel, source, tree)
            manifest["packages"][source.name] = {
                "wheel": wheel.name,
                "version": _wheel_version(wheel),
                "kind": source.kind,
                "files": n_files,
                "lines": n_lines,
            }
            say(f"corpus:   {wheel.name}: {n_files} files, {n_lines} lines ({source.kind})")
        for source in GIT_SOURCES:
            entry = {"commit": source.commit, "folder": source.folder, "kind": source.kind}
            try:
                tar, origin = _git_archive(source, staging)
                n_files, n_lines = extract_git(tar, source, tree)
                entry.update(files=n_files, lines=n_lines, source=origin)
                say(
                    f"corpus:   {source.repo}@{source.commit[:10]}: {n_files} files, {n_lines} lines"
                    f" ({source.kind}, from {origin})"
                )
            except (OSError, RuntimeError, tarfile.TarError) as exc:
                entry["skipped"] = f"{type(exc).__name__}: {exc}"
                say(
                    f"corpus:   {source.repo}: LEFT OUT, could not be downloaded ({entry['skipped']});"
                    f" set {MIRROR_ENV} to a folder of git mirrors to include it"
                )
            manifest["repositories"][source.repo] = entry
        (tree / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if CORPUS_DIR.exists():
            shutil.rmtree(CORPUS_DIR)
        os.replace(tree, CORPUS_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CORPUS_DIR


def _manifest(root: Path) -> dict:
    try:
        data = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ensure_corpus(quiet: bool = False, force: bool = False) -> Path:
    """Return the corpus folder, building it first if it is not there yet.

    Prints the corpus size (files, lines) unless *quiet*.
    """
    stale = CORPUS_DIR.is_dir() and _manifest(CORPUS_DIR).get("layout") != LAYOUT
    if stale and not quiet:
        print(f"corpus: {CORPUS_DIR} was built for another set of sources; rebuilding")
    if force or stale or not CORPUS_DIR.is_dir():
        build_corpus(force=force, quiet=quiet)
    elif not quiet:
        print(f"corpus: already present at {CORPUS_DIR}, nothing downloaded")
    if not quiet:
        n_files, n_lines = corpus_stats(CORPUS_DIR)
        versions = describe_versions(CORPUS_DIR)
        print(f"corpus: {n_files} files, {n_lines} lines" + (f" ({versions})" if versions else ""))
    return CORPUS_DIR


def describe_versions(root: Path | None = None) -> str:
    """'torchvision 0.x, timm 1.x, ..., pytorch/examples@77f55b9' from the manifest, or ''."""
    manifest = _manifest(CORPUS_DIR if root is None else root)
    try:
        parts = [f"{k} {v['version']}" for k, v in manifest.get("packages", {}).items()]
        for repo, v in manifest.get("repositories", {}).items():
            parts.append(f"{repo} left out" if "skipped" in v else f"{repo}@{v['commit'][:7]}")
    except (KeyError, TypeError, AttributeError):
        return ""
    return ", ".join(parts)


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
