from gradlint.rule import Rule
from gradlint.rules._common import measured_rule
from gradlint.vocab import Hazard, Severity


@measured_rule
class MeasuredExplodingGradient(Rule):
    """## What it does
    Reports a model whose gradient, measured by a real backward pass, explodes (or overflows)
    on its way back to the first layers, when no static finding of the model predicted an
    exploding gradient.

    {measured-scope}

    ## Why is this bad?
    The first updates are enormous: the loss jumps to `inf` or NaN, or the weights are thrown
    far from where training could recover. Lowering the learning rate only hides it.

    {measured-convention}

    ## Example
    ```python
    import torch
    import torch.nn as nn

    STD = float(torch.tensor(0.5))  # computed when the file runs


    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(256, 256), nn.ReLU())])
            for m in self.layers:
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, STD)

        def forward(self, x):
            return self.layers(x)
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    STD = float(torch.tensor(2 / 256)) ** 0.5  # Kaiming's std for ReLU


    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(256, 256), nn.ReLU())])
            for m in self.layers:
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, STD)

        def forward(self, x):
            return self.layers(x)
    ```

    ## Known problems
    {measured-known-problems}

    ## References
    {measured-references}
    """

    code = "GL902"
    name = "measured-exploding-gradient"
    severity = Severity.ERROR
    summary = "a real backward pass measures an exploding gradient that no static finding predicted"
    #: the hazard class a measurement shows that this rule reports
    measures = Hazard.EXPLODING
    measured_help = (
        "check the initializer scales (Kaiming/Xavier for the activation), add normalization, or "
        "scale residual branches"
    )
