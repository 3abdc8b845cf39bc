"""Suppression comments: the three forms, their scopes, and GL003 for those that hide nothing."""

import pytest

from gradlint.engine import analyse_source
from gradlint.fixes import apply_edits
from gradlint.settings import Settings

STACK = (
    "import torch\nimport torch.nn as nn\n\n"
    "class Net(nn.Module):{cls}\n"
    "    def __init__(self):{init}\n"
    "        super().__init__()\n"
    "        self.net = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(8, 8), nn.Sigmoid())]){line}\n"
    "\n    def forward(self, x):\n        return self.net(x)\n"
)


def codes(src, **settings):
    return [d.code for d in analyse_source(src, "m.py", Settings(**settings))]


def src(cls="", init="", line="", head=""):
    return head + STACK.format(cls=cls, init=init, line=line)


def test_the_unsuppressed_stack_is_reported():
    assert codes(src()) == ["GL101"]


@pytest.mark.parametrize(
    "comment",
    [
        "  # noqa",
        "  # noqa: GL101",
        "  # NOQA:GL201, GL101",
        "  # noqa: GL201 GL101",
        "  # noqa:GL101",
        "  # gradlint: ignore",
        "  # gradlint: ignore[GL101]",
        "  # gradlint: ignore[saturating-activation-stack]",
        "  # gradlint: ignore[GL201, GL101]",
        "  # type: ignore  # noqa: GL101",
    ],
)
def test_line_forms_hide_the_finding(comment):
    found = codes(src(line=comment))
    assert "GL101" not in found
    # a list that also names GL201 hides GL101 and is told that GL201 hides nothing
    assert found == (["GL003"] if "GL201" in comment else [])


@pytest.mark.parametrize("where", ["cls", "init"])
def test_ignore_on_the_class_or_def_line_covers_its_body(where):
    assert codes(src(**{where: "  # gradlint: ignore[GL101]"})) == []


def test_noqa_on_the_class_line_does_not_cover_the_body():
    # flake8's meaning: # noqa speaks for its own line only; it hid nothing, so GL003 says so
    assert codes(src(cls="  # noqa: GL101")) == ["GL003", "GL101"]


@pytest.mark.parametrize(
    "head",
    [
        "# gradlint: file-ignore[GL101]\n",
        "# gradlint: file-ignore\n",
        "# gradlint: file-ignore[saturating-activation-stack]\n",
    ],
)
def test_file_ignore(head):
    assert codes(src(head=head)) == []


def test_a_directive_inside_a_string_is_not_a_directive():
    s = src() + 'DOC = "# gradlint: file-ignore[GL101]"\n'
    assert codes(s) == ["GL101"]


def test_a_suppression_for_another_code_does_not_hide_it():
    assert sorted(codes(src(line="  # noqa: GL201"))) == ["GL003", "GL101"]


@pytest.mark.parametrize(
    "comment, message",
    [
        ("  # noqa: GL201", "`# noqa: GL201`: GL201 hides no finding on this line"),
        ("  # gradlint: ignore[GL999]", "GL999 names no rule"),
        ("  # gradlint: ignore", "hides no finding here"),
    ],
)
def test_unused_suppressions_are_reported(comment, message):
    healthy = "import torch\nimport torch.nn as nn\nfc = nn.Linear(8, 8)" + comment + "\n"
    diags = analyse_source(healthy, "m.py")
    assert [d.code for d in diags] == ["GL003"]
    assert message in diags[0].message
    assert diags[0].line == 3 and diags[0].column == len("fc = nn.Linear(8, 8)  ") + 1


def test_noqa_for_other_tools_and_bare_noqa_are_left_alone():
    healthy = "import torch\nx = torch.zeros(3)  # noqa: E501\ny = torch.zeros(3)  # noqa\n"
    assert codes(healthy) == []


def test_a_code_whose_rule_is_not_enabled_is_not_judged():
    healthy = "import torch\nimport torch.nn as nn\nfc = nn.Linear(8, 8)  # noqa: GL201\n"
    assert codes(healthy, ignore=("GL201",)) == []
    assert codes(healthy, ignore=("GL003",)) == []


def test_partly_used_directive_reports_the_dead_code_only():
    diags = analyse_source(src(line="  # noqa: GL101, GL201"), "m.py")
    assert [d.code for d in diags] == ["GL003"]
    assert "GL201 hides no finding" in diags[0].message and "GL101" not in diags[0].message.split(":")[-1]


@pytest.mark.parametrize(
    "before, after",
    [
        ("x = torch.zeros(3)  # noqa: GL201\n", "x = torch.zeros(3)\n"),
        ("x = torch.zeros(3)  # gradlint: ignore[GL201]  # keep me\n", "x = torch.zeros(3)  # keep me\n"),
        ("x = torch.zeros(3)  # keep me  # gradlint: ignore[GL201]\n", "x = torch.zeros(3)  # keep me\n"),
        ("x = torch.zeros(3)  # noqa: GL201  # type: ignore\n", "x = torch.zeros(3)  # type: ignore\n"),
        ("x = torch.zeros(3)  # noqa: E501, GL201\n", "x = torch.zeros(3)  # noqa: E501\n"),
    ],
)
def test_the_fix_removes_only_what_is_unused(before, after):
    text = "import torch\n" + before
    diags = [d for d in analyse_source(text, "m.py") if d.code == "GL003"]
    assert len(diags) == 1 and diags[0].fix.applicability == "safe"
    fixed = apply_edits(text, diags[0].fix.edits)
    assert fixed == "import torch\n" + after
    assert codes(fixed) == []


def test_the_fix_keeps_the_used_code():
    text = src(line="  # noqa: GL101, GL201")
    d = next(d for d in analyse_source(text, "m.py") if d.code == "GL003")
    fixed = apply_edits(text, d.fix.edits)
    assert "nn.Sigmoid())])  # noqa: GL101\n" in fixed
    assert codes(fixed) == []


def test_deferred_cross_file_findings_count_as_used(tmp_path):
    from gradlint.run import lint_paths

    (tmp_path / "seqmod.py").write_text(
        "import torch.nn as nn\nclass Seq(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.rnn = nn.LSTM(4, 4)\n    def forward(self, x):\n        return self.rnn(x)[0]\n"
    )
    (tmp_path / "train.py").write_text(
        "import torch\nfrom seqmod import Seq\nmodel = Seq()\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x, y in []:\n    opt.zero_grad()\n    loss = model(x).sum()\n    loss.backward()\n    opt.step()\n"
    )
    found = [d.code for d in lint_paths([str(tmp_path)], Settings(jobs=1)).diagnostics]
    assert found == ["GL401"]


def test_a_prefix_suppresses_and_is_judged_like_a_code():
    assert codes(src(head="# gradlint: file-ignore[GL1]\n")) == []
    healthy = "import torch\nimport torch.nn as nn\nfc = nn.Linear(8, 8)  # gradlint: ignore[GL2]\n"
    (d,) = analyse_source(healthy, "m.py")
    assert d.code == "GL003" and "GL2 hides no finding" in d.message


def test_removing_a_code_keeps_the_rest_of_the_comment_a_comment():
    text = "import torch\nx = torch.zeros(3)  # noqa: GL201 (intentional)\n"
    (d,) = analyse_source(text, "m.py")
    fixed = apply_edits(text, d.fix.edits)
    assert fixed == "import torch\nx = torch.zeros(3)  # (intentional)\n"


def test_a_bare_ignore_is_not_judged_when_rules_are_turned_off():
    healthy = "import torch\nimport torch.nn as nn\nfc = nn.Linear(8, 8)  # gradlint: ignore\n"
    assert codes(healthy, ignore=("GL201",)) == []
    assert codes(healthy) == ["GL003"]


def test_a_form_feed_line_does_not_shift_suppressions():
    text = src(line="  # noqa: GL101").replace("class Net", "\x0c\nclass Net")
    assert codes(text) == []


def test_a_space_before_the_bracket_still_names_the_codes():
    # read as ignore[GL201] (which hides nothing here), not as a bare ignore hiding GL101
    assert sorted(codes(src(line="  # gradlint: ignore [GL201]"))) == ["GL003", "GL101"]


@pytest.mark.parametrize(
    "src, expected",
    [
        # a "# noqa" inside a string of several lines is not a comment
        ('x = 1\ns = """\nnot a comment  # noqa: GL101\n"""\ny = 2  # noqa: GL102\n', [(5, ("GL102",))]),
        # a directive right after such a string ends, on its last line
        ('s = """doc\nmore"""  # noqa: GL103\n', [(2, ("GL103",))]),
        # inside a one-line string on a line of its own: still not a comment
        ('t = "# noqa: GL104"\nu = 3  # noqa\n', [(2, ())]),
        # a bracket continued over lines
        ("z = f(1,\n      2)  # noqa: GL105\n", [(2, ("GL105",))]),
    ],
)
def test_directives_are_real_comments_only(src, expected):
    import ast as _ast

    from gradlint.suppressions import parse_directives
    from gradlint.text import split_lines

    got = [(d.line, d.codes) for d in parse_directives(src, split_lines(src), _ast.parse(src))]
    assert got == expected


def test_noqa_text_inside_a_multiline_string_is_not_a_directive_wherever_the_string_is():
    """Only the statements around the candidate lines are searched for strings of several
    lines: one in a decorator sits above its ``def``/``class`` line and must still be found."""
    import ast as _ast

    from gradlint.suppressions import parse_directives
    from gradlint.text import split_lines

    for src in (
        '@register("""\nx  # noqa: GL101\n""")\nclass M:\n    pass\n',
        'class M:\n    @staticmethod\n    @doc("""\n    # noqa: GL101\n    """)\n    def f():\n        pass\n',
        'X = 1\nDOC = f"""\n{X}  # noqa: GL101\n"""\n',
    ):
        assert parse_directives(src, split_lines(src), _ast.parse(src)) == [], src
    real = 'x = 1  # noqa: GL101\nDOC = """\ntext\n"""\n'
    assert [d.codes for d in parse_directives(real, split_lines(real), _ast.parse(real))] == [("GL101",)]
