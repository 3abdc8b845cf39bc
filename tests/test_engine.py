"""The engine's own guarantees: a crashing rule is contained, suppression, dedupe, order."""

from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.engine import analyse_source
from gradlint.rule import rule_by_code

SOURCE = """import torch
import torch.nn as nn

class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(8, 8) for _ in range(10)])
        self.out = nn.Linear(8, 1)
        nn.init.zeros_(self.fc[0].weight)

    def forward(self, x):
        for fc in self.fc:
            x = torch.sigmoid(fc(x))
        return self.out(x)
"""


def test_a_crashing_rule_becomes_one_internal_error_and_the_others_still_run(monkeypatch, tmp_path):
    def boom(self, graph, ctx):
        raise RuntimeError("rule bug")

    monkeypatch.setattr(rule_by_code("GL201"), "check", boom)
    diags = analyse_source(SOURCE, "m.py")
    codes = [d.code for d in diags]
    assert codes.count("GL002") == 1
    internal = next(d for d in diags if d.code == "GL002")
    assert "GL201" in internal.message and "rule bug" in internal.message and internal.line == 4
    assert "GL101" in codes  # the other rule still ran

    (tmp_path / "m.py").write_text(SOURCE)
    result = CliRunner().invoke(cli, ["check", "--output-format", "concise", "-j", "1", str(tmp_path / "m.py")])
    assert result.exit_code == 2
    assert "GL002" in result.output and "GL101" in result.output


def test_both_rules_report_on_one_model():
    codes = sorted(d.code for d in analyse_source(SOURCE, "m.py"))
    assert codes == ["GL101", "GL201"]


def test_findings_are_sorted_and_unique():
    diags = analyse_source(SOURCE + "\n" + SOURCE.split("\n", 2)[2].replace("class M", "class N"), "m.py")
    keys = [(d.line, d.column, d.code) for d in diags]
    assert keys == sorted(keys) and len(keys) == len(set(keys))


def test_a_model_imported_from_another_file_of_the_run(tmp_path):
    import os

    from gradlint.run import lint_paths
    from gradlint.settings import Settings

    pkg = tmp_path / "proj"
    (pkg / "nets").mkdir(parents=True)
    (pkg / "nets" / "__init__.py").write_text("")
    (pkg / "nets" / "seq.py").write_text(
        "import torch.nn as nn\n"
        "class Seq(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.rnn = nn.LSTM(4, 4)\n"
        "    def forward(self, x):\n        return self.rnn(x)[0]\n"
        "class Flat(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4,"
        " 4)\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    loop = (
        "import torch\nfrom nets.seq import {cls}\n"
        "def run(data):\n    model = {cls}()\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        model(x).sum().backward()\n        opt.step()\n"
    )
    (pkg / "train_seq.py").write_text(loop.format(cls="Seq"))
    (pkg / "train_flat.py").write_text(loop.format(cls="Flat"))
    cwd = os.getcwd()
    os.chdir(pkg)
    try:
        result = lint_paths(["."], Settings(jobs=1))
        alone = lint_paths(["train_seq.py"], Settings(jobs=1))
    finally:
        os.chdir(cwd)
    gl401 = [d for d in result.diagnostics if d.code == "GL401"]
    assert [(d.path, d.line) for d in gl401] == [("train_seq.py", 8)]
    assert "Seq, imported from nets.seq" in gl401[0].message
    # linted alone, the imported model cannot be resolved: no finding rather than a guess
    assert not [d for d in alone.diagnostics if d.code == "GL401"]


def test_checking_a_file_leaves_none_of_its_structures_in_cyclic_garbage():
    """Workers lint with the cyclic collector off (engine._lint_chunk): that is only sound while
    the trees, graphs, profiles and judges of a file are freed by reference counting. A
    reference cycle through them (a recursive closure over the index, a cache that points back
    at its owner) keeps every structure of the file alive until a collection; here it would be
    found. (The standard library's own small closures, ``ast.dump``'s, hold none of them.)"""
    import ast
    import gc
    from pathlib import Path

    paths = sorted(Path(__file__).parent.parent.joinpath("fixtures").rglob("*.py"))[:40]
    sources = [(p.read_text(encoding="utf-8"), str(p)) for p in paths]
    analyse_source(SOURCE, "warm.py")  # first-use caches of the libraries (networkx, inspect)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for text, path in sources:
            analyse_source(text, path)
        gc.collect()
        ours = [
            o
            for o in gc.garbage
            if isinstance(o, ast.AST) or type(o).__module__.startswith(("gradlint", "rules", "networkx.classes"))
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was:
            gc.enable()
    assert len(sources) == 40
    assert [type(o).__name__ for o in ours[:10]] == []


def test_the_users_code_compiles_without_gradlint_printing_its_warnings():
    """An invalid escape sequence is a SyntaxWarning (3.12) or DeprecationWarning (3.11) when
    the file is compiled: Python tells the user when they run it; `gradlint check` stays quiet."""
    import warnings

    source = 'import torch\npattern = "\\d+"\n'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile(source, "probe.py", "exec")  # the warning Python itself gives
        assert caught, "this Python no longer warns of invalid escapes: the test needs another trigger"
        caught.clear()
        analyse_source(source, "user.py")
    assert caught == []
