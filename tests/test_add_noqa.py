"""--add-noqa: every current finding gets a `# noqa: CODE` on its line, so that a team can
adopt gradlint on an existing codebase; then `gradlint check` is clean, and a second
--add-noqa changes nothing."""

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli import CONSTANT, SIGMOID_STACK

from gradlint.cli import cli
from gradlint.engine import analyse_source, split_lines
from gradlint.suppressions import noqa_edits

ROOT = Path(__file__).resolve().parent.parent


def gradlint(*args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, ["check", "--no-cache", *args])
    finally:
        os.chdir(old)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_on_the_fixtures_then_check_is_clean_and_a_second_run_changes_nothing(tmp_path):
    copy = tmp_path / "fixtures"
    shutil.copytree(ROOT / "fixtures", copy)
    before = gradlint(".", cwd=copy)
    assert before.exit_code == 1  # the fixtures are full of findings (GL001 and GL003 among them)
    assert "GL001" in before.stdout and "GL003" in before.stdout
    first = gradlint("--add-noqa", ".", cwd=copy)
    assert first.exit_code == 0, first.output
    assert first.stderr.startswith("Added ") and " noqa directives to " in first.stderr
    after = gradlint(".", cwd=copy)
    assert after.exit_code == 0 and "No findings." in after.stderr, after.output
    written = snapshot(copy)
    second = gradlint("--add-noqa", ".", cwd=copy)
    assert second.exit_code == 0 and "No noqa directive to add." in second.stderr
    assert snapshot(copy) == written
    # what it wrote: a code added to an existing list, a directive after an existing comment,
    # the unparsable file ignored as a whole, and the notebook's cell source
    stale = (copy / "models" / "stale_suppression.py").read_text(encoding="utf-8")
    assert "# noqa: GL201, GL003  # warning: GL003" in stale
    broken = (copy / "models" / "broken_syntax.py").read_text(encoding="utf-8")
    assert broken.startswith("# gradlint: file-ignore[GL001]\n")
    assert "# noqa: GL101" in (copy / "notebooks" / "sequence_model.ipynb").read_text(encoding="utf-8")


def test_codes_join_an_existing_list_and_a_bare_noqa_is_left_alone(tmp_path):
    text = SIGMOID_STACK.format(noqa="  # noqa: E501") + CONSTANT.format(noqa="  # noqa").replace(
        "import torch.nn as nn\n", ""
    )
    (tmp_path / "m.py").write_text(text, encoding="utf-8")
    result = gradlint("--add-noqa", "m.py", cwd=tmp_path)
    assert result.exit_code == 0 and "Added 1 noqa directive to 1 file." in result.stderr
    out = (tmp_path / "m.py").read_text(encoding="utf-8")
    assert "# noqa: E501, GL101\n" in out and "nn.init.zeros_(self.a.weight)  # noqa\n" in out
    assert analyse_source(out, "m.py") == []


def test_only_the_selected_rules_get_directives(tmp_path):
    (tmp_path / "m.py").write_text(SIGMOID_STACK.format(noqa=""), encoding="utf-8")
    (tmp_path / "c.py").write_text(CONSTANT.format(noqa=""), encoding="utf-8")
    gradlint("--add-noqa", "--select", "GL2", ".", cwd=tmp_path)
    assert "noqa" not in (tmp_path / "m.py").read_text(encoding="utf-8")
    assert "# noqa: GL201" in (tmp_path / "c.py").read_text(encoding="utf-8")


def test_a_line_ending_inside_a_string_is_left_with_a_warning(tmp_path):
    text = SIGMOID_STACK.format(noqa='; doc = """a\nb"""')
    (tmp_path / "m.py").write_text(text, encoding="utf-8")
    result = gradlint("--add-noqa", "m.py", cwd=tmp_path)
    assert result.exit_code == 0
    assert "m.py:6: no comment can go on this line" in result.stderr and "GL101 left as found" in result.stderr
    assert (tmp_path / "m.py").read_text(encoding="utf-8") == text
    assert gradlint("m.py", cwd=tmp_path).exit_code == 1  # still reported: nothing was hidden


@pytest.mark.parametrize(
    "encoding, bom, newline", [("utf-8", b"", "\r\n"), ("utf-8", b"\xef\xbb\xbf", "\n"), ("latin-1", b"", "\n")]
)
def test_encoding_bom_and_line_endings_are_kept(tmp_path, encoding, bom, newline):
    text = SIGMOID_STACK.format(noqa="  # café")
    if encoding == "latin-1":
        text = "# -*- coding: latin-1 -*-\n" + text
    data = bom + text.replace("\n", newline).encode(encoding)
    (tmp_path / "m.py").write_bytes(data)
    os.chmod(tmp_path / "m.py", 0o640)
    gradlint("--add-noqa", "m.py", cwd=tmp_path)
    new = (tmp_path / "m.py").read_bytes()
    assert new.startswith(bom) and new.count(newline.encode()) == data.count(newline.encode())
    assert new.decode(encoding).lstrip("\ufeff") == text.replace("# café", "# café  # noqa: GL101").replace(
        "\n", newline
    )
    assert (os.stat(tmp_path / "m.py").st_mode & 0o777) == 0o640


def test_an_unparsable_file_is_ignored_below_its_shebang_and_encoding_line(tmp_path):
    (tmp_path / "b.py").write_text(
        "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\nimport torch\nx = (\n", encoding="utf-8"
    )
    gradlint("--add-noqa", "b.py", cwd=tmp_path)
    lines = (tmp_path / "b.py").read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["#!/usr/bin/env python", "# -*- coding: utf-8 -*-", "# gradlint: file-ignore[GL001]"]
    assert gradlint("b.py", cwd=tmp_path).exit_code == 0


def test_add_noqa_refuses_to_combine_with_fix(tmp_path):
    (tmp_path / "m.py").write_text(SIGMOID_STACK.format(noqa=""), encoding="utf-8")
    result = gradlint("--add-noqa", "--fix", "m.py", cwd=tmp_path)
    assert result.exit_code == 2 and "without --fix" in result.stderr


def test_noqa_edits_in_one_pass():
    text = 'a = 1\nb = 2  # noqa: GL101\nc = """x\ny"""\nd = 4 \\\n  + 1\ne = 5  # noqa\n'
    lines = split_lines(text)
    edits, refused = noqa_edits(
        text, lines, {1: ["GL201", "GL201"], 2: ["GL101", "GL103"], 3: ["GL1"], 5: ["GL2"], 7: ["GL3"], 99: ["GL4"]}
    )
    assert [(e.line, e.column, e.content) for e in edits] == [(1, 6, "  # noqa: GL201"), (2, 21, ", GL103")]
    assert refused == [3, 5]  # inside the string; continued by a backslash (7: a bare noqa has it)


def test_a_noqa_naming_gl003_keeps_an_unused_suppression_and_is_itself_judged():
    base = CONSTANT.format(noqa="").replace("nn.init.zeros_(self.a.weight)", "nn.init.xavier_uniform_(self.a.weight)")
    kept = base.replace("xavier_uniform_(self.a.weight)", "xavier_uniform_(self.a.weight)  # noqa: GL201, GL003")
    assert analyse_source(kept, "m.py") == []
    lonely = base.replace("xavier_uniform_(self.a.weight)", "xavier_uniform_(self.a.weight)  # noqa: GL003")
    (d,) = analyse_source(lonely, "m.py")
    assert d.code == "GL003" and "GL003 hides no finding" in d.message
