"""What the language server (:mod:`gradlint.server`) sends, made from gradlint's findings: the
LSP's positions in the negotiated encoding, diagnostics, text and workspace edits, and the code
actions of the findings (their fixes, and ``# noqa`` suppressions). None of it holds the
server's state.

lsprotocol and pygls are imported inside the functions that build their objects, so that
importing this module stays light.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gradlint import rule_doc_url
from gradlint.diagnostics import Diagnostic, Edit
from gradlint.settings import Settings
from gradlint.vocab import Applicability, Severity

#: findings a ``# noqa`` comment cannot hide: the file did not parse, gradlint crashed,
#: or the finding is about a suppression comment itself
UNSUPPRESSIBLE = frozenset({"GL001", "GL002", "GL003"})


# ---------------------------------------------------------------- positions (pure)
def code_units(text: str, encoding: str) -> int:
    """Length of ``text`` in the client's position units."""
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def to_position(lines: list[str], line: int, column: int, encoding: str) -> tuple[int, int]:
    """gradlint's 1-based (line, character column) -> the LSP's 0-based (line, code units).

    Positions past the end of a line or of the document are clamped to it."""
    if not lines:
        return 0, 0
    row = min(max(line, 1), len(lines)) - 1
    text = lines[row]
    if line > len(lines):
        col = len(text)
    else:
        col = min(max(column, 1) - 1, len(text))
    if encoding == "utf-32" or text.isascii():
        return row, col
    return row, code_units(text[:col], encoding)


def suppression_edit(text: str, lines: list[str], line: int, code: str) -> Edit | None:
    """The edit that makes ``# noqa`` hide ``code`` on 1-based ``line``, or None (the code is
    there already, or a comment cannot go there): :func:`gradlint.suppressions.noqa_edits`."""
    from gradlint.suppressions import noqa_edits

    edits, _ = noqa_edits(text, lines, {line: [code]})
    return edits[0] if edits else None


# ---------------------------------------------------------------- lint results (pure)
@dataclass
class Linted:
    """One lint of one version of a document."""

    uri: str
    version: int | None
    text: str
    path: str
    settings: Settings
    encoding: str
    findings: list[Diagnostic]
    diagnostics: list  # lsprotocol Diagnostic, in the order of ``findings``
    #: the findings with their fix edits (libcst), computed on the first code action
    fixed: list[Diagnostic] | None = None
    lines: list[str] = field(default_factory=list)


def document_path(uri: str) -> str | None:
    """The file system path of a ``file:`` URI, the URI itself for ``untitled:``."""
    from pygls.uris import to_fs_path

    if uri.startswith("file:"):
        return to_fs_path(uri)
    if uri.startswith("untitled:"):
        return uri
    return None


# ---------------------------------------------------------------- LSP objects
def lsp_diagnostics(findings: list[Diagnostic], uri, path, version, lines, encoding, bom, lines_of) -> list:
    """The findings as lsprotocol Diagnostics, in their order; ``lines_of(path)`` gives the lines
    of another file that a related location is in (None: not known)."""
    from lsprotocol import types
    from pygls.uris import from_fs_path

    severities = {
        Severity.ERROR: types.DiagnosticSeverity.Error,
        Severity.WARNING: types.DiagnosticSeverity.Warning,
        Severity.INFO: types.DiagnosticSeverity.Information,
    }

    def pos(line, column):
        row, col = to_position(lines, line, column + (bom if line == 1 else 0), encoding)
        return types.Position(line=row, character=col)

    out = []
    for index, d in enumerate(findings):
        related = []
        for r in d.related:
            if r.path == path:
                where_uri, where_lines = uri, lines
            else:
                where_uri, where_lines = from_fs_path(os.path.abspath(r.path)), lines_of(r.path)
            if where_lines is None:
                p = types.Position(line=max(r.line, 1) - 1, character=max(r.column, 1) - 1)
            else:
                p = types.Position(*to_position(where_lines, r.line, r.column, encoding))
            related.append(
                types.DiagnosticRelatedInformation(
                    location=types.Location(uri=where_uri, range=types.Range(start=p, end=p)),
                    message=r.message,
                )
            )
        message = d.message
        if d.help:
            message += f"\nhelp: {d.help}"
        out.append(
            types.Diagnostic(
                range=types.Range(start=pos(d.line, d.column), end=pos(d.end_line, d.end_column)),
                severity=severities.get(d.severity, types.DiagnosticSeverity.Warning),
                code=d.code,
                code_description=types.CodeDescription(href=rule_doc_url(d.code, d.name)),
                source="gradlint",
                message=message,
                related_information=related or None,
                data={"version": version, "index": index, "code": d.code},
            )
        )
    return out


def text_edit(linted: Linted, e: Edit):
    from lsprotocol import types

    start = to_position(linted.lines, e.line, e.column, linted.encoding)
    end = to_position(linted.lines, e.end_line, e.end_column, linted.encoding)
    return types.TextEdit(
        range=types.Range(start=types.Position(*start), end=types.Position(*end)),
        new_text=e.content,
    )


def workspace_edit(linted: Linted, edits, caps):
    """The edits to ``linted``'s document, versioned when the client's capabilities ``caps`` take
    ``documentChanges``."""
    from lsprotocol import types

    text_edits = [text_edit(linted, e) for e in edits]
    versioned = bool(
        caps.workspace and caps.workspace.workspace_edit and caps.workspace.workspace_edit.document_changes
    )
    if versioned and linted.version is not None:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri=linted.uri, version=linted.version),
                    edits=text_edits,
                )
            ]
        )
    return types.WorkspaceEdit(changes={linted.uri: text_edits})


# ---------------------------------------------------------------- code actions
def chosen_findings(linted: Linted, diagnostics, range_) -> list[int]:
    """The indices of the findings a code action request is about: those of the gradlint
    diagnostics it sends back, else those its range touches."""
    chosen: list[int] = []
    for diag in diagnostics:
        if diag.source != "gradlint":
            continue
        index = _index_of(diag, linted)
        if index is not None and index not in chosen:
            chosen.append(index)
    if not diagnostics:  # no context given: what the range touches
        chosen = [i for i, d in enumerate(linted.diagnostics) if _overlaps(d.range, range_)]
    return chosen


def code_actions(linted: Linted, findings: list[Diagnostic], chosen: list[int], caps) -> list:
    """The quick fixes of the ``chosen`` findings (``findings``: with their fix edits): each
    one's fix, then "Suppress GLxxx on this line"; ``caps``: the client's capabilities."""
    from lsprotocol import types

    actions, suppressed = [], set()
    for i in chosen:
        d, lsp = findings[i], linted.diagnostics[i]
        if d.fix is not None and d.fix.edits:
            unsafe = d.fix.applicability != Applicability.SAFE
            title = d.fix.title[:1].upper() + d.fix.title[1:]
            actions.append(
                types.CodeAction(
                    title=f"{title} ({d.code}{', unsafe fix' if unsafe else ''})",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[lsp],
                    is_preferred=not unsafe,
                    edit=workspace_edit(linted, d.fix.edits, caps),
                )
            )
    for i in chosen:
        d, lsp = findings[i], linted.diagnostics[i]
        if d.code in UNSUPPRESSIBLE or (d.line, d.code) in suppressed:
            continue
        edit = suppression_edit(linted.text, linted.lines, d.line, d.code)
        if edit is None:
            continue
        suppressed.add((d.line, d.code))
        actions.append(
            types.CodeAction(
                title=f"Suppress {d.code} on this line",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[lsp],
                edit=workspace_edit(linted, [edit], caps),
            )
        )
    return actions


def _index_of(diag, linted: Linted) -> int | None:
    """The finding a diagnostic sent back by the client stands for."""
    data = diag.data
    if isinstance(data, dict) and data.get("version") == linted.version:
        index = data.get("index")
        if (
            isinstance(index, int)
            and 0 <= index < len(linted.diagnostics)
            and linted.diagnostics[index].code == diag.code
        ):
            return index
    for i, d in enumerate(linted.diagnostics):  # clients that do not keep ``data``
        if d.code == diag.code and d.range == diag.range:
            return i
    return None


def _overlaps(a, b) -> bool:
    def key(p):
        return (p.line, p.character)

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)
