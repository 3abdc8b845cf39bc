"""The command line: a thin click layer over the engine, reporters and graph dumps.

The group is here; ``check`` (``check.py``) and the other commands (``commands.py``) are added to it.
Below them: ``output`` (exit codes, -q/-s/-v, colour, the summary line), ``settings`` (rule selection,
configuration, cache), ``fixing`` (--fix, --diff, --add-noqa), ``dynamic``, ``stdin`` and ``watch``.
"""

from __future__ import annotations

import click

from gradlint import __version__
from gradlint.cli import check, commands, output


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradlint")
def cli() -> None:
    """Find the causes of vanishing and exploding gradients in PyTorch model code."""
    # each command starts from the defaults (one process may run several)
    output.level, output.color_mode = output.NORMAL, "auto"


cli.add_command(check.check)
cli.add_command(commands.rule_cmd)
cli.add_command(commands.rules_cmd)
cli.add_command(commands.schema_cmd)
cli.add_command(commands.graph_cmd)
cli.add_command(commands.server_cmd)


def main() -> None:
    cli(prog_name="gradlint")
