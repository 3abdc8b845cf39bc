"""The language server: ``gradlint server`` (pygls 2.x over stdio, extra ``torch-gradlint[lsp]``).

A thin adapter around :func:`gradlint.engine.lint_source`; it never runs the dynamic mode.

- Diagnostics on open, change (debounced, 150 ms by default) and save. Linting runs in a
  worker thread, off the event loop; a result whose document version is no longer current
  is dropped.
- Each diagnostic carries its rule code with a link to the rule's documentation, the
  related locations, and ``data`` that links it to its code actions.
- Code actions (quick fixes): the rule's fix where one exists (preferred when safe, the
  title says when it is unsafe), and "Suppress GLxxx on this line" (``# noqa: GLxxx``).
- Positions are converted from gradlint's 1-based character columns to the negotiated
  position encoding: UTF-16 code units by default, UTF-8 bytes or UTF-32 when the client
  offers them (``general.positionEncodings``).
- Settings come from the nearest ``pyproject.toml``/``gradlint.toml`` of each file, read
  when it is opened and again when it is saved.

``initializationOptions`` (all optional): ``{"debounceMs": 150}``.

pygls and lsprotocol are imported only by :func:`create_server` (and :func:`main`), so
that importing this module, or ``gradlint`` itself, stays light.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gradlint import __version__, docs_url, install_hint
from gradlint.diagnostics import Diagnostic, Edit
from gradlint.engine import Settings, lint_source
from gradlint.text import LINE_BREAK
from gradlint.vocab import Severity

logger = logging.getLogger("gradlint.server")

DEFAULT_DEBOUNCE_MS = 150
#: the generated rule reference; each rule has a section (GitHub heading anchors)
DOCS_URL = docs_url("rules.md")
#: set in the server's environment to register the ``gradlint.debug`` command (tests only)
DEBUG_ENV = "GRADLINT_LSP_DEBUG"
#: findings a ``# noqa`` comment cannot hide: the file did not parse, gradlint crashed,
#: or the finding is about a suppression comment itself
UNSUPPRESSIBLE = frozenset({"GL001", "GL002", "GL003"})
URI_SCHEMES = ("file", "untitled")


def rule_doc_url(code: str, name: str) -> str:
    """The rule's section of the generated reference (as the SARIF reporter links it)."""
    return f"{DOCS_URL}#{code.lower()}-{name}"


# ---------------------------------------------------------------- positions (pure)
def split_lines(text: str) -> list[str]:
    """The document's lines as the LSP counts them (``\\n``, ``\\r\\n`` or ``\\r``)."""
    return LINE_BREAK.split(text)


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


# ---------------------------------------------------------------- the server
class _Answered:
    """A message already answered (with an error): pygls's handle_message skips a message whose
    ``jsonrpc`` is not "2.0"."""

    jsonrpc = "answered"


_ANSWERED = _Answered()


def create_server():
    """The configured pygls ``LanguageServer`` (not started)."""
    from lsprotocol import types
    from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
    from pygls.lsp.server import LanguageServer
    from pygls.protocol import LanguageServerProtocol
    from pygls.uris import from_fs_path

    severities = {
        Severity.ERROR: types.DiagnosticSeverity.Error,
        Severity.WARNING: types.DiagnosticSeverity.Warning,
        Severity.INFO: types.DiagnosticSeverity.Information,
    }

    class GradlintProtocol(LanguageServerProtocol):
        """pygls answers a request whose params do not deserialize with only a
        ``window/showMessage``; JSON-RPC wants an error response carrying the request's id."""

        def structure_message(self, data):
            try:
                return super().structure_message(data)
            except JsonRpcException as exc:
                if not (isinstance(data, dict) and "id" in data and "method" in data and "jsonrpc" in data):
                    raise  # a notification or a response: nothing to answer
                cause = exc.__cause__ or exc
                text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
                code = getattr(exc, "CODE", JsonRpcInvalidParams.CODE)
                self._send_response(
                    data["id"],
                    error=types.ResponseError(code=code, message=f"invalid params for {data['method']}: {text}"[:500]),
                )
                return _ANSWERED  # handled: handle_message ignores it

    class GradlintServer(LanguageServer):
        def __init__(self):
            super().__init__(
                "gradlint",
                __version__,
                text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                protocol_cls=GradlintProtocol,
            )
            self.debounce = DEFAULT_DEBOUNCE_MS / 1000
            self.linter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradlint-lint")
            self.pending: dict[str, asyncio.Task] = {}
            self.results: dict[str, Linted] = {}
            self.settings: dict[str, Settings] = {}
            self.tracked: set[str] = set()
            self.config_warnings: set[str] = set()
            self.fixes_available = True
            self.lint_threads: set[str] = set()
            self.lint_count = 0

        # ------------------------------------------------ helpers
        @property
        def encoding(self) -> str:
            return str(self.workspace.position_encoding or "utf-16")

        def warn(self, message: str) -> None:
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, message))

        def settings_for(self, uri: str, path: str) -> Settings:
            """Settings from the file's nearest configuration; defaults (and a warning) on error."""
            from gradlint import config

            if uri.startswith("untitled:"):
                root = self.workspace.root_path
                if not root:
                    return Settings()
                where = Path(root) / "untitled.py"
            else:
                where = Path(path)
            try:
                return config.settings_for(where)
            except config.ConfigError as exc:
                message = f"gradlint: {exc} — linting with the default settings"
                if message not in self.config_warnings:
                    self.config_warnings.add(message)
                    self.warn(message)
                return Settings()

        def schedule(self, uri: str, delay: float) -> None:
            previous = self.pending.pop(uri, None)
            if previous is not None:
                previous.cancel()
            self.pending[uri] = asyncio.ensure_future(self.lint_later(uri, delay))

        async def lint_later(self, uri: str, delay: float) -> None:
            try:
                if delay > 0:
                    await asyncio.sleep(delay)
                if uri not in self.tracked:
                    return
                doc = self.workspace.get_text_document(uri)
                version, text = doc.version, doc.source
                path = document_path(uri) or uri
                settings = self.settings.get(uri) or Settings()
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self.linter, self.lint, uri, version, text, path, settings, self.encoding
                )
                current = self.workspace.text_documents.get(uri)
                if uri not in self.tracked or current is None or current.version != version:
                    return  # stale: a newer version is (or will be) linted
                self.results[uri] = result
                self.text_document_publish_diagnostics(
                    types.PublishDiagnosticsParams(uri=uri, diagnostics=result.diagnostics, version=version)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not take the editor's server down
                logger.exception("linting %s failed", uri)
                self.window_log_message(
                    types.LogMessageParams(
                        types.MessageType.Error, f"gradlint: linting {uri} failed: {type(exc).__name__}: {exc}"
                    )
                )
            finally:
                if self.pending.get(uri) is asyncio.current_task():
                    del self.pending[uri]

        def lint(self, uri, version, text, path, settings, encoding) -> Linted:
            """Runs in the worker thread: lint, then convert to LSP diagnostics."""
            self.lint_threads.add(threading.current_thread().name)
            self.lint_count += 1
            findings = lint_source(text, path, settings)
            lines = split_lines(text)
            bom = 1 if text.startswith("\ufeff") else 0  # the engine drops a BOM before columns
            out = []
            for index, d in enumerate(findings):
                out.append(self.lsp_diagnostic(d, index, uri, path, version, lines, encoding, bom))
            return Linted(uri, version, text, path, settings, encoding, findings, out, lines=lines)

        def lsp_diagnostic(self, d: Diagnostic, index, uri, path, version, lines, encoding, bom):
            def pos(line, column):
                row, col = to_position(lines, line, column + (bom if line == 1 else 0), encoding)
                return types.Position(line=row, character=col)

            related = []
            for r in d.related:
                if r.path == path:
                    where_uri, where_lines = uri, lines
                else:
                    where_uri, where_lines = from_fs_path(os.path.abspath(r.path)), self.lines_of(r.path)
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
            return types.Diagnostic(
                range=types.Range(start=pos(d.line, d.column), end=pos(d.end_line, d.end_column)),
                severity=severities.get(d.severity, types.DiagnosticSeverity.Warning),
                code=d.code,
                code_description=types.CodeDescription(href=rule_doc_url(d.code, d.name)),
                source="gradlint",
                message=message,
                related_information=related or None,
                data={"version": version, "index": index, "code": d.code},
            )

        def lines_of(self, path: str) -> list[str] | None:
            """The lines of another file (open in the editor, else on disk), or None."""
            doc = self.workspace.text_documents.get(from_fs_path(os.path.abspath(path)))
            if doc is not None:
                return split_lines(doc.source)
            try:
                return split_lines(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                return None

        def with_fixes(self, linted: Linted) -> list[Diagnostic]:
            """Runs in the worker thread: the findings with their fix edits (libcst)."""
            if linted.fixed is not None:
                return linted.fixed
            fixed = linted.findings
            if self.fixes_available and any(d.fix is not None and not d.fix.edits for d in linted.findings):
                try:
                    from gradlint.fixes import lint_with_edits

                    again = lint_with_edits(linted.text, linted.path, dataclasses.replace(linted.settings, fixes=True))
                except ImportError:  # the fix stage is not there (yet): offer the fixes we have
                    self.fixes_available = False
                else:
                    by_key = {(d.line, d.column, d.code, d.message): d for d in again}
                    fixed = [by_key.get((d.line, d.column, d.code, d.message), d) for d in linted.findings]
            linted.fixed = fixed
            return fixed

        def text_edit(self, linted: Linted, e: Edit):
            start = to_position(linted.lines, e.line, e.column, linted.encoding)
            end = to_position(linted.lines, e.end_line, e.end_column, linted.encoding)
            return types.TextEdit(
                range=types.Range(start=types.Position(*start), end=types.Position(*end)),
                new_text=e.content,
            )

        def workspace_edit(self, linted: Linted, edits) -> types.WorkspaceEdit:
            text_edits = [self.text_edit(linted, e) for e in edits]
            caps = self.client_capabilities
            versioned = bool(
                caps.workspace and caps.workspace.workspace_edit and caps.workspace.workspace_edit.document_changes
            )
            if versioned and linted.version is not None:
                return types.WorkspaceEdit(
                    document_changes=[
                        types.TextDocumentEdit(
                            text_document=types.OptionalVersionedTextDocumentIdentifier(
                                uri=linted.uri, version=linted.version
                            ),
                            edits=text_edits,
                        )
                    ]
                )
            return types.WorkspaceEdit(changes={linted.uri: text_edits})

    server = GradlintServer()

    # ------------------------------------------------ lifecycle
    @server.feature(types.INITIALIZE)
    def initialize(ls: GradlintServer, params: types.InitializeParams):
        options = params.initialization_options or {}
        if isinstance(options, dict) and isinstance(options.get("debounceMs"), (int, float)):
            ls.debounce = max(0.0, options["debounceMs"] / 1000)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: GradlintServer, *args):
        for task in ls.pending.values():
            task.cancel()
        ls.pending.clear()
        ls.linter.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------ documents
    def wanted(doc: types.TextDocumentItem) -> bool:
        return doc.language_id == "python" and doc.uri.split(":", 1)[0] in URI_SCHEMES

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GradlintServer, params: types.DidOpenTextDocumentParams):
        doc = params.text_document
        if not wanted(doc):
            return
        ls.tracked.add(doc.uri)
        ls.settings[doc.uri] = ls.settings_for(doc.uri, document_path(doc.uri) or doc.uri)
        ls.schedule(doc.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GradlintServer, params: types.DidChangeTextDocumentParams):
        uri = params.text_document.uri
        if uri in ls.tracked:
            ls.schedule(uri, ls.debounce)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: GradlintServer, params: types.DidSaveTextDocumentParams):
        uri = params.text_document.uri
        if uri in ls.tracked:
            ls.settings[uri] = ls.settings_for(uri, document_path(uri) or uri)  # the configuration may have changed
            ls.schedule(uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GradlintServer, params: types.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        if uri not in ls.tracked:
            return
        ls.tracked.discard(uri)
        task = ls.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        ls.results.pop(uri, None)
        ls.settings.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # ------------------------------------------------ code actions
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix], resolve_provider=False),
    )
    async def code_action(ls: GradlintServer, params: types.CodeActionParams):
        uri = params.text_document.uri
        linted = ls.results.get(uri)
        doc = ls.workspace.text_documents.get(uri)
        if linted is None or doc is None or doc.version != linted.version:
            return None  # diagnostics for this version are still coming
        only = params.context.only
        if only and not any(
            k == types.CodeActionKind.QuickFix or types.CodeActionKind.QuickFix.startswith(f"{k}.") for k in only
        ):
            return None
        chosen: list[int] = []
        for diag in params.context.diagnostics:
            if diag.source != "gradlint":
                continue
            index = _index_of(diag, linted)
            if index is not None and index not in chosen:
                chosen.append(index)
        if not params.context.diagnostics:  # no context given: what the range touches
            chosen = [i for i, d in enumerate(linted.diagnostics) if _overlaps(d.range, params.range)]
        if not chosen:
            return None
        findings = linted.findings
        if any(findings[i].fix is not None and not findings[i].fix.edits for i in chosen):
            findings = await asyncio.get_running_loop().run_in_executor(ls.linter, ls.with_fixes, linted)
        actions, suppressed = [], set()
        for i in chosen:
            d, lsp = findings[i], linted.diagnostics[i]
            if d.fix is not None and d.fix.edits:
                unsafe = d.fix.applicability != "safe"
                title = d.fix.title[:1].upper() + d.fix.title[1:]
                actions.append(
                    types.CodeAction(
                        title=f"{title} ({d.code}{', unsafe fix' if unsafe else ''})",
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=[lsp],
                        is_preferred=not unsafe,
                        edit=ls.workspace_edit(linted, d.fix.edits),
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
                    edit=ls.workspace_edit(linted, [edit]),
                )
            )
        return actions or None

    if os.environ.get(DEBUG_ENV):

        @server.command("gradlint.debug")
        def debug(ls: GradlintServer, *args):
            """What the tests check from inside: no torch, linting off the event loop."""
            return {
                "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
                "dynamic": sorted(m for m in sys.modules if m.startswith("gradlint.dynamic")),
                "lint_threads": sorted(ls.lint_threads),
                "event_loop_thread": threading.current_thread().name,
                "lint_count": ls.lint_count,
                "encoding": ls.encoding,
                "debounce_ms": ls.debounce * 1000,
            }

    return server


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


def main() -> None:
    """Serve over stdio until the client says exit (``gradlint server``)."""
    try:
        server = create_server()
    except ImportError as exc:
        sys.stderr.write(
            f"gradlint: error: the language server needs pygls ({exc.name or exc}): {install_hint('lsp')}\n"
        )
        raise SystemExit(2) from None
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    server.start_io()


if __name__ == "__main__":
    main()
