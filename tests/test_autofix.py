"""Autofix (gradlint.fixes): libcst fixers, the fix loop, diffs and atomic writes."""

import ast
import os
import stat
from dataclasses import replace

import libcst
from conftest import format_diagnostics
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradlint import apply, fixes
from gradlint.apply import fix_bytes, fix_paths, fix_source
from gradlint.cst import CstSource
from gradlint.diagnostics import Diagnostic, Edit, Fix
from gradlint.engine import analyse_source
from gradlint.fixes import apply_edits, attach_edits, lint_with_edits, text_edits, unified_diff
from gradlint.settings import Settings
from gradlint.text import write_atomic

FIXES = Settings(fixes=True)


def codes(text):
    return [d.code for d in analyse_source(text, "f.py")]


def fixed(text, unsafe=True):
    outcome = fix_source(text, "f.py", unsafe=unsafe)
    assert outcome.converged
    ast.parse(outcome.source)
    return outcome


def only(text, code):
    found = [d for d in lint_with_edits(text, "f.py", FIXES) if d.code == code]
    assert len(found) == 1, format_diagnostics(found)
    return found[0]


def _loop(imports, clip_line="", backward="loss.backward()", step="opt.step()", indent="        "):
    body = f"{indent}opt.zero_grad()\n{indent}loss = model(x)[0].sum()\n{indent}{backward}\n"
    body += f"{indent}{clip_line}\n" if clip_line else ""
    body += f"{indent}{step}\n"
    return (
        f"{imports}\n\n"
        "def fit(data):\n"
        "    model = nn.LSTM(4, 4)\n"
        "    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n" + body
    )


# ---------------------------------------------------------------- GL401: insert clipping
def test_clip_inserted_between_backward_and_step_then_clean():
    src = _loop("import torch\nimport torch.nn as nn")
    out = fixed(src)
    lines = out.source.splitlines()
    i = lines.index("        loss.backward()")
    assert lines[i + 1] == "        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)"
    assert lines[i + 2] == "        opt.step()"
    assert out.source.count("import torch\n") == 1  # nothing imported twice
    assert "GL401" not in codes(out.source) and "GL402" not in codes(out.source)
    assert [d.code for d in out.fixed] == ["GL401"]


def test_torch_alias_is_respected():
    src = _loop("import torch as T\nfrom torch import nn").replace("torch.optim", "T.optim")
    out = fixed(src)
    assert "        T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n" in out.source
    assert "import torch\n" not in out.source
    assert "GL401" not in codes(out.source)


def test_imported_clip_function_is_used_by_its_name():
    src = _loop("import torch\nimport torch.nn as nn\nfrom torch.nn.utils import clip_grad_norm_ as clip")
    out = fixed(src)
    assert "        clip(model.parameters(), max_norm=1.0)\n" in out.source
    assert "GL401" not in codes(out.source)


def test_import_added_when_torch_is_not_bound():
    src = (
        '"""Training script."""\n'
        "from __future__ import annotations\n"
        "from torch.nn import LSTM\n"
        "from torch.optim import Adam\n\n\n"
        "def fit(data):\n"
        "    model = LSTM(4, 4)\n"
        "    opt = Adam(model.parameters())\n"
        "    for x in data:\n"
        "        model(x)[0].sum().backward()\n"
        "        opt.step()\n"
    )
    out = fixed(src)
    head = out.source.splitlines()[:5]
    assert head == [
        '"""Training script."""',
        "from __future__ import annotations",
        "from torch.nn import LSTM",
        "from torch.optim import Adam",
        "import torch",
    ]
    assert "        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n" in out.source
    assert "GL401" not in codes(out.source)


def test_two_loops_one_import():
    loop = (
        "def fit{n}(data):\n"
        "    model = LSTM(4, 4)\n"
        "    opt = Adam(model.parameters())\n"
        "    for x in data:\n"
        "        model(x)[0].sum().backward()\n"
        "        opt.step()\n"
    )
    src = "from torch.nn import LSTM\nfrom torch.optim import Adam\n\n" + loop.format(n=1) + "\n" + loop.format(n=2)
    out = fixed(src)
    assert out.source.count("import torch\n") == 1
    assert out.source.count("clip_grad_norm_(model.parameters(), max_norm=1.0)") == 2
    assert "GL401" not in codes(out.source)


def test_comments_and_formatting_kept():
    src = (
        "import torch\n"
        "import torch.nn as nn  # the usual alias\n\n\n"
        "def fit(data):\n"
        "    model = nn.GRU(4, 4)\n"
        "    opt = torch.optim.SGD(model.parameters(), lr = 0.1)   # odd spacing stays\n"
        "    for x in data:\n"
        "        # forward\n"
        "        loss = model(x)[0].sum( )\n"
        "        loss.backward()  # gradients\n"
        "\n"
        "        # update\n"
        "        opt.step()\n"
        "    return  model\n"
    )
    out = fixed(src)
    expected = src.replace(
        "        loss.backward()  # gradients\n",
        "        loss.backward()  # gradients\n        torch.nn.utils.clip_grad_norm_(model.parameters(),"
        " max_norm=1.0)\n",
    )
    assert out.source == expected


def test_backward_and_step_on_one_line():
    src = _loop("import torch\nimport torch.nn as nn", backward="loss.backward(); opt.step()", step="pass")
    out = fixed(src)
    assert "loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0); opt.step()" in out.source
    assert "GL401" not in codes(out.source)


def test_amp_scaler_unscales_before_clipping():
    src = _loop(
        "import torch\nimport torch.nn as nn",
        backward="scaler.scale(loss).backward()",
        step="scaler.step(opt)",
    ).replace("    for x in data:\n", "    scaler = torch.cuda.amp.GradScaler()\n    for x in data:\n")
    out = fixed(src)
    assert (
        "        scaler.scale(loss).backward()\n"
        "        scaler.unscale_(opt)\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
        "        scaler.step(opt)\n"
    ) in out.source
    assert "GL401" not in codes(out.source)


def test_lbfgs_closure_clips_inside_the_closure():
    src = (
        "import torch\nimport torch.nn as nn\n\n"
        "def fit(data):\n"
        "    model = nn.LSTM(4, 4)\n"
        "    opt = torch.optim.LBFGS(model.parameters())\n"
        "    for x in data:\n"
        "        def closure():\n"
        "            opt.zero_grad()\n"
        "            loss = model(x)[0].sum()\n"
        "            loss.backward()\n"
        "            return loss\n"
        "        opt.step(closure)\n"
    )
    assert "GL401" in codes(src)
    out = fixed(src)
    assert (
        "            loss.backward()\n"
        "            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
        "            return loss\n"
    ) in out.source
    assert "GL401" not in codes(out.source)


def test_no_fix_for_an_unnamed_model_expression():
    src = (
        "import torch\nimport torch.nn as nn\n\n"
        "def fit(data):\n"
        "    opt = torch.optim.Adam(nn.LSTM(4, 4).parameters())\n"
        "    for x in data:\n"
        "        x.sum().backward()\n"
        "        opt.step()\n"
    )
    for d in lint_with_edits(src, "f.py", FIXES):
        assert d.code != "GL401" or d.fix is None


# ---------------------------------------------------------------- GL402: move clipping
def test_clip_after_step_moves_between():
    src = _loop("import torch\nimport torch.nn as nn").replace(
        "        opt.step()\n",
        "        opt.step()\n        # keep gradients bounded\n       "
        " torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n",
    )
    assert "GL402" in codes(src)
    out = fixed(src)
    assert (
        "        loss.backward()\n"
        "        # keep gradients bounded\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "        opt.step()\n"
    ) in out.source
    assert out.source.count("clip_grad_norm_") == 1
    assert not {"GL401", "GL402"} & set(codes(out.source))


def test_clip_before_backward_moves_down():
    src = _loop("import torch\nimport torch.nn as nn").replace(
        "        opt.zero_grad()\n",
        "        opt.zero_grad()\n        torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)\n",
    )
    assert "GL402" in codes(src)
    out = fixed(src)
    assert (
        "        loss.backward()\n        torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)\n       "
        " opt.step()\n" in out.source
    )
    assert not {"GL401", "GL402"} & set(codes(out.source))


def test_amp_unscale_moves_with_its_clipping():
    src = _loop(
        "import torch\nimport torch.nn as nn",
        backward="scaler.scale(loss).backward()",
        step="scaler.step(opt)\n        scaler.unscale_(opt)\n       "
        " torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n        scaler.update()",
    )
    assert "GL402" in codes(src)
    out = fixed(src)
    assert (
        "        scaler.scale(loss).backward()\n"
        "        scaler.unscale_(opt)\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
        "        scaler.step(opt)\n"
        "        scaler.update()\n"
    ) in out.source


def test_no_move_for_the_wrong_parameters():
    from gradlint.rule import rule_by_code

    src = rule_by_code("GL402").INVALID[1]
    d = only(src, "GL402")
    assert d.fix is None


# ---------------------------------------------------------------- GL201: constant init
def test_constant_init_keeps_alias_and_comments():
    src = (
        "import torch\n"
        "import torch.nn as tnn\n"
        "from torch.nn import init as I\n\n"
        "class M(tnn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a = tnn.Linear(8, 8)\n"
        "        self.b = tnn.Linear(8, 2)\n"
        "        label = 'é'; I.constant_( self.a.weight , 0.5)  # was constant\n"
        "    def forward(self, x):\n"
        "        return self.b(torch.tanh(self.a(x)))\n"
    )
    out = fixed(src)
    assert "        label = 'é'; I.xavier_uniform_( self.a.weight)  # was constant\n" in out.source
    assert "GL201" not in codes(out.source)


def test_constant_init_bare_name_imports_the_initializer():
    src = (
        "import torch.nn as nn\n"
        "from torch.nn.init import zeros_ as z\n\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n"
        "        self.b = nn.Linear(8, 2)\n"
        "        z(self.a.weight)\n"
        "    def forward(self, x):\n"
        "        return self.b(self.a(x).relu())\n"
    )
    out = fixed(src)
    assert '        nn.init.kaiming_normal_(self.a.weight, nonlinearity="relu")\n' in out.source
    assert "GL201" not in codes(out.source)


def test_constant_init_over_all_parameters_has_no_fix():
    from gradlint.rule import rule_by_code

    d = only(rule_by_code("GL201").INVALID[2], "GL201")
    assert d.fix is None


# ---------------------------------------------------------------- safety, encodings
def test_unsafe_fixes_need_unsafe():
    src = _loop("import torch\nimport torch.nn as nn")
    out = fix_source(src, "f.py", unsafe=False)
    assert out.source == src and not out.fixed
    assert [d.code for d in out.remaining if d.fix] == ["GL401"]


def test_safe_fix_applies_without_unsafe():
    src = "import torch\nx = torch.zeros(3)  # noqa: GL201\n"
    assert "GL003" in codes(src)
    out = fix_source(src, "f.py", unsafe=False)
    assert out.source == "import torch\nx = torch.zeros(3)\n"


def test_crlf_stays_crlf():
    src = _loop("import torch\nimport torch.nn as nn").replace("\n", "\r\n")
    out = fixed(src)
    assert out.changed
    assert out.source.count("\r\n") == out.source.count("\n")
    assert (
        "loss.backward()\r\n        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\r\n" in out.source
    )


def test_crlf_file_without_torch_import_gets_a_crlf_import():
    src = (
        "from torch.nn import LSTM\r\nfrom torch.optim import Adam\r\n\r\n"
        "def fit(data):\r\n    model = LSTM(4, 4)\r\n    opt = Adam(model.parameters())\r\n"
        "    for x in data:\r\n        model(x)[0].sum().backward()\r\n        opt.step()\r\n"
    )
    out = fixed(src)
    assert "import torch\r\n" in out.source
    assert out.source.count("\r\n") == out.source.count("\n")


def test_bom_and_cookie_kept_in_bytes():
    src = _loop("# -*- coding: latin-1 -*-\nimport torch\nimport torch.nn as nn  # caf\xe9")
    data = b"\xef\xbb\xbf" + _loop("import torch\nimport torch.nn as nn  # caf\xe9").encode("utf-8")
    out = fix_bytes(data, "f.py", unsafe=True)
    assert out.data.startswith(b"\xef\xbb\xbf") and b"caf\xc3\xa9" in out.data
    assert b"clip_grad_norm_" in out.data
    latin = src.encode("latin-1")
    out = fix_bytes(latin, "f.py", unsafe=True)
    assert b"caf\xe9" in out.data and b"clip_grad_norm_" in out.data
    assert fix_bytes(b"import torch\n\xff\xfe", "f.py").data == b"import torch\n\xff\xfe"


def test_form_feed_does_not_shift_lines():
    src = _loop("import torch\n\x0c\nimport torch.nn as nn")
    out = fixed(src)
    assert (
        "loss.backward()\n        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n        opt.step()"
        in out.source
    )


# ---------------------------------------------------------------- attach_edits robustness
def _gl401(src):
    return only(src, "GL401")


def test_attach_edits_survives_a_failing_fixer(monkeypatch):
    from gradlint.rules.unclipped_recurrent_training import UnclippedRecurrentTraining

    src = _loop("import torch\nimport torch.nn as nn")
    declared = [d for d in analyse_source(src, "f.py") if d.fix]
    assert declared

    def broken(self, source, diagnostic):
        raise RuntimeError("fixer bug")

    monkeypatch.setattr(UnclippedRecurrentTraining, "fix", broken)
    fixes._fixer.cache_clear()
    try:
        out = attach_edits(src, "f.py", declared)
    finally:
        monkeypatch.undo()
        fixes._fixer.cache_clear()
    assert [d.fix for d in out] == [None] * len(declared)


def test_attach_edits_on_odd_input():
    d = Diagnostic(
        "f.py",
        3,
        1,
        3,
        5,
        "GL401",
        "unclipped-recurrent-training",
        "warning",
        "m",
        fix=Fix("t", "unsafe", data=(("backward", (99, 1, 99, 4)), ("step", (1, 1, 1, 2)), ("model", "m"))),
    )
    garbage = replace(d, fix=Fix("t", "unsafe", data=(("nonsense", 1),)))
    unknown = replace(d, code="GL999", fix=Fix("t", "safe", data=(("x", 1),)))
    with_edits = replace(d, fix=Fix("t", "safe", (Edit(1, 1, 1, 1, "# "),)))
    for text in ["import torch\n", "", "def (:\n", "x = 1\0\n", "\ufeffimport torch\n", "import torch\r\n" * 3]:
        out = attach_edits(text, "f.py", [d, garbage, unknown, with_edits])
        assert [x.fix for x in out[:3]] == [None, None, None]
        assert out[3] is with_edits


def test_attach_edits_keeps_unfixable_diagnostics_unchanged():
    d = Diagnostic("f.py", 1, 1, 1, 2, "GL101", "n", "warning", "m")
    assert attach_edits("import torch\n", "f.py", [d]) == [d]


# ---------------------------------------------------------------- text edits and diffs
def test_text_edits_are_minimal():
    old = "a = nn.init.constant_(w, 0)\nb = 2\n"
    new = 'a = nn.init.kaiming_normal_(w, nonlinearity="relu")\nb = 2\n'
    (edit,) = text_edits(old, new)
    assert (edit.line, edit.end_line) == (1, 1) and edit.column > 1
    assert apply_edits(old, [edit]) == new


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(["a", "b", "é", " ", "\n", "\r\n", "\r", "\x0c", "x = 1\n"]), max_size=25),
    st.lists(st.sampled_from(["a", "b", "é", " ", "\n", "\r\n", "\r", "\x0c", "x = 1\n"]), max_size=25),
)
def test_text_edits_round_trip(a, b):
    old, new = "".join(a), "".join(b)
    assert apply_edits(old, text_edits(old, new)) == new


def test_unified_diff():
    assert unified_diff("m.py", "a\n", "a\n") == ""
    diff = unified_diff("m.py", "a\nb\n", "a\nc\n")
    assert diff.startswith("--- m.py\n+++ m.py\n@@")
    assert "-b\n+c\n" in diff
    diff = unified_diff("m.py", "a", "b")
    assert "\\ No newline at end of file" in diff


# ---------------------------------------------------------------- writing
def test_write_atomic_writes_and_keeps_mode(tmp_path):
    target = tmp_path / "m.py"
    target.write_bytes(b"old\r\n")
    os.chmod(target, 0o640)
    assert write_atomic(str(target), b"new\r\n", b"old\r\n")
    assert target.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]  # no temporary left


def test_write_atomic_refuses_a_file_changed_on_disk(tmp_path):
    target = tmp_path / "m.py"
    target.write_bytes(b"edited meanwhile\n")
    assert not write_atomic(str(target), b"new\n", b"old\n")
    assert target.read_bytes() == b"edited meanwhile\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


def test_write_atomic_follows_symlinks(tmp_path):
    real = tmp_path / "real.py"
    real.write_bytes(b"old\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    assert write_atomic(str(link), b"new\n", b"old\n")
    assert link.is_symlink() and real.read_bytes() == b"new\n"


def test_fix_paths_diff_only_then_write_then_nothing_left(tmp_path):
    target = tmp_path / "train.py"
    src = _loop("import torch\nimport torch.nn as nn")
    target.write_text(src)
    preview = fix_paths([str(target)], Settings(), unsafe=True, write=False)
    assert preview.count and target.read_text() == src
    assert "+        torch.nn.utils.clip_grad_norm_" in preview.diff
    done = fix_paths([str(target)], Settings(), unsafe=True)
    assert done.count == preview.count and "clip_grad_norm_" in target.read_text()
    again = fix_paths([str(target)], Settings(), unsafe=True)
    assert again.count == 0 and again.diff == ""


def test_fix_paths_does_not_overwrite_a_concurrent_edit(tmp_path, monkeypatch):
    target = tmp_path / "train.py"
    src = _loop("import torch\nimport torch.nn as nn")
    target.write_text(src)
    real_fix_bytes = apply.fix_bytes

    def edit_meanwhile(*args, **kwargs):
        outcome = real_fix_bytes(*args, **kwargs)
        target.write_text(src + "# edited in the editor\n")
        return outcome

    monkeypatch.setattr(apply, "fix_bytes", edit_meanwhile)
    out = fix_paths([str(target)], Settings(), unsafe=True)
    assert out.count == 0 and any("changed on disk" in n for n in out.notes)
    assert target.read_text().endswith("# edited in the editor\n")


def test_a_file_that_cannot_be_decoded_is_left_with_a_note(tmp_path):
    target = tmp_path / "train.py"
    target.write_bytes(b"# coding: no-such-codec\n" + _loop("import torch\nimport torch.nn as nn").encode())
    before = target.read_bytes()
    out = fix_paths([str(target)], Settings(), unsafe=True)
    assert out.count == 0 and target.read_bytes() == before


# ---------------------------------------------------------------- convergence, generated loops
_IMPORTS = st.sampled_from(
    [
        "import torch\nimport torch.nn as nn",
        "import torch as T\nimport torch.nn as nn",
        "import torch.nn as nn\nfrom torch.nn.utils import clip_grad_norm_",
        "from torch import nn, optim",
    ]
)
_SPACING = st.sampled_from(["", "\n", "        # step\n"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_IMPORTS, _SPACING, st.sampled_from(["none", "after", "before"]), st.booleans())
def test_generated_loops_converge_clean(imports, spacing, clip, crlf):
    optim = (
        "optim"
        if "optim" in imports and "import torch\n" not in imports and "as T" not in imports
        else ("T.optim" if "as T" in imports else "torch.optim")
    )
    lines = [
        imports,
        "",
        "",
        "def fit(data):",
        "    model = nn.LSTM(4, 4)",
        f"    opt = {optim}.Adam(model.parameters())",
        "    for x in data:",
        "        opt.zero_grad()",
        "        loss = model(x)[0].sum()",
        "        loss.backward()",
    ]
    step = ["        opt.step()"]
    clip_line = "        nn.utils.clip_grad_norm_(model.parameters(), 1.0)"
    if clip == "after":
        step.append(clip_line)
    elif clip == "before":
        lines.insert(8, clip_line)
    src = "\n".join(lines) + "\n" + spacing + "\n".join(step) + "\n"
    if crlf:
        src = src.replace("\n", "\r\n")
    out = fixed(src)
    libcst.parse_module(out.source)
    assert not {"GL401", "GL402"} & set(codes(out.source)), out.source
    if crlf:
        assert out.source.count("\r\n") == out.source.count("\n")
    assert out.source.count("clip_grad_norm_(model.parameters()") == 1


def test_constant_init_multiline_call_keeps_its_layout():
    src = (
        "import torch.nn as nn\n\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a = nn.Linear(8, 8)\n"
        "        self.b = nn.Linear(8, 2)\n"
        "        nn.init.constant_(\n"
        "            self.a.weight,\n"
        "            0.5,\n"
        "        )\n"
        "    def forward(self, x):\n"
        "        return self.b(self.a(x).relu())\n"
    )
    out = fixed(src)
    assert (
        '        nn.init.kaiming_normal_(\n            self.a.weight, nonlinearity="relu",\n        )\n' in out.source
    )


def test_accelerate_clips_through_the_accelerator():
    src = (
        "import torch\nimport torch.nn as nn\nfrom accelerate import Accelerator\n\n"
        "def fit(data):\n"
        "    accelerator = Accelerator()\n"
        "    model = nn.LSTM(4, 4)\n"
        "    opt = torch.optim.Adam(model.parameters())\n"
        "    model, opt = accelerator.prepare(model, opt)\n"
        "    for x in data:\n"
        "        accelerator.backward(model(x)[0].sum())\n"
        "        opt.step()\n"
    )
    out = fixed(src)
    assert "        accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)\n        opt.step()\n" in out.source
    assert "GL401" not in codes(out.source)


def test_cst_source_inserts_on_a_one_line_suite_and_spells_names():
    src = (
        "import torch as T\nfrom torch import nn\ndef f(loss, c):\n"
        "    import torch.nn.utils as U\n    if c: loss.backward()\n"
    )
    source = CstSource(src)
    call = source.node_at((5, 11, 5, 26), (libcst.Call,))
    assert source.code(call) == "loss.backward()"
    assert source.spell("torch.nn.utils.clip_grad_norm_", call) == ("U.clip_grad_norm_", None)
    assert source.spell("torch.nn.utils.clip_grad_norm_", call, prefer=("torch",)) == (
        "T.nn.utils.clip_grad_norm_",
        None,
    )
    assert source.spell("torch.nn.init.zeros_", call) == ("nn.init.zeros_", None)
    assert source.spell("numpy.zeros", call) == ("numpy.zeros", ("numpy", None))
    table = source.insert_after(call, [source.statement("clip()\n")])
    assert source.rewrite(table).code.endswith("    if c: loss.backward(); clip()\n")
    # a function's own import is not visible outside it
    outer = CstSource(src + "x = 1\n")
    x = outer.node_at((6, 1, 6, 6))
    assert outer.spell("torch.nn.utils.clip_grad_norm_", x)[0] == "nn.utils.clip_grad_norm_"
