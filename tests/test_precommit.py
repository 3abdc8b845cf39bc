"""The pre-commit hooks (.pre-commit-hooks.yaml), driven by the real ``pre-commit try-repo``.

``try-repo`` clones this repository at HEAD (plus its uncommitted changes to tracked files, in
a shadow clone), builds the hooks' Python environment with ``pip install .`` and runs the hook
in a temporary git repository. Building the environment needs the package index (or this
machine's pip configuration with local indexes); ``try-repo`` keeps its store in a temporary
folder of its own, so every call builds it afresh: the scenarios below share calls.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

pre_commit = pytest.importorskip("pre_commit", reason="pre-commit is a dev dependency: pip install -e '.[dev]'")
from pre_commit.clientlib import load_manifest  # noqa: E402

MANIFEST = ROOT / ".pre-commit-hooks.yaml"
PRE_COMMIT = Path(sys.executable).with_name("pre-commit")

BAD = textwrap.dedent("""\
    import torch.nn as nn


    class Tower(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for _ in range(8):
                layers += [nn.Linear(64, 64), nn.Sigmoid()]
            self.net = nn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)
    """)
GOOD = BAD.replace("nn.Sigmoid()", "nn.ReLU()")
PYPROJECT = textwrap.dedent("""\
    [project]
    name = "consumer"
    version = "0"

    [tool.gradlint]
    extend-exclude = ["legacy/"]
    """)


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


def _clean_env(pre_commit_home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k not in ("PRE_COMMIT", "VIRTUAL_ENV")}
    env.update(PRE_COMMIT_HOME=str(pre_commit_home), NO_COLOR="1", PRE_COMMIT_COLOR="never")
    return env


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    """A git repository using the hooks: a bad model, a good one, an excluded bad one; and the
    environment (one PRE_COMMIT_HOME for the module) to run pre-commit in."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: try-repo needs this repository's history")
    if not PRE_COMMIT.exists():
        pytest.skip(f"no pre-commit executable next to {sys.executable}")
    repo = tmp_path_factory.mktemp("consumer")
    env = _clean_env(tmp_path_factory.mktemp("pre-commit-home"))
    _git("init", "-q", cwd=repo)
    _git("config", "user.name", "gradlint tests", cwd=repo)
    _git("config", "user.email", "tests@gradlint.invalid", cwd=repo)
    _git("config", "commit.gpgsign", "false", cwd=repo)
    (repo / "bad.py").write_text(BAD)
    (repo / "good.py").write_text(GOOD)
    (repo / "legacy").mkdir()
    (repo / "legacy" / "bad.py").write_text(BAD)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    _git("add", ".", cwd=repo)
    return repo, env


def try_repo(consumer, *files: str, hook: str = "gradlint", ref: str | None = None) -> subprocess.CompletedProcess:
    repo, env = consumer
    start = time.perf_counter()
    at = ["--ref", ref] if ref else []
    proc = subprocess.run(
        [str(PRE_COMMIT), "try-repo", str(ROOT), hook, *at, "--verbose", "--color", "never", "--files", *files],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - start
    print(f"pre-commit try-repo {hook} --files {' '.join(files)}: exit {proc.returncode} in {seconds:.1f} s")
    print(proc.stdout, proc.stderr, sep="\n")
    return proc


def _hook_section(output: str) -> str:
    """What the hook printed, after try-repo's echo of the config it generated."""
    return output.rsplit("=" * 79, 1)[-1]


# ---------------------------------------------------------------- the manifest
def test_manifest_is_valid_for_pre_commit():
    hooks = {h["id"]: h for h in load_manifest(str(MANIFEST))}
    assert set(hooks) == {"gradlint", "gradlint-fix"}
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["types_or"] == ["python", "jupyter"]
        assert hook["require_serial"] is True
        assert hook["pass_filenames"] is True
        assert "--force-exclude" in shlex.split(hook["entry"])
        assert hook["description"]
        # types_or arrived in pre-commit 2.9.0
        assert tuple(int(x) for x in hook["minimum_pre_commit_version"].split(".")) >= (2, 9, 0)
    assert shlex.split(hooks["gradlint"]["entry"])[:2] == ["gradlint", "check"]
    assert "--fix" not in shlex.split(hooks["gradlint"]["entry"])
    assert shlex.split(hooks["gradlint-fix"]["entry"])[:3] == ["gradlint", "check", "--fix"]


def test_manifest_is_committed():
    """try-repo and users' pre-commit read the manifest from git, not from the working tree."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".pre-commit-hooks.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    assert tracked.returncode == 0, tracked.stderr


@pytest.mark.parametrize("hook", ["gradlint", "gradlint-fix"])
def test_entry_with_no_files_checks_the_current_folder(tmp_path, hook):
    """An ``always_run`` hook may be called with no file names: gradlint checks "." then."""
    entry = shlex.split({h["id"]: h for h in load_manifest(str(MANIFEST))}[hook]["entry"])
    assert entry[0] == "gradlint"
    (tmp_path / "good.py").write_text(GOOD)
    proc = run_cli(*entry[1:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 file checked" in proc.stderr
    (tmp_path / "bad.py").write_text(BAD)
    proc = run_cli(*entry[1:], cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "GL101" in proc.stdout


# ---------------------------------------------------------------- the real pre-commit
def test_hook_fails_on_a_deep_sigmoid_stack(consumer):
    proc = try_repo(consumer, "bad.py")
    out = _hook_section(proc.stdout + proc.stderr)
    assert proc.returncode != 0, out
    assert "Failed" in out and "exit code: 1" in out, out  # findings, not a crash (2) or an install error
    assert "bad.py:9:" in out and "GL101" in out, out


def test_hook_passes_on_a_healthy_model_and_on_excluded_files(consumer):
    """good.py is healthy; legacy/bad.py is a deep sigmoid stack, but ``extend-exclude`` in the
    consumer's [tool.gradlint] names legacy/: pre-commit passes it by name, --force-exclude
    keeps it out."""
    # one try-repo call for both (each call builds the hook environment afresh, ~10 s);
    # the assertions tell the two apart
    proc = try_repo(consumer, "good.py", "legacy/bad.py")
    out = _hook_section(proc.stdout + proc.stderr)
    assert "legacy/bad.py" not in out, f"the excluded file was checked (--force-exclude, extend-exclude):\n{out}"
    assert "good.py:" not in out, f"findings in the healthy model:\n{out}"
    assert "1 file checked" in out, out  # good.py, and not legacy/bad.py
    assert proc.returncode == 0, out
    assert "Passed" in out


# ---------------------------------------------------------------- the README's snippet
def _readme_snippet() -> dict:
    import re

    import yaml  # pre-commit's own dependency

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## pre-commit\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    (repo,) = yaml.safe_load(block)["repos"]
    repo["comment"] = re.search(r"rev: \S+(.*)$", block, re.M).group(1)
    return repo


def _commit(rev: str) -> str | None:
    res = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True, text=True
    )
    return res.stdout.strip() if res.returncode == 0 else None


def _pinned_rev() -> str:
    snippet = _readme_snippet()
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    if _commit(snippet["rev"]) is None:
        shallow = subprocess.run(
            ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        if shallow == "true":
            pytest.skip("a shallow clone: the pinned commit is not in it")
    return snippet["rev"]


def test_the_readme_snippet_pins_a_commit_of_this_repository():
    snippet = _readme_snippet()
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    assert snippet["repo"] == urls["Repository"]
    rev = _pinned_rev()
    assert _commit(rev) == rev, f"the README's rev {rev} is not a commit of this repository"
    # as `pre-commit autoupdate --freeze` writes it: the commit, and the tag it is
    assert snippet["comment"].strip() == "# frozen: v0.1.0"
    tagged = _commit("v0.1.0")
    if tagged is not None:  # a clone may come without tags; where the tag is, it is that commit
        assert tagged == rev
    # the hooks it names exist in the manifest at that commit
    manifest = subprocess.run(
        ["git", "show", f"{rev}:.pre-commit-hooks.yaml"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    import yaml

    ids = {h["id"] for h in yaml.safe_load(manifest)}
    assert {h["id"] for h in snippet["hooks"]} <= ids


def test_the_readme_snippet_runs_through_try_repo_at_its_rev(consumer):
    rev = _pinned_rev()
    (hook,) = [h["id"] for h in _readme_snippet()["hooks"]]
    proc = try_repo(consumer, "bad.py", "good.py", hook=hook, ref=rev)
    out = _hook_section(proc.stdout + proc.stderr)
    assert proc.returncode != 0 and "exit code: 1" in out, out
    assert "bad.py:9:" in out and "GL101" in out and "good.py:" not in out, out
