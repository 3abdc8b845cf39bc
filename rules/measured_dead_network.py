from gradlint.rule import Rule
from gradlint.rules._common import measured_rule
from gradlint.vocab import Hazard, Severity


@measured_rule
class MeasuredDeadNetwork(Rule):
    """## What it does
    Reports a model in which every weighted layer before the last gets an exactly-zero
    gradient in a real backward pass (in most seeds), when no static finding predicted a dead
    network.

    {measured-scope}

    ## Why is this bad?
    Nothing below the last layer can learn: a whole ReLU layer is inactive for every input,
    or the path to the output is cut (a detached branch, a zero gate). Training then fits only
    the last layer.

    {measured-convention}

    ## Example
    ```python
    import torch
    import torch.nn as nn

    SHIFT = float(torch.tensor(-100.0))  # computed when the file runs


    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 64)
            self.fc2 = nn.Linear(64, 64)
            self.out = nn.Linear(64, 1)
            nn.init.constant_(self.fc2.bias, SHIFT)

        def forward(self, x):
            x = torch.relu(self.fc1(x))
            x = torch.relu(self.fc2(x))
            return self.out(x)
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    SHIFT = float(torch.tensor(0.0))  # computed when the file runs


    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 64)
            self.fc2 = nn.Linear(64, 64)
            self.out = nn.Linear(64, 1)
            nn.init.constant_(self.fc2.bias, SHIFT)

        def forward(self, x):
            x = torch.relu(self.fc1(x))
            x = torch.relu(self.fc2(x))
            return self.out(x)
    ```

    ## Known problems
    {measured-known-problems}

    ## References
    {measured-references}
    """

    code = "GL903"
    name = "measured-dead-network"
    severity = Severity.ERROR
    summary = "a real backward pass measures no gradient below the last layer, and no static finding predicted it"
    #: the hazard class a measurement shows that this rule reports
    measures = Hazard.DEAD
    measured_help = (
        "the layers before the last get no gradient at all: look for a constant or zero initializer, "
        "a ReLU fed only negative values, or a detached branch"
    )
