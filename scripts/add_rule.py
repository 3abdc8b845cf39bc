"""Scaffold a new rule: its file in rules/ (doc headings, examples, options, in preview) and its
fixture in fixtures/models/ (the expected finding marked inline).

    .venv/bin/python scripts/add_rule.py NAME --series GL3 [--severity warning] [--root DIR]

NAME is kebab-case (`deep-gated-stack`); the code is the next free one of the series. Then:
write `check`, make the examples real (they are the rule's tests), run
`.venv/bin/python -m pytest --update-snapshots` (docs/rules.md and the rule's snapshot) and
`make test`, and take the rule out of preview (and into the README's rules table) when it is
done. CONTRIBUTING.md says more.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = '''from __future__ import annotations

from gradlint.rule import Invalid, Rule, Valid
from gradlint.vocab import Severity


class {cls}(Rule):
    """## What it does
    TODO: what the rule finds, in one paragraph.

    ## Why is this bad?
    TODO: what happens to the gradient, with the numbers behind the threshold.

    ## Example
    ```python
    import torch.nn as nn
    ```

    Use instead:
    ```python
    import torch.nn as nn
    ```

    ## References
    - TODO: the paper or documentation the rule rests on
    """

    code = "{code}"
    name = "{name}"
    severity = Severity.{severity_member}
    summary = "TODO: one line for `gradlint rules`"
    #: new rules start in preview: enabled only with --preview until they are done
    preview = True
    options: dict = {{}}
    #: the rule's tests: each runs with only this rule selected
    VALID = [
        Valid(
            """
            import torch.nn as nn
            """
        ),
    ]
    INVALID: list[Invalid] = [
        # TODO: Invalid("""<a model this rule must report>""", line=N), N the line it reports on
        # (and fixed="""<the source its fix gives>""" when the rule has a fix)
    ]

    def check(self, graph, ctx) -> None:
        """Per model graph: read ``graph`` (and the flow profile, ``rules._common.flow_hazards``),
        never the source; report with ``ctx.report(span, message, help=...)``."""
'''

FIXTURE = '''"""Fixture of {code} ({name}): TODO, a realistic model the rule must report."""

import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)  # {severity}: {code}

    def forward(self, x):
        return self.fc(x)
'''


def next_code(rules_dir: Path, series: str) -> str:
    """The next free code of ``series`` (``GL3`` -> ``GL306`` after GL305)."""
    if not re.fullmatch(r"GL\d", series):
        raise SystemExit(f"--series must be GL1 ... GL9, not {series!r}")
    used = set()
    for path in rules_dir.glob("*.py"):
        used |= set(re.findall(r'^\s+code = "(GL\d{3})"', path.read_text(encoding="utf-8"), re.M))
    for n in range(1, 100):
        code = f"{series}{n:02d}"
        if code not in used:
            return code
    raise SystemExit(f"no free code left in {series}")


def scaffold(name: str, series: str, severity: str, root: Path) -> tuple[Path, Path, str]:
    if not re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", name):
        raise SystemExit(f"NAME must be kebab-case with at least two words (`deep-gated-stack`), not {name!r}")
    if severity not in ("error", "warning", "info"):
        raise SystemExit("--severity must be error, warning or info")
    rules_dir = root / "rules"
    module = name.replace("-", "_")
    target = rules_dir / f"{module}.py"
    fixture = root / "fixtures" / "models" / f"{module}.py"
    for path in (target, fixture):
        if path.exists():
            raise SystemExit(f"{path} exists already")
    for path in rules_dir.glob("*.py"):
        if f'name = "{name}"' in path.read_text(encoding="utf-8"):
            raise SystemExit(f"the name {name!r} is taken by {path}")
    code = next_code(rules_dir, series)
    cls = "".join(part.capitalize() for part in name.split("-"))
    text = TEMPLATE.format(cls=cls, code=code, name=name, severity_member=severity.upper())
    target.write_text(text, encoding="utf-8")
    fixture.parent.mkdir(parents=True, exist_ok=True)
    fixture.write_text(FIXTURE.format(code=code, name=name, severity=severity), encoding="utf-8")
    return target, fixture, code


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="kebab-case rule name, e.g. deep-gated-stack")
    ap.add_argument(
        "--series", required=True, help="the code series: GL1 activations, GL2 init, GL3 architecture, GL4 training"
    )
    ap.add_argument("--severity", default="warning")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = ap.parse_args(argv)
    target, fixture, code = scaffold(args.name, args.series, args.severity, args.root)
    print(f"{code} {args.name}: wrote {target} and {fixture}")
    if args.root.resolve() == ROOT:
        # the rule reference and the configuration schema (which names every rule) list the new
        # rule: the rules are discovered, so this process sees it
        import json

        from gradlint.docs import render_rules_markdown
        from gradlint.schema import config_schema

        (ROOT / "docs" / "rules.md").write_text(render_rules_markdown(), encoding="utf-8")
        (ROOT / "docs" / "gradlint.schema.json").write_text(
            json.dumps(config_schema(), indent=2) + "\n", encoding="utf-8"
        )
        print("regenerated docs/rules.md and docs/gradlint.schema.json")
    print(
        "next: write check() and the examples, then `.venv/bin/python -m pytest --update-snapshots` "
        "(the docs and the rule's snapshot) and `make test`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
