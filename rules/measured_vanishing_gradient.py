from gradlint.rule import Rule
from gradlint.rules._common import doc_examples


class MeasuredVanishingGradient(Rule):
    """## What it does
    Reports a model whose gradient, measured by a real backward pass, vanishes before it
    reaches the first weighted layer, when no static finding of the model predicted a vanishing
    gradient.

    It is made by `gradlint check --dynamic` only, which measures every model of the checked
    files with real backward passes (the scope `--dynamic=findings` measures only the models
    that have static findings, and makes none of these). The finding is at the model's class,
    or at the line that builds and configures it (`model = Net(...)`); its `evidence` holds
    the measured numbers, the test that decided them, the per-layer weight-gradient norms and,
    where the gradient leaves the healthy band, the layer where it does.

    ## Why is this bad?
    The first layers get almost no gradient: they barely learn, and the deeper the model the
    smaller their share. The optimizer's step for them is lost in the noise.

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
    The measurement is at initialization, on synthesized inputs; a model whose forward needs
    real data is measured only when its inputs are configured (`inputs`, `kwargs-inputs` or
    `input-fn` under `[tool.gradlint.dynamic.models."file.py::Class"]`).

    ## References
    - [Glorot & Bengio, Understanding the difficulty of training deep feedforward neural networks (2010)](https://proceedings.mlr.press/v9/glorot10a.html)
    - [He et al., Delving Deep into Rectifiers (2015)](https://arxiv.org/abs/1502.01852)
    - [Schoenholz et al., Deep Information Propagation (2017)](https://arxiv.org/abs/1611.01232)
    """

    code = "GL901"
    name = "measured-vanishing-gradient"
    severity = "error"
    summary = "a real backward pass measures a vanishing gradient that no static finding predicted"
    engine_emitted = True
    measured = True


# its examples are the documented ones, measured by tests/test_dynamic.py
MeasuredVanishingGradient.INVALID, MeasuredVanishingGradient.VALID = doc_examples(MeasuredVanishingGradient)
