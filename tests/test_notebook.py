"""Jupyter notebooks: linted cell by cell, findings at (cell, line), fixes keep outputs."""

import json
import os
import re
import shutil

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from gradlint.cli import cli
from gradlint.notebook import load, write_back
from gradlint.run import lint_file
from gradlint.settings import Settings

NOTEBOOK = FIXTURES / "notebooks" / "sequence_model.ipynb"
MARKER = re.compile(r"#\s*(error|warning|info):\s*(GL\d{3})")


def notebook(*cells, language="python"):
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": kind,
                    "metadata": {},
                    "source": src,
                    **({"outputs": [], "execution_count": None} if kind == "code" else {}),
                }
                for kind, src in cells
            ],
            "metadata": {"kernelspec": {"language": language, "name": language}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    ).encode()


def test_findings_point_at_the_cell_and_line_marked():
    nb = json.loads(NOTEBOOK.read_text())
    expected = set()
    for number, cell in enumerate(nb["cells"], start=1):
        for line, text in enumerate("".join(cell["source"]).splitlines(), start=1):
            for _, code in MARKER.findall(text):
                expected.add((number, line, code))
    found = {(d.cell, d.line, d.code) for d in lint_file(str(NOTEBOOK), Settings()).diagnostics}
    assert expected and found == expected


def test_magics_shell_escapes_and_help_do_not_break_parsing(tmp_path):
    path = tmp_path / "m.ipynb"
    path.write_bytes(
        notebook(
            ("markdown", "# notes with `torch`"),
            (
                "code",
                [
                    "%load_ext autoreload\n",
                    "import torch\n",
                    "import torch.nn as nn\n",
                    "files = !ls\n",
                    "torch.zeros?",
                ],
            ),
            ("code", ["%%time\n", "for i in range(3):\n", "    print(i)"]),
            (
                "code",
                [
                    "class Net(nn.Module):\n",
                    "    def __init__(self):\n",
                    "        super().__init__()\n",
                    "        self.net = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(8, 8),"
                    " nn.Sigmoid())])\n",
                    "        !echo inside a block\n",
                    "    def forward(self, x):\n",
                    "        return self.net(x)\n",
                ],
            ),
        )
    )
    diags = lint_file(str(path), Settings()).diagnostics
    assert [(d.code, d.cell, d.line) for d in diags] == [("GL101", 4, 4)]


def test_a_syntax_error_is_reported_in_its_cell(tmp_path):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(notebook(("code", "import torch\n"), ("code", "x = torch.zeros(3\ny = 1\n")))
    diags = lint_file(str(path), Settings()).diagnostics
    assert [(d.code, d.cell) for d in diags] == [("GL001", 2)] and "cannot parse" in diags[0].message


@pytest.mark.parametrize("data", [b"{not json", b'{"cells": 3}', b"\xff\xfe torch"])
def test_a_file_that_is_not_a_notebook_is_a_gl001_finding(tmp_path, data):
    path = tmp_path / "x.ipynb"
    path.write_bytes(data + b" torch")
    diags = lint_file(str(path), Settings()).diagnostics
    assert [d.code for d in diags] == ["GL001"] and "not a notebook" in diags[0].message


def test_other_kernels_are_skipped(tmp_path):
    path = tmp_path / "r.ipynb"
    path.write_bytes(notebook(("code", "library(torch)\nx <- torch_randn(3)\n"), language="R"))
    assert lint_file(str(path), Settings()).diagnostics == []


def test_unchanged_code_writes_back_byte_identical():
    data = NOTEBOOK.read_bytes()
    nb = load(data)
    assert write_back(nb, nb.virtual) == data


def test_the_cli_reports_cells_in_every_text_format():
    runner = CliRunner()
    full = runner.invoke(cli, ["check", "--no-cache", str(NOTEBOOK)])
    shown = os.path.relpath(NOTEBOOK)  # text formats show it relative to the working directory
    assert f"{shown}:cell 3:8:17: GL101 [error]" in full.stdout
    assert "8 |             x = torch.sigmoid(layer(x))  # error: GL101" in full.stdout  # the cell's excerpt
    concise = runner.invoke(cli, ["check", "--no-cache", "--output-format", "concise", str(NOTEBOOK)])
    assert f"{shown}:cell 5:7:5: GL401 " in concise.stdout
    data = json.loads(runner.invoke(cli, ["check", "--no-cache", "--output-format", "json", str(NOTEBOOK)]).stdout)
    assert {(d["cell"], d["line"], d["code"]) for d in data} == {(3, 8, "GL101"), (5, 7, "GL401")}


def test_directories_include_notebooks_and_skip_checkpoints(tmp_path):
    shutil.copy(NOTEBOOK, tmp_path / "a.ipynb")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    shutil.copy(NOTEBOOK, tmp_path / ".ipynb_checkpoints" / "a-checkpoint.ipynb")
    result = CliRunner().invoke(cli, ["check", "--no-cache", "--output-format", "concise", str(tmp_path)])
    assert "1 file checked" in result.stderr and "checkpoint" not in result.stdout


def test_fix_rewrites_only_the_cell_source(tmp_path):
    pytest.importorskip("libcst")
    path = tmp_path / "seq.ipynb"
    shutil.copy(NOTEBOOK, path)
    before = json.loads(path.read_text())
    result = CliRunner().invoke(cli, ["check", "--no-cache", "--fix", "--unsafe-fixes", "--select", "GL401", str(path)])
    assert result.exit_code == 0, result.output
    after = json.loads(path.read_text())
    assert after["metadata"] == before["metadata"]
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert changed == [4]  # the training cell only
    old, new = before["cells"][4], after["cells"][4]
    assert {k: v for k, v in old.items() if k != "source"} == {k: v for k, v in new.items() if k != "source"}
    src = "".join(new["source"])
    assert "!nvidia-smi" in src  # the shell escape is back as it was
    assert (
        src.index("loss.backward()")
        < src.index("clip_grad_norm_(model.parameters(), max_norm=1.0)")
        < src.index("opt.step()")
    )
    assert [d.code for d in lint_file(str(path), Settings(select=("GL401",))).diagnostics] == []


def test_dynamic_imports_definitions_only():
    from gradlint.notebook import definitions_source

    nb = load(
        notebook(
            ("code", "import torch\nDEPTH = 4\nprint('training...')\nmodel = torch.nn.Linear(2, 2)\n"),
            ("code", "def f():\n    return DEPTH\n"),
        )
    )
    src = definitions_source(nb)
    assert "import torch" in src and "DEPTH = 4" in src and "def f():" in src
    assert "print" not in src and "model =" not in src
    assert src.count("\n") == nb.virtual.count("\n")  # line numbers kept for tracebacks


def test_dynamic_measures_a_notebook_model():
    pytest.importorskip("torch")
    result = CliRunner().invoke(
        cli,
        [
            "check",
            "--no-cache",
            "--dynamic",
            "--device",
            "cpu",
            "--seeds",
            "1",
            "--select",
            "GL101",
            "--output-format",
            "json",
            str(NOTEBOOK),
        ],
    )
    data = json.loads(result.stdout)
    assert [(d["cell"], d["code"], d["confidence"]) for d in data] == [(3, "GL101", "confirmed")]
    assert data[0]["evidence"]["verdict"] == "confirmed"


def test_odd_cells_do_not_crash(tmp_path):
    path = tmp_path / "odd.ipynb"
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {"cell_type": "code", "source": ["import torch\n", 3]},  # a non-string line
                    {"cell_type": "code"},  # no source
                    {"cell_type": "code", "source": None},
                    "not a cell",
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    diags = lint_file(str(path), Settings()).diagnostics
    assert all(d.code in ("GL001",) for d in diags)


def test_plain_python_cells_are_not_mistaken_for_magics(tmp_path):
    path = tmp_path / "q.ipynb"
    path.write_bytes(
        notebook(
            (
                "code",
                [
                    "import torch\n",
                    "def f(a, b):\n",
                    '    """Why does this vanish?\n',
                    '    """\n',
                    "    return (\n",
                    "        a\n",
                    "        != b\n",
                    "    )\n",
                ],
            )
        )
    )
    assert lint_file(str(path), Settings()).diagnostics == []


def _nb_with_a_broken_cell():
    import json as _json

    cells = [
        {
            "cell_type": "code",
            "source": ["import torch\n", "import torch.nn as nn\n"],
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "source": ["def unfinished(:\n", "    pass\n"],
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "source": [
                "class Net(nn.Module):\n",
                "    def __init__(self):\n",
                "        super().__init__()\n",
                "        self.fcs = nn.ModuleList([nn.Linear(32, 32) for _ in range(20)])\n",
                "    def forward(self, x):\n",
                "        for f in self.fcs:\n",
                "            x = torch.sigmoid(f(x))\n",
                "        return x\n",
            ],
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        },
    ]
    return _json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def test_a_cell_that_does_not_parse_is_one_gl001_and_the_others_are_analysed():
    from gradlint.run import lint_notebook
    from gradlint.settings import Settings

    found = lint_notebook(_nb_with_a_broken_cell(), "ex.ipynb", Settings()).diagnostics
    assert [(d.code, d.path.endswith("ex.ipynb")) for d in found if d.code == "GL001"] == [("GL001", True)]
    gl001 = next(d for d in found if d.code == "GL001")
    assert "cell is skipped" in gl001.message and gl001.line == 1
    assert "GL101" in {d.code for d in found}


def test_writing_a_notebook_back_never_touches_a_cell_that_does_not_parse():
    import json as _json

    from gradlint.notebook import load, write_back

    data = _nb_with_a_broken_cell()
    nb = load(data)
    out = _json.loads(write_back(nb, nb.virtual))
    assert out["cells"][1]["source"] == ["def unfinished(:\n", "    pass\n"]
