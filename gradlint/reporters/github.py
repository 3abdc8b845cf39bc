"""GitHub Actions workflow commands: ``::error file=…,line=…,col=…,endLine=…,endColumn=…,title=…::message``.

GitHub turns each line into an annotation on the file. Paths are relative to the
repository: ``$GITHUB_WORKSPACE`` when set (the checkout), else ``root``, else the current
directory. Escaping follows the Actions toolkit: in the message ``%``, CR and LF become
``%25``, ``%0D``, ``%0A``; property values also escape ``:`` and ``,`` as ``%3A``, ``%2C``.
"""

from __future__ import annotations

import os

from gradlint.reporters import relative_path, verdict_line
from gradlint.vocab import Severity

_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(d, root: str | None = None) -> str:
    """The workflow command of one finding."""
    props = [("file", relative_path(d.path, root))]
    message = d.message
    if d.cell is not None:
        # lines count within the notebook cell: they would point at the wrong line of the .ipynb
        # file's JSON, so the position goes into the message and the annotation is on the file
        message = f"cell {d.cell}: line {d.line}, column {d.column}: {message}"
    else:
        props.append(("line", d.line))
        if d.end_line == d.line:
            # GitHub only takes columns on a one-line span
            props += [("col", d.column), ("endLine", d.end_line), ("endColumn", d.end_column)]
        else:
            props.append(("endLine", d.end_line))
    props.append(("title", f"{d.code} ({d.name})"))
    verdict = verdict_line(d)
    if verdict:
        message = f"{message}\n{verdict}"
    head = ",".join(f"{key}={escape_property(str(value))}" for key, value in props)
    return f"::{_COMMAND.get(d.severity, 'warning')} {head}::{escape_data(message)}"


def render(diagnostics, root: str | None = None, **_) -> str:
    root = os.environ.get("GITHUB_WORKSPACE") or root
    return "".join(annotation(d, root) + "\n" for d in diagnostics)
