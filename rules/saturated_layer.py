from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import flow_hazards
from gradlint.vocab import Cause, Confidence, Severity


class SaturatedLayer(Rule):
    """## What it does
    Finds bounded activations (tanh, sigmoid, hardtanh, softsign) whose pre-activations are so
    large at initialization that most of their units sit saturated, even in a shallow model:
    typically `tanh` after a layer initialized with `N(0, 1)` weights over a fan-in of 30 or
    more, the classic hand-written MLP.

    ## Why is this bad?
    With weights of standard deviation `σ` over a fan-in of `n`, the pre-activation has a
    standard deviation of about `σ·√n` times the input's: `N(0, 1)` weights over 100 inputs
    give 10. tanh'(10) ≈ 8e-9: a saturated unit passes almost no gradient and learns almost
    nothing until something moves it back into its linear range. gradlint predicts the
    fraction of saturated units (local derivative below 1 % of its largest value) from the
    initializer and reports a layer when it is over one half.

    Predicted against measured fraction of saturated units (gradlint's calibration grid, one
    `Linear(n, 50)` with `normal_(0, 1)` weights, then tanh): n = 30: 0.58 / 0.57, n = 100:
    0.76 / 0.77, n = 300: 0.86 / 0.87.

    One backward pass at initialization may still show a healthy first/last gradient ratio,
    because there is only one layer to compare; `--dynamic` cannot confirm this finding from
    the ratio alone. Training stalls all the same.

    ## Example
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(100, 50)
            self.out = nn.Linear(50, 1)
            nn.init.normal_(self.hidden.weight, 0, 1)

        def forward(self, x):
            return self.out(self.hidden(x).tanh())
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(100, 50)
            self.out = nn.Linear(50, 1)
            nn.init.xavier_normal_(self.hidden.weight)

        def forward(self, x):
            return self.out(self.hidden(x).tanh())
    ```

    ## References
    - LeCun, Bottou, Orr & Müller, *Efficient BackProp*, 1998 (§4.6: initialize so that the
      sigmoid is in its linear region)
    - Glorot & Bengio, *Understanding the difficulty of training deep feedforward neural networks*, AISTATS 2010
    """

    code = "GL104"
    name = "saturated-layer"
    severity = Severity.WARNING
    summary = "a bounded activation sits saturated at initialization: its units pass almost no gradient"
    claims = (Cause.SATURATED_LAYER,)

    VALID = [
        # Xavier keeps tanh in its linear range
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(100, 50)
                    self.b = nn.Linear(50, 1)
                    nn.init.xavier_uniform_(self.a.weight)
                def forward(self, x):
                    return self.b(self.a(x).tanh())
            """
        ),
        # N(0, 1) over a fan-in of 4 is not saturated
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(4, 50)
                    self.b = nn.Linear(50, 1)
                    nn.init.normal_(self.a.weight, 0, 1)
                def forward(self, x):
                    return self.b(self.a(x).tanh())
            """
        ),
        # a sigmoid gate is meant to be bounded
        Valid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(100, 100)
                    self.g = nn.Linear(100, 100)
                    nn.init.normal_(self.g.weight, 0, 1)
                def forward(self, x):
                    return self.a(x) * torch.sigmoid(self.g(x))
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.W1 = nn.Linear(64, 32)
                    self.W2 = nn.Linear(32, 10)
                    nn.init.normal_(self.W1.weight, mean=0.0, std=1.0)  # warning: GL104
                def forward(self, x):
                    return self.W2(torch.tanh(self.W1(x)))
            """,
            line=8,
        ),
    ]

    def check(self, graph, ctx) -> None:
        for h in flow_hazards(graph, Cause.SATURATED_LAYER):
            layer = h.layers[0]
            init = graph.init_of(layer, "weight")
            fraction, act, pre = h.detail["fraction"], h.detail["activation"], h.detail["pre_std"]
            names = ", ".join(l.name for l in h.layers[:4]) + (" …" if len(h.layers) > 4 else "")
            message = (
                f"{act} after {names} sits saturated at init: about {fraction:.0%} of its units have a local "
                f"derivative below 1 % of its largest, because the pre-activations have an RMS of "
                f"about {pre:.2g}; those units pass almost no gradient (one backward pass may not show it)"
            )
            span = init.span if init is not None and init.span is not None else layer.span
            # the claim is about saturation, which one backward pass may not show as a small
            # gradient norm: its hazard class is none (the numbers are still attached)
            ctx.report(
                span,
                message,
                severity=Severity.WARNING,
                confidence=Confidence.INFERRED if not graph.unknowns else Confidence.HEURISTIC,
                help="initialize the weights for the activation (`nn.init.xavier_uniform_(w)` for tanh/sigmoid), "
                "or normalize the pre-activations",
                layers=tuple(l.name for l in h.layers),
                hazard="none",
                prediction=h.prediction(),
            )
