from gradlint.rule import Invalid, Rule, Valid
from gradlint.vocab import Severity


class ParseError(Rule):
    """## What it does
    Reports a file gradlint could not read or parse: a syntax error, bytes that are not
    valid in the file's encoding, NUL bytes, or a path that cannot be read as a file.

    ## Why is this bad?
    A file that does not parse is a file gradlint cannot check: any gradient hazard in it
    goes unreported. The finding points at the place Python's parser stopped, and the run
    goes on with the other files.

    ## Example
    ```python
    import torch.nn as nn
    net = nn.Sequential(nn.Linear(4, 4)
    ```

    Use instead:
    ```python
    import torch.nn as nn
    net = nn.Sequential(nn.Linear(4, 4))
    ```

    A file that is not meant to parse (a template, Python 2 code) is better excluded
    (`extend-exclude`); `# gradlint: file-ignore[GL001]` in it, or `# noqa: GL001` on the
    line the parser stops at, also hides the finding (what comes before that line is read
    for the comment). `--add-noqa` writes the first.

    ## Known problems
    Files that never mention `torch` are skipped before parsing, so a syntax error in them
    is not reported.

    ## References
    - [Python `ast.parse`](https://docs.python.org/3/library/ast.html#ast.parse)
    """

    code = "GL001"
    name = "parse-error"
    severity = Severity.ERROR
    summary = "the file cannot be read or parsed"
    engine_emitted = True
    VALID = [
        Valid(
            """
            import torch
            x = torch.zeros(1)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            net = nn.Sequential(nn.Linear(4, 4)
            """,
            line=2,
        ),
        Invalid(
            """
            import torch
            def f(:
                pass
            """,
            line=2,
        ),
    ]
