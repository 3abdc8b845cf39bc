"""Per-file configuration: each file is checked with its nearest configuration file (and the
files it ``extend``s), so its findings do not depend on what else is checked with it, on the
folder the run starts in, or on whether the CLI or the language server checks it."""

import json
import os

import pytest
from click.testing import CliRunner
from test_cli import CONSTANT, SIGMOID_STACK

from gradlint.cli import cli
from gradlint.config import ConfigError
from gradlint.config_files import load_config_file, rebase
from gradlint.config_resolve import Resolver

ROOT_CONFIG = """[project]
name = "mono"

[tool.gradlint]
ignore = ["GL201", "GL301"]
extend-exclude = ["/b/generated/"]

[tool.gradlint.per-file-ignores]
"/b/legacy/*.py" = ["GL101"]

[tool.gradlint.rules.GL101]
min-layers = 11
"""
#: project a: its own configuration, extending nothing (GL201 is reported there)
A_CONFIG = '[tool.gradlint]\nignore = ["GL101", "GL301"]\n'
#: project b: extends the root's (GL201 ignored, legacy/ without GL101, generated/ excluded),
#: and lowers GL101's depth so its 10-layer tower is reported
B_CONFIG = 'extend = "../pyproject.toml"\n\n[rules.GL101]\nmin-layers = 4\n'

FILES = {
    "a/tower.py": SIGMOID_STACK.format(noqa=""),
    "a/const.py": CONSTANT.format(noqa=""),
    "b/tower.py": SIGMOID_STACK.format(noqa=""),
    "b/const.py": CONSTANT.format(noqa=""),
    "b/legacy/tower.py": SIGMOID_STACK.format(noqa=""),
    "b/generated/tower.py": SIGMOID_STACK.format(noqa=""),
    "top.py": SIGMOID_STACK.format(noqa="") + "\n" + CONSTANT.format(noqa="").replace("import torch.nn as nn\n", ""),
}
#: what each file's own configuration gives it
EXPECTED = {
    "a/tower.py": [],
    "a/const.py": ["GL201"],
    "b/tower.py": ["GL101"],
    "b/const.py": [],
    "b/legacy/tower.py": [],
    "top.py": [],  # the root's: GL201 ignored, and 10 layers are under its 11
}


def build_monorepo(root) -> None:
    (root / "pyproject.toml").write_text(ROOT_CONFIG, encoding="utf-8")
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "a" / "pyproject.toml").write_text(A_CONFIG, encoding="utf-8")
    (root / "b" / "gradlint.toml").write_text(B_CONFIG, encoding="utf-8")


@pytest.fixture
def mono(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)
    build_monorepo(tmp_path)
    return tmp_path


def check(root, *args, cwd=None):
    """``gradlint check ARGS`` from ``cwd``: {file relative to root: [codes]} and the result."""
    old = os.getcwd()
    os.chdir(cwd or root)
    try:
        result = CliRunner().invoke(cli, ["check", "--no-cache", "--output-format", "json-lines", *args])
    finally:
        os.chdir(old)
    found: dict = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            path = os.path.relpath(os.path.join(cwd or root, d["path"]), root).replace(os.sep, "/")
            found.setdefault(path, []).append(d["code"])
    return found, result


def expected(*names):
    return {n: sorted(EXPECTED[n]) for n in names if EXPECTED[n]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_file_alone(mono, name):
    found, result = check(mono, name)
    assert found == expected(name), result.output


@pytest.mark.parametrize(
    "args, names",
    [
        (["a", "b"], ["a/tower.py", "a/const.py", "b/tower.py", "b/const.py", "b/legacy/tower.py"]),
        (["."], sorted(EXPECTED)),
        (["a/tower.py", "b/tower.py", "a/const.py"], ["a/tower.py", "b/tower.py", "a/const.py"]),
        (["b", "top.py"], ["b/tower.py", "b/const.py", "b/legacy/tower.py", "top.py"]),
    ],
)
def test_files_checked_together_keep_their_own_findings(mono, args, names):
    found, result = check(mono, *args)
    assert {k: sorted(v) for k, v in found.items()} == expected(*names), result.output


def test_the_folder_the_run_starts_in_changes_nothing(mono):
    found, _ = check(mono, "../b", "tower.py", cwd=mono / "a")
    assert found == expected("b/tower.py", "b/const.py", "b/legacy/tower.py", "a/tower.py")
    # with many workers too (files are grouped by their settings across the pool, which
    # runs for 8 files or more)
    for k in range(4):
        for project in ("a", "b"):
            (mono / project / f"more{k}.py").write_text(FILES[f"{project}/const.py"], encoding="utf-8")
    found, _ = check(mono, "-j", "2", ".", cwd=mono)
    assert found == {**expected(*EXPECTED), **{f"a/more{k}.py": ["GL201"] for k in range(4)}}


def test_an_inherited_exclude_is_anchored_where_it_was_written(mono):
    # "/b/generated/" in the root's file excludes b/generated/ for b, which extends it
    found, result = check(mono, "--show-files", "b")
    assert result.exit_code == 0
    listed = [os.path.relpath(p, "b").replace(os.sep, "/") for p in result.stdout.split()]
    assert listed == ["const.py", "legacy/tower.py", "tower.py"]
    # named on the command line it is checked (as any excluded file is, without --force-exclude)
    found, _ = check(mono, "b/generated/tower.py")
    assert found == {"b/generated/tower.py": ["GL101"]}
    found, _ = check(mono, "--force-exclude", "b/generated/tower.py")
    assert found == {}


def test_show_settings_names_the_files_they_came_from(mono):
    _, result = check(mono, "--show-settings", "b/legacy/tower.py")
    assert result.exit_code == 0
    out = result.stdout
    assert f"{mono / 'b' / 'gradlint.toml'} <- extends {mono / 'pyproject.toml'}" in out
    assert "ignore = ('GL201', 'GL301')" in out
    assert "per-file-ignores = (('/legacy/*.py', ('GL101',)),)" in out
    assert "('GL101', (('min-layers', 4),))" in out
    assert "GL101" not in out.split("enabled rules for this file = ")[1].split(",")  # legacy/: ignored
    _, result = check(mono, "--show-settings", "a/tower.py", "--select", "GL2")
    assert f"Read from: {mono / 'a' / 'pyproject.toml'}\n" in result.stdout
    assert "Command line: select" in result.stdout and "select = ('GL2',)" in result.stdout
    _, result = check(mono, "--isolated", "--show-settings", "a/tower.py")
    assert "no configuration file (the defaults)" in result.stdout


def test_show_files_lists_what_would_be_checked(mono):
    _, result = check(mono, "--show-files", ".")
    assert result.exit_code == 0
    assert sorted(p.replace(os.sep, "/") for p in result.stdout.split()) == sorted(EXPECTED)
    _, result = check(mono, "--show-files", "missing")
    assert result.exit_code == 2 and "path does not exist" in result.output


def test_a_broken_sub_project_config_is_an_error_naming_it(mono):
    (mono / "a" / "pyproject.toml").write_text("[tool.gradlint]\nselect = 5\n", encoding="utf-8")
    found, result = check(mono, ".")
    assert result.exit_code == 2
    assert str(mono / "a" / "pyproject.toml") in result.output and "select" in result.output
    # the other project still checks alone
    found, result = check(mono, "b")
    assert result.exit_code == 1 and found == expected("b/tower.py")


def test_extend_cycles_and_missing_files_are_errors(tmp_path):
    (tmp_path / "x.toml").write_text("", encoding="utf-8")
    (tmp_path / "gradlint.toml").write_text('extend = "sub/gradlint.toml"\n', encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gradlint.toml").write_text('extend = "../gradlint.toml"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        load_config_file(tmp_path / "gradlint.toml")
    (tmp_path / "sub" / "gradlint.toml").write_text('extend = "nowhere.toml"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="no such file"):
        load_config_file(tmp_path / "sub" / "gradlint.toml")
    (tmp_path / "sub" / "gradlint.toml").write_text("extend = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="extend must be a string"):
        load_config_file(tmp_path / "sub" / "gradlint.toml")


def test_merge_follows_ruffs_rules(tmp_path):
    (tmp_path / "gradlint.toml").write_text(
        'select = ["GL1", "GL2"]\nignore = ["GL102"]\nextend-exclude = ["old/"]\noutput-format = "concise"\n'
        '[per-file-ignores]\n"tests/*" = ["GL201"]\n"**/test_*.py" = ["GL1"]\n',
        encoding="utf-8",
    )
    (tmp_path / "p").mkdir()
    child = tmp_path / "p" / "gradlint.toml"
    child.write_text(
        'extend = "../gradlint.toml"\nignore = ["GL103"]\nextend-exclude = ["tmp/"]\n'
        '[per-file-ignores]\n"/gen.py" = ["GL101"]\n',
        encoding="utf-8",
    )
    data = load_config_file(child).data
    assert data["select"] == ["GL1", "GL2"] and data["ignore"] == ["GL102", "GL103"]
    assert data["extend-exclude"] == ["old/", "tmp/"] and data["output-format"] == "concise"
    # "tests/*" is anchored (a slash inside): it names the parent's tests/, not one below p/
    assert data["per-file-ignores"] == {"**/test_*.py": ["GL1"], "/gen.py": ["GL101"]}
    # a child's select starts the selection afresh: the parent's ignore no longer applies
    child.write_text('extend = "../gradlint.toml"\nselect = ["GL102"]\n', encoding="utf-8")
    data = load_config_file(child).data
    assert data["select"] == ["GL102"] and "ignore" not in data


@pytest.mark.parametrize(
    "pattern, old, new, out",
    [
        ("build/", "r", "r/p", "build/"),  # unanchored: any depth
        ("*.py", "r", "r/p", "*.py"),
        ("/p/gen/", "r", "r/p", "/gen/"),
        ("p/*.py", "r", "r/p", "/*.py"),
        ("/q/gen/", "r", "r/p", None),  # another project's folder: nothing below r/p
        ("*/gen/x.py", "r", "r/p", "/gen/x.py"),
        ("/p/", "r", "r/p", "**"),  # the whole project
        ("**/gen/", "r", "r/p", "**/gen/"),
        ("!/p/keep.py", "r", "r/p", "!/keep.py"),
        ("/gen/", "r/p", "r", "/p/gen/"),  # extending a file below
        ("/gen/", "r/p", "s", None),
    ],
)
def test_rebase(tmp_path, pattern, old, new, out):
    for name in ("r/p", "s"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    assert rebase(pattern, tmp_path / old, tmp_path / new) == out


def test_the_resolver_reads_each_configuration_once(mono):
    seen = []
    resolver = Resolver(warn=seen.append)
    (mono / "b" / "gradlint.toml").write_text(B_CONFIG + "bogus = 1\n", encoding="utf-8")
    first = resolver(mono / "b" / "tower.py")
    assert resolver(mono / "b" / "legacy" / "tower.py") is first
    assert resolver(mono / "a" / "tower.py") is not first
    assert len(seen) == 1 and "bogus" in seen[0]
