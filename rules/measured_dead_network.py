from gradlint.rule import Rule
from gradlint.rules._common import doc_examples


class MeasuredDeadNetwork(Rule):
    """## What it does
    Reports a model in which every weighted layer before the last gets an exactly-zero
    gradient in a real backward pass (in most seeds), when no static finding predicted a dead
    network.

    It is made by `gradlint check --dynamic` only, which measures every model of the checked
    files with real backward passes (the scope `--dynamic=findings` measures only the models
    that have static findings, and makes none of these). The finding is at the model's class,
    or at the line that builds and configures it (`model = Net(...)`); its `evidence` holds
    the measured numbers, the test that decided them, the per-layer weight-gradient norms and,
    where the gradient leaves the healthy band, the layer where it does.

    ## Why is this bad?
    Nothing below the last layer can learn: a whole ReLU layer is inactive for every input,
    or the path to the output is cut (a detached branch, a zero gate). Training then fits only
    the last layer.

    The measurement uses the convention of the static flow model: a batch of 8 inputs drawn
    from N(0, 1) (token ids drawn uniformly), the loss a fixed random read-out of the output
    with a unit gradient per example, several seeds, and the class most seeds show.
    {shared-thresholds}

    A finding of this code means the static rules missed the hazard: the model reads a value
    gradlint cannot resolve (a scale computed at run time, a layer from a library it cannot
    see), or the hazard comes from a combination no rule covers. The static findings of the
    model, when it has some, carry their own verdicts.

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
    The measurement is at initialization, on synthesized inputs; a model whose forward needs
    real data is measured only when its inputs are configured (`inputs`, `kwargs-inputs` or
    `input-fn` under `[tool.gradlint.dynamic.models."file.py::Class"]`).

    ## References
    - [Glorot & Bengio, Understanding the difficulty of training deep feedforward neural networks (2010)](https://proceedings.mlr.press/v9/glorot10a.html)
    - [He et al., Delving Deep into Rectifiers (2015)](https://arxiv.org/abs/1502.01852)
    - [Schoenholz et al., Deep Information Propagation (2017)](https://arxiv.org/abs/1611.01232)
    """

    code = "GL903"
    name = "measured-dead-network"
    severity = "error"
    summary = "a real backward pass measures no gradient below the last layer, and no static finding predicted it"
    engine_emitted = True
    measured = True


# its examples are the documented ones, measured by tests/test_dynamic.py
MeasuredDeadNetwork.INVALID, MeasuredDeadNetwork.VALID = doc_examples(MeasuredDeadNetwork)
