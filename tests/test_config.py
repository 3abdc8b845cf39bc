"""[tool.gradlint] / gradlint.toml: every key, the nearest file, warnings, errors, --isolated."""

import json

import pytest
from click.testing import CliRunner
from test_cli import CONSTANT, SIGMOID_STACK

from gradlint.cli import cli
from gradlint.config import ConfigError
from gradlint.config_files import load_config
from gradlint.config_resolve import settings_for


@pytest.fixture
def proj(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)

    def write(name, text):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    write.root = tmp_path
    write("tower.py", SIGMOID_STACK.format(noqa=""))
    write("const.py", CONSTANT.format(noqa=""))
    return write


def check(*args):
    result = CliRunner().invoke(cli, ["check", "--no-cache", "-j", "1", "--output-format", "json-lines", *args])
    codes = sorted(
        json.loads(l)["code"] + ":" + json.loads(l)["path"] for l in result.stdout.splitlines() if l.startswith("{")
    )
    return result, codes


def test_without_config_everything_is_reported(proj):
    result, codes = check(".")
    assert codes == ["GL101:tower.py", "GL201:const.py"] and result.exit_code == 1


@pytest.mark.parametrize(
    "table, expected",
    [
        ('select = ["GL2"]', ["GL201:const.py"]),
        # with GL101 off, GL301 takes its hazard over (and says GL101 would name the cause)
        ('ignore = ["GL101"]', ["GL201:const.py", "GL301:tower.py"]),
        ('ignore = ["saturating-activation-stack"]', ["GL201:const.py", "GL301:tower.py"]),
        ('ignore = ["GL101", "GL301"]', ["GL201:const.py"]),
        ('select = ["GL2"]\nextend-select = ["GL101"]', ["GL101:tower.py", "GL201:const.py"]),
        ('[per-file-ignores]\n"tower.py" = ["GL101"]', ["GL201:const.py", "GL301:tower.py"]),
        ('[per-file-ignores]\n"tower.py" = ["GL101", "GL301"]', ["GL201:const.py"]),
        ('[per-file-ignores]\n"const*.py" = ["GL2"]', ["GL101:tower.py"]),
        ('extend-exclude = ["tower.py"]', ["GL201:const.py"]),
        ('exclude = ["const.py"]', ["GL101:tower.py"]),
        ("[rules.GL101]\nmin-layers = 11", ["GL201:const.py"]),
        ("[rules.saturating-activation-stack]\nmin-layers = 11", ["GL201:const.py"]),
    ],
)
def test_each_key_changes_the_run(proj, table, expected):
    proj("gradlint.toml", table + "\n")
    result, codes = check(".")
    assert codes == expected, result.output


def test_pyproject_table_and_the_nearest_file_wins(proj):
    proj("pyproject.toml", '[project]\nname = "x"\n\n[tool.gradlint]\nignore = ["GL101"]\n')
    proj("sub/pyproject.toml", '[tool.gradlint]\nignore = ["GL201"]\n')
    proj("sub/tower.py", SIGMOID_STACK.format(noqa=""))
    proj("sub/const.py", CONSTANT.format(noqa=""))
    # each file is checked with its nearest configuration, whatever else is checked with it
    # (tower.py's sigmoid stack, its GL101 off, is GL301's: the hazard is still reported)
    assert check(".")[1] == ["GL101:sub/tower.py", "GL201:const.py", "GL301:tower.py"]
    # checking inside sub/ uses sub/pyproject.toml, the nearest
    assert check("sub")[1] == ["GL101:sub/tower.py"]
    # a pyproject.toml without [tool.gradlint] is passed over
    proj("sub/pyproject.toml", '[project]\nname = "y"\n')
    assert check("sub")[1] == ["GL201:sub/const.py", "GL301:sub/tower.py"]


def test_isolated_ignores_config_files(proj):
    proj("gradlint.toml", 'ignore = ["GL1", "GL2", "GL3"]\n')
    assert check(".")[1] == []
    assert check("--isolated", ".")[1] == ["GL101:tower.py", "GL201:const.py"]


def test_command_line_wins_over_the_file(proj):
    proj("gradlint.toml", 'select = ["GL2"]\noutput-format = "concise"\n')
    assert check("--select", "GL1", ".")[1] == ["GL101:tower.py"]
    # output-format from the file applies when the flag is absent
    result = CliRunner().invoke(cli, ["check", "--no-cache", "."])
    assert result.stdout.startswith("const.py:8:9: GL201 ")


def test_output_format_from_the_environment(proj, monkeypatch):
    monkeypatch.setenv("GRADLINT_OUTPUT_FORMAT", "github")
    result = CliRunner().invoke(cli, ["check", "--no-cache", "."])
    assert result.stdout.startswith("::error file=const.py,line=8,col=9")


def test_unknown_keys_warn_with_the_closest_valid_key(proj):
    proj("gradlint.toml", 'extend-exlude = ["x"]\n[rules.GL101]\nmin-layer = 3\n[dynamic]\nseed = 2\n')
    result, codes = check(".")
    assert "unknown key `extend-exlude`; did you mean `extend-exclude`?" in result.stderr
    assert "unknown key `min-layer`; did you mean `min-layers`?" in result.stderr
    assert "unknown key `seed`; did you mean `seeds`?" in result.stderr
    assert codes == ["GL101:tower.py", "GL201:const.py"]  # the run goes on


@pytest.mark.parametrize(
    "table, message",
    [
        ('select = "GL1"', "select must be an array, not str"),
        ("select = [1]", "select must be an array of strings"),
        ('select = ["GL8"]', "unknown rule selector `GL8`"),
        ("preview = 1", "preview must be true or false, not int"),
        ('[rules.GL101]\nmin-layers = "many"', "rules.GL101 min-layers must be a number, not str"),
        ("[rules.GL101]\nmin-layers = 0", "min-layers must be at least 1"),
        ('[per-file-ignores]\n"a.py" = 3', 'per-file-ignores."a.py" must be an array of rule codes'),
        ('output-format = "xml"', "output-format must be one of"),
        ("cache-dir = 3", "cache-dir must be a string"),
        ("select = [", "not valid TOML"),
    ],
)
def test_wrong_types_exit_2_with_a_clear_message(proj, table, message):
    proj("gradlint.toml", table + "\n")
    result, _ = check(".")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "gradlint.toml" in result.stderr
    assert "Traceback" not in result.output


def test_preview_rules_need_preview(proj, monkeypatch):
    import gradlint.rule
    from gradlint.rule import rule_by_code

    monkeypatch.setattr(rule_by_code("GL201"), "preview", True)
    monkeypatch.setattr(gradlint.rule, "_RULES_CACHE", {})
    assert check(".")[1] == ["GL101:tower.py"]
    assert check("--preview", ".")[1] == ["GL101:tower.py", "GL201:const.py"]
    proj("gradlint.toml", "preview = true\n")
    assert check(".")[1] == ["GL101:tower.py", "GL201:const.py"]


def test_force_exclude_applies_excludes_to_files_named(proj):
    proj("gradlint.toml", 'extend-exclude = ["legacy/"]\n')
    proj("legacy/old.py", SIGMOID_STACK.format(noqa=""))
    assert check("legacy/old.py")[1] == ["GL101:legacy/old.py"]  # named: checked
    assert check("--force-exclude", "legacy/old.py")[1] == []
    result, codes = check("--force-exclude")  # nothing left to check is fine
    assert result.exit_code == 1 and "legacy" not in " ".join(codes)


def test_force_exclude_from_a_subfolder_matches_from_the_project_root(proj, monkeypatch):
    proj("gradlint.toml", 'extend-exclude = ["/legacy/"]\n')
    proj("legacy/old.py", SIGMOID_STACK.format(noqa=""))
    monkeypatch.chdir(proj.root / "legacy")
    assert check("--force-exclude", "old.py")[1] == []


def test_settings_for_a_file_reads_its_nearest_config(proj):
    proj("gradlint.toml", 'ignore = ["GL101"]\n[rules.GL303]\nmin-blocks = 4\n')
    settings = settings_for(proj.root / "tower.py")
    assert "GL101" in settings.ignore
    assert dict(settings.rule_options)["GL303"] == (("min-blocks", 4),)
    assert settings.root == str(proj.root.resolve())


def test_config_error_is_raised_for_the_api(proj):
    proj("gradlint.toml", "jobs = -1\n")
    with pytest.raises(ConfigError, match="jobs must be 0"):
        load_config(proj.root)


def test_cache_dir_from_config(proj):
    proj("gradlint.toml", 'cache-dir = "build/lint-cache"\n')
    result = CliRunner().invoke(cli, ["check", "-j", "1", "."])
    assert result.exit_code == 1
    assert (proj.root / "build" / "lint-cache").is_dir()
    assert not (proj.root / ".gradlint_cache").exists()


@pytest.mark.parametrize("text", ['[tool.gradlint]\nignore = ["GL101"\n', "tool = 3\n[x]\ngradlint = 1\n"])
def test_a_broken_pyproject_meant_for_gradlint_is_an_error_or_ignored_without_a_traceback(proj, text):
    proj("pyproject.toml", text)
    result, _ = check(".")
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    if "[tool.gradlint]" in text:
        assert result.exit_code == 2 and "not valid TOML" in result.stderr


def test_anchored_excludes_match_from_the_project_root_only(proj):
    proj("gradlint.toml", 'extend-exclude = ["/legacy/"]\n')
    proj("legacy/old.py", SIGMOID_STACK.format(noqa=""))
    proj("src/legacy/kept.py", SIGMOID_STACK.format(noqa=""))
    found = check(".")[1]
    assert "GL101:src/legacy/kept.py" in found and not any("legacy/old.py" in c and "src" not in c for c in found)


def test_show_fixes_from_the_file_fills_in_the_edits(proj):
    """`show-fixes = true` in the file computes the fixes' edits as the flag does."""

    def edits(*args):
        result = CliRunner().invoke(
            cli, ["check", "--no-cache", "-j", "1", "--output-format", "json", *args, "const.py"]
        )
        (d,) = json.loads(result.stdout)
        return d["fix"]["edits"]

    assert edits() == []
    assert edits("--show-fixes") != []
    proj("gradlint.toml", "show-fixes = true\n")
    assert edits() != [] and edits() == edits("--show-fixes")
