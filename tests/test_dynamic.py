"""--dynamic: verdicts from real backward passes, isolation of user code, configuration.

CPU only and skipped cleanly where torch is absent. Each group of models shares one child
process (one per file), so the whole module costs a few torch start-ups.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from conftest import SIGMOID_TOWER  # noqa: E402

from gradlint.diagnostics import Diagnostic  # noqa: E402
from gradlint.dynamic import DynamicOptions, confirm  # noqa: E402
from gradlint.run import lint_paths  # noqa: E402
from gradlint.settings import Settings  # noqa: E402

HERE = Path(__file__).parent / "dynamic_models"
DEVICE = os.environ.get("GRADLINT_TEST_DEVICE", "cpu")


def options(**kw) -> DynamicOptions:
    return DynamicOptions(device=DEVICE, seeds=kw.pop("seeds", 2), timeout=kw.pop("timeout", 120), **kw)


def forced(path: Path, code: str, model: str, layers=(), expect="vanishing", clip=None, module=None) -> Diagnostic:
    """A finding the static rules would not give, aimed at a model: the rule "forced on"."""
    target = (("model", model), ("layers", tuple(layers)), ("expect", expect))
    if clip is not None or expect.startswith("recurrent"):
        target += (("clip", clip),)
    if module is not None:  # the model is imported by the finding's file, as GL401 targets say
        target += (("module", module),)
    return Diagnostic(str(path), 1, 1, 1, 2, code, "forced", "warning", "forced for the test", target=target)


def verdict(d) -> str:
    return dict(d.evidence).get("verdict")


@pytest.fixture(scope="module")
def hazards():
    static = lint_paths([str(HERE / "hazards.py")], Settings()).diagnostics
    assert {d.code for d in static} == {"GL101", "GL201", "GL202", "GL401"}
    return {d.code: d for d in confirm(static, options()).diagnostics}


def test_sigmoid_stack_is_confirmed_vanishing(hazards):
    d = hazards["GL101"]
    ev = dict(d.evidence)
    assert verdict(d) == "confirmed" and d.confidence == "confirmed"
    assert ev["first_layer"] == "fcs.0" and ev["last_layer"] == "fcs.19"
    assert ev["ratio"] < 1e-3 and ev["backward_gain"] < 1e-4
    assert ev["device"].startswith(DEVICE) and ev["seeds"] == 2


def test_constant_init_is_confirmed_symmetric(hazards):
    ev = dict(hazards["GL201"].evidence)
    assert ev["verdict"] == "confirmed"
    assert set(ev["symmetric_layers"]) == {"fc1", "fc2"}
    assert all(v <= 1e-6 for v in ev["weight_rows_spread"].values())


def test_normal_init_relu_stack_is_confirmed_exploding(hazards):
    ev = dict(hazards["GL202"].evidence)
    assert ev["verdict"] == "confirmed"
    assert ev["first_grad_norm"] > 1e3 or ev["backward_gain"] > 1e4


def test_unclipped_lstm_loop_is_confirmed_exploding(hazards):
    ev = dict(hazards["GL401"].evidence)
    assert ev["verdict"] == "confirmed", ev
    assert not ev["finite"] or ev["max_grad_norm"] > 1e3
    # the BPTT length is the one the training loop uses (its inputs are 200 steps long)
    assert ev["sequence_length"] == 200 and ev["clip"] is None
    # per-step evidence: the raw norm and the one reaching the update (the same, unclipped)
    steps = ev["per_step"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 1
    assert all(s["raw"] == s["clipped"] for s in steps)
    # the steps are geometric means over the seeds; the verdict takes the largest of any seed
    assert max(s["clipped"] for s in steps) <= ev["max_grad_norm"] * (1 + 1e-9) or not ev["finite"]
    assert ev["decided_by"] in ("max-grad-norm", "overflow")


def test_clipped_training_evidence_has_raw_and_clipped_norms_per_step():
    path = HERE / "healthy.py"
    d = forced(path, "GL401", "LoudLSTM", (), "recurrent-exploding", clip=("norm", 1.0), module="hazards")
    [out] = confirm([d], options(seeds=1)).diagnostics
    ev = dict(out.evidence)
    assert ev["verdict"] == "refuted" and ev["sequence_length"] == 100  # the code does not say: 100
    assert any(s["raw"] > 1.0 for s in ev["per_step"])  # the backward pass gives more ...
    assert all(s["clipped"] <= 1.0 + 1e-6 for s in ev["per_step"])  # ... than the update gets


def test_a_refuted_finding_names_the_class_the_model_measures():
    # a dead-network claim on an exploding net: refuted, and the verdict says what was measured
    d = forced(HERE / "hazards.py", "GL305", "NormalReLU", ("layers.0", "layers.14"), "dead")
    out, measured = confirm([d], options(seeds=1)).diagnostics
    ev = dict(out.evidence)
    # and as no finding predicted it, the exploding gradient is a finding of its own
    assert measured.code == "GL902" and measured.confidence == "measured"
    assert ev["verdict"] == "refuted" and ev["model_hazard"] == "exploding" and ev["decided_by"] == "dead"
    assert "the model measures exploding: ‖∇layers.0‖ = " in ev["summary"]


def test_healthy_versions_are_refuted_when_the_rules_are_forced_on():
    path = HERE / "healthy.py"
    assert lint_paths([str(path)], Settings()).diagnostics == []
    forced_findings = [
        forced(path, "GL101", "ResidualSigmoid20", ("fcs.0", "fcs.19"), "vanishing"),
        forced(path, "GL201", "KaimingMLP", ("fc1", "fc2"), "symmetric"),
        forced(path, "GL202", "KaimingReLU", ("layers.0", "layers.14"), "exploding"),
        # healthy.py's clipped loop trains the LoudLSTM it imports from hazards.py
        forced(path, "GL401", "LoudLSTM", (), "recurrent-exploding", clip=("norm", 1.0), module="hazards"),
    ]
    out = confirm(forced_findings, options()).diagnostics
    for d in out:
        assert verdict(d) == "refuted", (d.code, dict(d.evidence))
        assert d.confidence == "refuted"
    clipped = dict(out[3].evidence)
    assert clipped["max_grad_norm"] <= 1.0 + 1e-6


FAILURES = {
    "raises.py": "raise RuntimeError('no GPU config found')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "loops.py": "while True:\n    pass\n",
    "segfaults.py": "import ctypes\nctypes.string_at(0)\n",
    "eats_memory.py": "hog = bytearray(4 * 1024 ** 3)\n",
}
MODEL = SIGMOID_TOWER


def test_every_failure_of_user_code_is_a_note_within_its_timeout(tmp_path):
    for name, bad in FAILURES.items():
        (tmp_path / name).write_text(MODEL + bad)
    static = lint_paths([str(tmp_path)], Settings()).diagnostics
    assert sorted(Path(d.path).name for d in static) == sorted(FAILURES)
    start = time.perf_counter()
    outcome = confirm(static, options(seeds=1, timeout=20, memory_limit=1.0))
    elapsed = time.perf_counter() - start
    assert elapsed < 110  # 5 children, each stopped by its 20 s timeout at the latest
    notes = {Path(n.split(":")[0]).name: n for n in outcome.notes}
    assert set(notes) == set(FAILURES)
    assert "RuntimeError: no GPU config found (line" in notes["raises.py"]
    assert "sys.exit(3)" in notes["exits.py"]
    assert "20 s timeout" in notes["loops.py"]
    assert "SIGSEGV" in notes["segfaults.py"]
    assert "out of memory" in notes["eats_memory.py"] and "1 GiB" in notes["eats_memory.py"]
    for d in outcome.diagnostics:
        assert verdict(d) == "not-run" and d.confidence != "confirmed"
        assert "Traceback" not in dict(d.evidence)["summary"]


def test_missing_constructor_argument_is_a_note_naming_the_config_key(tmp_path):
    (tmp_path / "needs_cfg.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn

        class Big(nn.Module):
            def __init__(self, cfg, depth=8):
                super().__init__()
                self.net = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(16, 16), nn.Sigmoid())])

            def forward(self, x):
                return self.net(x)
        """)
    )
    path = tmp_path / "needs_cfg.py"
    d = forced(path, "GL101", "Big", ("net.0", "net.14"))
    outcome = confirm([d], options(seeds=1))
    assert len(outcome.notes) == 1
    assert "constructor needs `cfg`" in outcome.notes[0]
    assert "::Big" in outcome.notes[0] and "kwargs" in outcome.notes[0]


CONV = textwrap.dedent("""
    import torch
    import torch.nn as nn

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.body = nn.Sequential(*[
                m for _ in range(8) for m in (nn.Linear(4 * 28 * 28, 4 * 28 * 28 // 28), nn.Sigmoid())
            ][:2])
            self.fcs = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(112, 112), nn.Sigmoid())])

        def forward(self, x):
            x = torch.sigmoid(self.conv(x))
            x = self.body(x.flatten(1))
            return self.fcs(x)
    """)


def _cli(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "gradlint", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_input_shape_from_the_config_is_honoured(tmp_path):
    (tmp_path / "conv.py").write_text(CONV)
    # synthesized input: Conv2d(1, ...) gets 64x64 images, which the flatten-then-Linear rejects
    res = _cli(
        ["check", "--dynamic", "--device", DEVICE, "--seeds", "1", "--output-format", "json", "conv.py"], tmp_path
    )
    found = json.loads(res.stdout)
    assert res.returncode == 1 and found
    assert all(f["evidence"]["verdict"] == "not-run" for f in found)
    assert "mat1 and mat2 shapes cannot be multiplied" in res.stderr
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""
        [tool.gradlint.dynamic]
        seeds = 1

        [tool.gradlint.dynamic.models."conv.py::ConvNet"]
        input-shape = [4, 1, 28, 28]
        """)
    )
    res = _cli(["check", "--dynamic", "--device", DEVICE, "--output-format", "json", "conv.py"], tmp_path)
    found = json.loads(res.stdout)
    assert found and all(f["evidence"]["verdict"] == "confirmed" for f in found), res.stderr
    assert all(f["evidence"]["seeds"] == 1 for f in found)


def test_bad_dynamic_config_is_a_clear_error(tmp_path):
    (tmp_path / "conv.py").write_text(CONV)
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint.dynamic]\nseeds = "three"\n')
    res = _cli(["check", "--dynamic", "conv.py"], tmp_path)
    assert res.returncode == 2
    assert "seeds must be an integer" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint.dynamic]\nseed = 1\ndevice = "cpu"\n')
    res = _cli(["check", "--dynamic", "--timeout", "60", "conv.py"], tmp_path)
    assert "unknown key `seed`; did you mean `seeds`?" in res.stderr


def test_without_torch_static_findings_print_and_one_line_says_how_to_install(tmp_path):
    (tmp_path / "conv.py").write_text(CONV)
    code = "import sys; sys.modules['torch'] = None; from gradlint.cli import main; main()"
    res = subprocess.run(
        [sys.executable, "-c", code, "check", "--dynamic", "--output-format", "concise", "conv.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert "GL101" in res.stdout
    assert (
        res.stderr.strip().splitlines()[-1]
        == "gradlint: error: --dynamic needs torch: pip install 'torch-gradlint[dynamic]'"
    )


def test_report_page_and_charts(tmp_path):
    pytest.importorskip("matplotlib")
    from gradlint.dynamic.charts import chart, symmetry_chart, training_chart
    from gradlint.dynamic.report import write_report

    static = lint_paths([str(HERE / "hazards.py")], Settings(select=("GL101", "GL201", "GL401"))).diagnostics
    outcome = confirm(static, options(seeds=1), files=[str(HERE / "hazards.py"), str(HERE / "inputs.py")])
    index = write_report(str(tmp_path / "rep"), outcome)
    svgs = sorted(p.name for p in (tmp_path / "rep").glob("*.svg"))
    # every model is charted, the healthy ones too; and GL201, GL401 get their evidence's chart
    assert svgs == [
        "hazards-ConstantMLP-GL201-line29.svg",
        "hazards-ConstantMLP.svg",
        "hazards-LoudLSTM-GL401-line74.svg",
        "hazards-LoudLSTM.svg",
        "hazards-NormalReLU.svg",
        "hazards-Sigmoid20.svg",
        "inputs-TwoInputTransformer.svg",
    ]
    for name in svgs:
        text = (tmp_path / "rep" / name).read_text()
        assert text.startswith("<?xml") and "<svg" in text and "<title>" in text  # hover tooltips
    page = index.read_text()
    assert page.count("<object ") == len(svgs)
    assert page.count('href="#m-') == len(outcome.models) == 5  # the summary table links every model
    assert "healthy band at <code>fcs.15</code>" in page and "`" not in page  # markdown rendered
    by_name = {m.name: m for m in outcome.models}
    by_code = {d.code: (k, d) for k, d in enumerate(outcome.diagnostics)}

    # the flow chart: layers in the order the forward hooks saw them (the transformer's
    # out_proj right after its attention, which applies it without calling it), every bar's
    # ratio against the last weighted layer the way the verdicts take it
    tr = by_name["TwoInputTransformer"]
    drawn = chart(tr, outcome.diagnostics, {}, tmp_path / "flow.svg")
    assert drawn["kind"] == "flow"
    assert drawn["layers"] == [n for n in tr.modules if n in set(drawn["layers"])]
    assert drawn["layers"][0] == "embed" and drawn["layers"][-1] == "head"
    at = drawn["layers"].index("encoder.layers.0.self_attn")
    assert drawn["layers"][at + 1] == "encoder.layers.0.self_attn.out_proj"
    assert drawn["relative"][-1] == pytest.approx(1.0)

    sig = by_name["Sigmoid20"]
    drawn = chart(sig, outcome.diagnostics, {}, tmp_path / "sig.svg")
    assert drawn["layers"] == [f"fcs.{k}" for k in range(20)]
    ratio = dict(by_code["GL101"][1].evidence)["ratio"]
    assert drawn["relative"][0] == pytest.approx(ratio, rel=1e-6)  # the bar is the verdict's number
    assert drawn["relative"][0] < 1e-3  # below the ratio band, as the verdict says: confirmed vanishing

    k, gl201 = by_code["GL201"]
    cm = by_name["ConstantMLP"]
    drawn = symmetry_chart(cm, cm.probes[k], gl201, {}, tmp_path / "sym.svg")
    assert drawn["kind"] == "symmetry" and drawn["layers"] == ["fc1", "fc2", "fc3"]
    assert drawn["measured"][0] <= 1e-6 and drawn["measured"][2] > 1e-6  # fc3 (the head) is not symmetric

    _, gl401 = by_code["GL401"]
    drawn = training_chart(by_name["LoudLSTM"], gl401, {}, tmp_path / "train.svg")
    ev = dict(gl401.evidence)
    assert drawn["kind"] == "training" and drawn["steps"] == list(range(1, len(ev["per_step"]) + 1))
    assert drawn["raw"] == [s["raw"] for s in ev["per_step"]] and drawn["clipped"] == [
        s["clipped"] for s in ev["per_step"]
    ]


def test_a_deep_model_gets_horizontal_grouped_bars(tmp_path):
    pytest.importorskip("matplotlib")
    from gradlint.dynamic import ModelMeasurement
    from gradlint.dynamic.charts import chart

    layers = [
        {"name": f"blocks.{b}.{part}", "norms": [10.0 ** (-b / 10)], "weighted": part == "fc"}
        for b in range(48)
        for part in ("fc", "norm")
    ] + [{"name": "head", "norms": [1.0], "weighted": True}]
    m = ModelMeasurement("deep.py", "Deep", "cpu", 1, 0.1, layers)
    drawn = chart(m, [], {}, tmp_path / "deep.svg")
    assert drawn["horizontal"] and len(drawn["layers"]) == 97
    assert drawn["bars"][:2] == ["blocks.0 (2)", "blocks.1 (2)"] and drawn["bars"][-1] == "head"
    assert len(drawn["bars"]) == 49  # one bar per repeated block


def test_hide_refuted_and_text_output(tmp_path):
    (tmp_path / "lstm.py").write_text((HERE / "hazards.py").read_text().replace("nn.init.normal_(p, 0, 0.5)", "pass"))
    res = _cli(
        [
            "check",
            "--dynamic",
            "--device",
            DEVICE,
            "--seeds",
            "1",
            "--select",
            "GL401",
            "--output-format",
            "concise",
            "lstm.py",
        ],
        tmp_path,
    )
    assert f"✘ refuted on {DEVICE}" in res.stdout and "1 seed: 8 BPTT steps of length 200: max ‖∇‖ =" in res.stdout
    assert "kept, marked refuted" in res.stdout
    # concise stays one line per finding: the verdict in brackets at its end
    [line] = res.stdout.splitlines()
    assert line.startswith("lstm.py:") and " GL401 [info] " in line and line.endswith("— kept, marked refuted]")
    # every model of the file is measured (scope all); the selection keeps GL9xx findings out
    assert f"Dynamic: 4 models measured on {DEVICE}" in res.stderr and "1 seed: 1 refuted." in res.stderr
    res = _cli(
        [
            "check",
            "--dynamic",
            "--device",
            DEVICE,
            "--seeds",
            "1",
            "--select",
            "GL401",
            "--hide-refuted",
            "--output-format",
            "concise",
            "lstm.py",
        ],
        tmp_path,
    )
    assert "GL401" not in res.stdout


# ---------------------------------------------------------------- every model measured (GL9xx)
MEASURED = Path(__file__).resolve().parent.parent / "fixtures" / "measured"


def test_hazards_no_static_finding_predicted_become_gl9xx_findings():
    path = MEASURED / "runtime_scales.py"
    assert lint_paths([str(path)], Settings()).diagnostics == []  # the static pass sees nothing
    expected = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        mark = re.search(r"# measured: (GL9\d\d)", line)
        if mark:
            expected[n] = mark.group(1)
    outcome = confirm([], options(), files=[str(path)])
    found = {d.line: d for d in outcome.diagnostics}
    assert {n: d.code for n, d in found.items()} == expected
    for d in found.values():
        ev = dict(d.evidence)
        assert d.confidence == "measured" and ev["verdict"] == "confirmed"
        assert ev["measured_hazard"] == d.hazard and ev["decided_by"]
        assert [entry["name"] for entry in ev["layers"]]  # the measured profile
    # the vanishing one says where the gradient, going backward, leaves the band: a convolution
    assert dict(found[min(expected)].evidence)["leaves_band_at"].startswith("convs.")
    # the healthy stack is measured too, and charted: four models, three findings
    assert sorted(m.name for m in outcome.models) == ["Amplified", "DampedConvs", "Shifted", "Steady"]
    steady = next(m for m in outcome.models if m.name == "Steady")
    assert steady.hazard["hazard"] == "none" and not steady.findings
    # the narrower scope measures only the models with findings: here none
    assert confirm([], options(scope="findings"), files=[str(path)]).models == []


def test_a_gl9xx_finding_respects_the_selection_and_noqa(tmp_path):
    src = (MEASURED / "runtime_scales.py").read_text()
    (tmp_path / "m.py").write_text(src.replace("# measured: GL901", "# noqa: GL901"))
    outcome = confirm(
        [], options(seeds=1, enabled=lambda path: frozenset({"GL901", "GL903"})), files=[str(tmp_path / "m.py")]
    )
    assert sorted(d.code for d in outcome.diagnostics) == ["GL903"]


@pytest.mark.parametrize("code", ["GL901", "GL902", "GL903"])
def test_measured_rule_examples(tmp_path, code):
    # a measured rule's documented examples are its tests: the bad one gets the code, the fix not
    from gradlint.rule import rule_by_code

    rule = rule_by_code(code)
    assert rule.measured and rule.INVALID and rule.VALID
    files = []
    for kind, sources in (("invalid", rule.INVALID), ("valid", rule.VALID)):
        for k, source in enumerate(sources):
            files.append(tmp_path / f"{kind}_{k}.py")
            files[-1].write_text(source)
    outcome = confirm([], options(seeds=2), files=[str(f) for f in files])
    by_file = {}
    for d in outcome.diagnostics:
        by_file.setdefault(Path(d.path).name, []).append(d.code)
    for f in files:
        codes = by_file.get(f.name, [])
        assert (code in codes) == f.name.startswith("invalid"), (f.name, codes, outcome.notes, outcome.unmeasured)


# ---------------------------------------------------------------- inputs for real models
def _inputs_project(tmp_path, config: str) -> Path:
    for name in ("inputs.py", "input_helpers.py"):
        (tmp_path / name).write_text((HERE / name).read_text())
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint.dynamic]\nseeds = 1\n" + textwrap.dedent(config))
    return tmp_path


def test_two_input_transformer_and_dict_model_are_measured_through_config_alone(tmp_path):
    root = _inputs_project(
        tmp_path,
        """
        [tool.gradlint.dynamic.models."inputs.py::TwoInputTransformer"]
        inputs = [{shape = [4, 12], dtype = "long", high = 100}, {shape = [4, 12], dtype = "long", fill = "ones"}]

        [tool.gradlint.dynamic.models."inputs.py::DictModel"]
        input-fn = "input_helpers:make_batch"
        """,
    )
    res = _cli(["check", "--dynamic", "--device", DEVICE, "inputs.py"], root)
    assert res.returncode == 0, res.stderr
    assert "inputs.py::TwoInputTransformer measured in" in res.stderr
    assert "inputs.py::DictModel measured in" in res.stderr
    assert "not measured" not in res.stderr and "Dynamic: 2 models measured" in res.stderr


def test_keyword_tensors_and_inferred_masks(tmp_path):
    # the mask as a keyword tensor; and with no configuration at all, the token ids come from
    # the Embedding's vocabulary and the attention mask is filled with ones
    root = _inputs_project(
        tmp_path,
        """
        [tool.gradlint.dynamic.models."inputs.py::TwoInputTransformer"]
        inputs = [{shape = [4, 12], dtype = "long", high = 100}]
        kwargs-inputs = {attention_mask = {shape = [4, 12], dtype = "long", fill = "ones"}}
        """,
    )
    res = _cli(["check", "--dynamic", "--device", DEVICE, "inputs.py"], root)
    assert "inputs.py::TwoInputTransformer measured in" in res.stderr, res.stderr
    (root / "pyproject.toml").write_text("[tool.gradlint.dynamic]\nseeds = 1\n")
    res = _cli(["check", "--dynamic", "--device", DEVICE, "inputs.py"], root)
    assert "inputs.py::TwoInputTransformer measured in" in res.stderr, res.stderr
    # the dict model's forward fails on a tensor: the note says what was passed, what forward
    # reads, and the key to set
    assert (
        "inputs.py::DictModel: not measured: forward(batch) got a Tensor of shape (8, 16); it reads "
        "batch['features'], batch['scale']"
    ) in res.stderr
    assert (
        'set input-fn (a function returning (args, kwargs)) under [tool.gradlint.dynamic.models."inputs.py::DictModel"]'
        in res.stderr
    )


def test_bad_inputs_config_is_a_clear_error(tmp_path):
    root = _inputs_project(
        tmp_path,
        """
        [tool.gradlint.dynamic.models."inputs.py::DictModel"]
        inputs = [{shape = [4, 0]}]
        """,
    )
    res = _cli(["check", "--dynamic", "inputs.py"], root)
    assert res.returncode == 2 and "inputs[0] shape must be a non-empty array of positive integers" in res.stderr
    (root / "pyproject.toml").write_text(
        '[tool.gradlint.dynamic.models."inputs.py::DictModel"]\ninput-fn = "make_batch"\n'
    )
    res = _cli(["check", "--dynamic", "inputs.py"], root)
    assert res.returncode == 2 and 'input-fn must be "module:function"' in res.stderr


RECURRENT_STATE = textwrap.dedent("""
    import torch
    import torch.nn as nn


    class WordLM(nn.Module):
        '''pytorch/examples' word language model: time-first, forward(input, hidden).'''

        def __init__(self, ntoken=100, ninp=32, nhid=64, nlayers=2):
            super().__init__()
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = nn.LSTM(ninp, nhid, nlayers)
            self.decoder = nn.Linear(nhid, ntoken)
            self.nlayers, self.nhid = nlayers, nhid

        def forward(self, input, hidden):
            output, hidden = self.rnn(self.encoder(input), hidden)
            return self.decoder(output), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())
            return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


    class OneAtATime(nn.Module):
        '''A tutorial's RNN: its first state is a batch of one, so it is fed one sequence.'''

        def __init__(self, n_in=16, hidden=32):
            super().__init__()
            self.rnn = nn.RNN(n_in, hidden, batch_first=True)
            self.out = nn.Linear(hidden, 4)
            self.hidden = hidden

        def forward(self, x, h):
            y, h = self.rnn(x, h)
            return self.out(y[:, -1])

        def initHidden(self):
            return torch.zeros(1, 1, self.hidden)
    """)


def test_a_recurrent_forward_gets_the_models_own_first_state(tmp_path):
    (tmp_path / "lm.py").write_text(RECURRENT_STATE)
    res = _cli(["check", "--dynamic", "--device", DEVICE, "--seeds", "1", "lm.py"], tmp_path)
    assert "lm.py::WordLM measured in" in res.stderr and "lm.py::OneAtATime measured in" in res.stderr, res.stderr
    assert "not measured" not in res.stderr


def test_static_layer_names_map_to_the_built_modules_or_say_why():
    from gradlint.dynamic.verdict import resolve_layers

    measured = {
        "layers": [{"name": n} for n in ("blocks.0.fc", "blocks.8.fc", "head")],
        "modules": [
            "blocks",
            "blocks.0",
            "blocks.0.fc",
            "blocks.0.act",
            "blocks.8",
            "blocks.8.fc",
            "blocks.8.act",
            "head",
        ],
    }
    # an activation (no parameters) stands for the nearest parameterized module: after it for
    # the first layer, before it for the last; a container for its first or last descendant
    assert resolve_layers(("blocks.0.act", "blocks.8.act"), measured)[:2] == (
        ("blocks.8.fc", "blocks.8.fc"),
        {"blocks.0.act": "blocks.8.fc", "blocks.8.act": "blocks.8.fc"},
    )
    assert resolve_layers(("blocks.0", "head"), measured)[0] == ("blocks.0.fc", "head")
    # a model a script builds in place: `net.0` is `0` of the built Sequential
    seq = {"layers": [{"name": "0"}, {"name": "2"}], "modules": ["0", "1", "2"]}
    assert resolve_layers(("net.0", "net.2"), seq)[0] == ("0", "2")
    names, _, why = resolve_layers(("encoder.fc", "head"), measured)
    assert why.startswith(
        "the static layer `encoder.fc` is not a module of the built model (its parameterized modules: `blocks.0.fc`"
    )


def test_a_refuted_finding_does_not_fail_the_run_unless_asked(tmp_path):
    (tmp_path / "lstm.py").write_text((HERE / "hazards.py").read_text().replace("nn.init.normal_(p, 0, 0.5)", "pass"))
    # the healthy LSTM's GL401 (an info: the length is known) fails at --fail-level info, unless refuted
    args = [
        "check",
        "--dynamic",
        "--device",
        DEVICE,
        "--seeds",
        "1",
        "--select",
        "GL401",
        "--fail-level",
        "info",
        "lstm.py",
    ]
    res = _cli(args, tmp_path)
    assert "refuted" in res.stdout and res.returncode == 0, res.stdout + res.stderr
    assert _cli([*args[:-1], "--fail-on-refuted", "lstm.py"], tmp_path).returncode == 1


def test_a_gl9xx_finding_in_a_notebook_names_its_cell(tmp_path):
    cells = [
        "import torch\nimport torch.nn as nn\n",
        "class Shrinking(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fcs = nn.ModuleList(nn.Linear(64, 64) for _ in range(12))\n"
        "        for fc in self.fcs:\n"
        "            nn.init.kaiming_normal_(fc.weight, nonlinearity='relu')\n"
        "            fc.weight.data.mul_(float(torch.tensor(0.05)))  # a scale computed when it runs\n"
        "\n"
        "    def forward(self, x):\n"
        "        for fc in self.fcs:\n"
        "            x = torch.relu(fc(x))\n"
        "        return x\n",
    ]
    nb = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# a model"]}]
        + [
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c.splitlines(True)}
            for c in cells
        ],
        "metadata": {"language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "m.ipynb").write_text(json.dumps(nb))
    outcome = confirm([], options(seeds=1), files=[str(tmp_path / "m.ipynb")])
    [d] = outcome.diagnostics
    assert d.code == "GL901" and (d.cell, d.line, d.column) == (3, 1, 1)
