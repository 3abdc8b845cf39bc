"""scripts/add_rule.py: adding a rule is writing one file (plus its fixture)."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradlint.rule import DOC_HEADINGS, REQUIRED_HEADINGS, Rule

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "add_rule.py"


@pytest.fixture
def repo(tmp_path):
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / "fixtures" / "models").mkdir(parents=True)
    return tmp_path


def _run(repo, *args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--root", str(repo)], capture_output=True, text=True, timeout=60
    )


def test_it_scaffolds_a_rule_that_meets_the_rules_conventions(repo):
    r = _run(repo, "deep-gated-stack", "--series", "GL3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("GL306 deep-gated-stack: wrote ")  # GL301-GL305 are taken
    path = repo / "rules" / "deep_gated_stack.py"
    spec = importlib.util.spec_from_file_location("scaffolded_rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rule = module.DeepGatedStack
    assert issubclass(rule, Rule) and rule.code == "GL306" and rule.name == "deep-gated-stack"
    assert rule.preview is True and rule.severity == "warning"  # in preview until it is done
    headings = list(rule.doc_sections())
    assert [h for h in headings if h in REQUIRED_HEADINGS] == list(REQUIRED_HEADINGS)
    assert all(h in DOC_HEADINGS for h in headings)
    fixture = (repo / "fixtures" / "models" / "deep_gated_stack.py").read_text(encoding="utf-8")
    assert "# warning: GL306" in fixture
    compile(fixture, "fixture.py", "exec")


def test_it_refuses_what_would_clash(repo):
    assert _run(repo, "deep-gated-stack", "--series", "GL3").returncode == 0
    again = _run(repo, "deep-gated-stack", "--series", "GL3")
    assert again.returncode != 0 and "exists already" in again.stderr
    taken = _run(repo, "saturated-layer", "--series", "GL1")
    assert taken.returncode != 0 and ("taken" in taken.stderr or "exists" in taken.stderr)
    assert _run(repo, "Bad_Name", "--series", "GL3").returncode != 0
    assert _run(repo, "fine-name", "--series", "GL12").returncode != 0
