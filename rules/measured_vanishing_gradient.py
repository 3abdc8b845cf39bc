from gradlint.rule import Rule
from gradlint.rules._common import measured_rule
from gradlint.vocab import Hazard, Severity


@measured_rule
class MeasuredVanishingGradient(Rule):
    """## What it does
    Reports a model whose gradient, measured by a real backward pass, vanishes before it
    reaches the first weighted layer, when no static finding of the model predicted a vanishing
    gradient.

    {measured-scope}

    ## Why is this bad?
    The first layers get almost no gradient: they barely learn, and the deeper the model the
    smaller their share. The optimizer's step for them is lost in the noise.

    {measured-convention}

    ## Example
    ```python
    import torch
    import torch.nn as nn

    SCALE = float(torch.tensor(0.05))  # computed when the file runs


    class Shrinking(nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = nn.ModuleList(nn.Linear(64, 64) for _ in range(12))
            for fc in self.fcs:
                nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
                fc.weight.data.mul_(SCALE)

        def forward(self, x):
            for fc in self.fcs:
                x = torch.relu(fc(x))
            return x
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    SCALE = float(torch.tensor(1.0))  # computed when the file runs


    class Shrinking(nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = nn.ModuleList(nn.Linear(64, 64) for _ in range(12))
            for fc in self.fcs:
                nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
                fc.weight.data.mul_(SCALE)

        def forward(self, x):
            for fc in self.fcs:
                x = torch.relu(fc(x))
            return x
    ```

    ## Known problems
    {measured-known-problems}

    ## References
    {measured-references}
    """

    code = "GL901"
    name = "measured-vanishing-gradient"
    severity = Severity.ERROR
    summary = "a real backward pass measures a vanishing gradient that no static finding predicted"
    #: the hazard class a measurement shows that this rule reports
    measures = Hazard.VANISHING
    measured_help = (
        "run `gradlint check --dynamic --report DIR` to see where; use ReLU-family activations, "
        "normalization or skip connections across that span"
    )
