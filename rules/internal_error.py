from gradlint.rule import Rule
from gradlint.vocab import Severity


class InternalError(Rule):
    """## What it does
    Reports that one of gradlint's own rules raised an exception on this file. The other
    rules and files are still checked; the run exits with status 2.

    ## Why is this bad?
    It is gradlint's bug, not yours: the file was only partly checked. Please report it with
    the file (or a reduced copy) so the rule can be fixed.

    ## Example
    ```python
    # any file on which a rule crashes
    ```

    ## References
    - [gradlint issue tracker](https://github.com/gradlint/gradlint/issues)
    """

    code = "GL002"
    name = "internal-error"
    severity = Severity.ERROR
    summary = "a gradlint rule crashed on this file"
    engine_emitted = True
