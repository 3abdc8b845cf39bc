from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import FLOW_PROBES, confidence_of, flow_direction, flow_hazards, flow_report, flow_sentence
from gradlint.vocab import Category, Cause, Probe, Severity


class VanillaRecurrentCell(Rule):
    """## What it does
    Finds vanilla recurrent layers — `nn.RNN` and `nn.RNNCell`, which have no gates — used on
    sequences whose length is long or unknown.

    ## Why is this bad?
    Backpropagation through time multiplies the gradient by the recurrent Jacobian once per
    step, like a very deep network with shared weights. Pascanu, Mikolov & Bengio (ICML 2013):
    it vanishes when the recurrent weight's largest singular value is below `1/γ` (`γ = 1`
    for tanh) and explodes above it, so a vanilla RNN cannot carry information over many steps.
    LSTM and GRU cells add a gated, additive memory path whose gradient does not shrink
    geometrically. This is an info-level note: a vanilla RNN on short sequences is fine.

    ## Example
    ```python
    import torch.nn as nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(64, 128, num_layers=2, batch_first=True)

        def forward(self, x):
            out, h = self.rnn(x)
            return out
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(64, 128, num_layers=2, batch_first=True)

        def forward(self, x):
            out, h = self.rnn(x)
            return out
    ```

    ## Options
    - `short-sequence` (default `16`): an `nn.RNNCell` unrolled over a known number of steps no
      greater than this is not reported, nor an `nn.RNN` that the file's training code runs over
      a sequence this short (a literal or constant length, the input's shape, an `argparse`
      default); a longer known length is stated in the message.

    ## References
    - Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*, ICML 2013
    - Hochreiter & Schmidhuber, *Long Short-Term Memory*, Neural Computation 1997
    - Cho et al., *Learning Phrase Representations using RNN Encoder–Decoder*, EMNLP 2014 (GRU)
    """

    code = "GL102"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = (*FLOW_PROBES, Probe.RECURRENT_VANISHING)
    name = "vanilla-recurrent-cell"
    severity = Severity.INFO
    severities = {
        Severity.ERROR: "the flow model predicts the gradient through time more than 100x beyond its threshold",
        Severity.WARNING: "the flow model predicts the gradient through time beyond its threshold",
        Severity.INFO: "an ungated cell over long or unknown sequences, with no predicted growth",
    }
    summary = "an ungated nn.RNN/nn.RNNCell over long sequences: the gradient through time vanishes or explodes"
    claims = (Cause.RECURRENT,)
    options = {"short-sequence": 16}

    VALID = [
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.GRU(8, 8)
                def forward(self, x):
                    return self.rnn(x)[0]
            """
        ),
        # an RNNCell over 5 known steps
        Valid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.cell = nn.RNNCell(8, 8)
                def forward(self, x):
                    h = torch.zeros(1, 8)
                    for t in range(5):
                        h = self.cell(x, h)
                    return h
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.RNN(8, 8, nonlinearity='relu')
                def forward(self, x):
                    return self.rnn(x)[0]
            """,
            line=5,
        ),
        # an RNNCell over a sequence of unknown length
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.cell = nn.RNNCell(8, 8)
                def forward(self, xs):
                    h = torch.zeros(1, 8)
                    for x in xs:
                        h = self.cell(x, h)
                    return h
            """,
            line=6,
        ),
    ]

    def check(self, graph, ctx) -> None:
        short = int(ctx.options["short-sequence"])
        flowing = {}
        for h in flow_hazards(graph, Cause.RECURRENT):
            flowing[h.detail["layer"]] = h
        for name, h in flowing.items():
            layer = graph.layer(name)
            nl = layer.params.get("nonlinearity", "tanh")
            nl = nl if isinstance(nl, str) and layer.kind in ("RNN", "RNNCell") else None
            what = f"nn.{layer.kind}{f' ({nl})' if nl else ''} `{layer.name}`"
            init = graph.init_of(layer, "weight_hh_l0")
            init_text = f"`{init.text}`" if init is not None and init.span is not None else "its recurrent weights"
            if graph.sequence:
                over = graph.sequence[1].describe(h.detail["steps"])
            else:
                assumed = "" if h.detail.get("steps_known") else " (assumed; the code does not say)"
                over = f"{h.detail['steps']} steps{assumed}"
            message = (
                f"{what}: {flow_direction(h)} through time — with {init_text} the gradient grows about "
                f"{h.detail['chi']:.2g}-fold per step, over {over}, so {flow_sentence(h)}"
            )
            span = init.span if init is not None and init.span is not None else layer.span
            flow_report(
                ctx,
                graph,
                h,
                span,
                message,
                "initialize the recurrent weight orthogonally with gain ≤ 1, use nn.LSTM/nn.GRU, and clip the "
                "gradient norm in training",
                [ctx.related(layer.span, f"{layer.name} = nn.{layer.kind}(...)")],
            )
        for layer in graph.layers(Category.RECURRENT):
            if layer.name in flowing:
                continue
            if layer.kind not in ("RNN", "RNNCell"):
                continue
            apps = graph.applications(layer)
            if layer.kind == "RNNCell" and apps and graph.steps_known(layer) and len(apps) <= short:
                continue
            nl = layer.params.get("nonlinearity", "tanh")
            nl = nl if isinstance(nl, str) else "tanh"
            what = f"nn.{layer.kind} ({nl}) `{layer.name}`"
            if layer.kind == "RNN" and graph.sequence:
                # the length the file's training code runs it over
                if graph.sequence[0] <= short:
                    continue
                length = f"over {graph.sequence[1].describe(graph.sequence[0])}"
            elif layer.kind == "RNNCell":
                length = (
                    f"unrolled over {len(apps)} steps"
                    if graph.steps_known(layer) and apps
                    else "over a sequence of unknown length"
                )
            else:
                length = "over sequences of unknown length"
            message = (
                f"{what} has no gates: {length}, the gradient through time vanishes "
                f"(or explodes when the recurrent weight's largest singular value exceeds 1)"
            )
            ctx.report(
                layer.span,
                message,
                confidence=confidence_of(graph),
                help=f"use nn.{'LSTM' if layer.kind == 'RNN' else 'LSTMCell'} or"
                f" nn.{'GRU' if layer.kind == 'RNN' else 'GRUCell'}",
                layers=(layer.name,),
                expect=Probe.RECURRENT_VANISHING,
            )
