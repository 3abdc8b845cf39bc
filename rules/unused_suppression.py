from gradlint.rule import Invalid, Rule, Valid
from gradlint.vocab import Applicability, Severity


class UnusedSuppression(Rule):
    """## What it does
    Reports suppression comments that hide nothing: a `# noqa: GL101`, a
    `# gradlint: ignore[GL101]` or a `# gradlint: file-ignore[GL101]` whose rule found
    nothing where the comment applies, and codes in a `gradlint:` directive that name no
    rule.

    ## Why is this bad?
    A suppression outlives the hazard it was written for. Once the code is fixed, the stale
    comment would silently hide the next hazard of that kind on the same line or in the same
    class: a deep sigmoid stack reintroduced months later would pass unreported.

    Only gradlint's own codes are judged: `# noqa: E501` belongs to another tool, and a
    bare `# noqa` may serve one. A code whose rule is not enabled in the run (through
    `select`, `ignore` or `per-file-ignores`) cannot be judged and is left alone.

    A directive that names GL003 and covers the line (`# noqa: GL201, GL003`, as ruff's
    `# noqa: RUF100`) keeps a suppression that hides nothing; a GL003 in it that keeps
    nothing is itself reported. `--add-noqa` writes such a code.

    ## Example
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)  # noqa: GL201
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
    ```

    ## Fix safety
    The fix removes the codes that hide nothing, and the whole comment when nothing else is
    left in it. It is safe: no finding that is reported today becomes hidden or visible.

    ## References
    - [ruff: unused-noqa (RUF100)](https://docs.astral.sh/ruff/rules/unused-noqa/)
    - [flake8: selecting and ignoring violations](https://flake8.pycqa.org/en/latest/user/violations.html)
    """

    code = "GL003"
    name = "unused-suppression"
    severity = Severity.WARNING
    summary = "a suppression comment hides no finding"
    fix_safety = Applicability.SAFE
    engine_emitted = True
    VALID = [
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(12) for m in (nn.Linear(8, 8), nn.Sigmoid())]  # noqa: GL101
                    self.net = nn.Sequential(*layers)
                def forward(self, x):
                    return self.net(x)
            """,
            also=("GL101",),
        ),
        Valid(
            """
            import torch
            x = torch.zeros(3)  # noqa: E501
            """
        ),
        Valid(
            """
            import torch
            x = torch.zeros(3)  # noqa
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 8)  # noqa: GL201
            """,
            line=7,
            fixed="""
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 8)
            """,
            also=("GL201",),
        ),
        Invalid(
            """
            import torch
            x = torch.zeros(3)  # gradlint: ignore[GL999]
            """,
            line=2,
            fixed="""
            import torch
            x = torch.zeros(3)
            """,
        ),
        Invalid(
            """
            # gradlint: file-ignore[saturating-activation-stack]
            import torch
            x = torch.zeros(3)
            """,
            line=1,
            fixed="""

            import torch
            x = torch.zeros(3)
            """,
            also=("GL101",),
        ),
    ]
