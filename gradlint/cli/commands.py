"""The commands besides ``check``: ``rule``, ``rules``, ``schema``, ``graph`` and ``server``."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys

import click

from gradlint import install_hint
from gradlint.cli.output import EXIT_ERROR, _fail, _use_color


@click.command("rule")
@click.argument("code")
@click.option(
    "--pager/--no-pager",
    default=None,
    help="Page the documentation (default: on a terminal, through $GRADLINT_PAGER, $PAGER or less, as git does).",
)
def rule_cmd(code, pager):
    """Explain one rule: its documentation, levels, options and examples (markdown; rendered on a terminal)."""
    from gradlint.rule import all_rules, rule_by_code

    rule = rule_by_code(code)
    if rule is None:
        names = [r.code for r in all_rules()] + [r.name for r in all_rules()]
        close = difflib.get_close_matches(code, names, n=1)
        _fail(
            f"unknown rule `{code}`" + (f"; did you mean `{close[0]}`?" if close else "; `gradlint rules` lists them")
        )
        sys.exit(EXIT_ERROR)
    from gradlint.docs import render_markdown, rule_markdown

    text = rule_markdown(rule)
    terminal = sys.stdout.isatty()
    if not terminal:
        click.echo(text, nl=False)  # markdown, for a file or another program
        return
    width = min(shutil.get_terminal_size((100, 40)).columns, 100)
    rendered = render_markdown(text, width=width, color=_use_color(sys.stdout))
    if pager is False or os.environ.get("GRADLINT_PAGER", os.environ.get("PAGER")) == "":
        click.echo(rendered, nl=False)
        return
    # as git: less quits at once when it all fits (F), keeps colours (R) and the screen (X)
    os.environ.setdefault("LESS", "FRX")
    if os.environ.get("GRADLINT_PAGER"):
        os.environ["PAGER"] = os.environ["GRADLINT_PAGER"]
    click.echo_via_pager(rendered, color=_use_color(sys.stdout))


@click.command("rules")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rules_cmd(output_format):
    """List every rule with the levels its findings can have."""
    from gradlint.rule import all_rules

    rules = all_rules()
    if output_format == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "code": r.code,
                        "name": r.name,
                        "severity": r.severity,
                        "severities": r.levels(),
                        "summary": r.summary,
                        "options": r.options,
                    }
                    for r in rules
                ],
                indent=2,
            )
        )
        return
    for r in rules:
        click.echo(f"{r.code}  {r.name:<30} {'/'.join(r.levels()):<19} {r.summary}")
    click.echo(
        "\nA rule with several levels gives each finding the one its numbers call for (a gradient predicted "
        "100x beyond its threshold is an error, for instance): `gradlint rule CODE` says when. --fail-level "
        "sets which levels fail the run (default: warning and error)."
    )


@click.command("schema")
@click.option("--pyproject", is_flag=True, help="A schema for a whole pyproject.toml that checks its [tool.gradlint].")
def schema_cmd(pyproject):
    """Print the JSON Schema of the configuration ([tool.gradlint], or a gradlint.toml), for editors."""
    from gradlint.schema import config_schema, pyproject_schema

    click.echo(json.dumps(pyproject_schema() if pyproject else config_schema(), indent=2))


@click.command("graph")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text", show_default=True)
@click.option("--model", "model", metavar="CLASS", help="Only this model class.")
@click.option("--flow", is_flag=True, help="Print the predicted gradient-flow profile per layer instead.")
@click.option(
    "--as-checked",
    is_flag=True,
    help="The graphs as `check` builds them: models as the script configures them, blocks marked "
    "when checked inside their model, the sequence length the training code uses.",
)
def graph_cmd(file, fmt, model, flow, as_checked):
    """Print the layer graph gradlint builds for FILE (or, with --flow, its flow profile)."""
    import ast

    from gradlint.graph.builder import build_graphs
    from gradlint.graph.dump import RENDERERS
    from gradlint.text import decode

    try:
        with open(file, "rb") as fh:
            data = fh.read()
        tree = ast.parse(decode(data), filename=file)
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
        sys.exit(EXIT_ERROR)
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        where = f":{exc.lineno}" if getattr(exc, "lineno", None) else ""
        _fail(f"cannot parse {file}{where}: {getattr(exc, 'msg', None) or exc}")
        sys.exit(EXIT_ERROR)
    if as_checked:
        from gradlint.engine import checked_graphs
        from gradlint.text import split_lines

        graphs = checked_graphs(tree, file, split_lines(decode(data)))[1]
    else:
        graphs = build_graphs(tree, file)
    if model:
        graphs = [g for g in graphs if g.name == model]
        if not graphs:
            _fail(f"no model class `{model}` in {file}")
            sys.exit(EXIT_ERROR)
    if flow:
        from gradlint.flow import dump as flow_dump

        if fmt == "dot":
            _fail("--flow prints text or json, not dot")
            sys.exit(EXIT_ERROR)
        click.echo((flow_dump.render_json if fmt == "json" else flow_dump.render_text)(graphs), nl=False)
        return
    click.echo(RENDERERS[fmt](graphs), nl=False)


@click.command("server")
def server_cmd():
    """Run the language server over stdio (needs torch-gradlint[lsp]); editors start it."""
    try:
        import pygls  # noqa: F401
    except ImportError:
        _fail(f"the language server needs pygls: {install_hint('lsp')}")
        sys.exit(EXIT_ERROR)
    from gradlint.server import main as serve

    serve()
