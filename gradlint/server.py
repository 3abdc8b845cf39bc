"""The language server: ``gradlint server`` (pygls 2.x over stdio, extra ``torch-gradlint[lsp]``).

A thin adapter around :func:`gradlint.engine.analyse_source`; it never runs the dynamic mode.

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

This module holds the server and its handlers; what they send (positions, diagnostics,
edits, code actions) is made by :mod:`gradlint.lsp_convert`.

pygls and lsprotocol are imported only by :func:`create_server` (and :func:`main`) and inside
the functions of :mod:`gradlint.lsp_convert`, so that importing this module, or ``gradlint``
itself, stays light.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradlint import __version__, install_hint
from gradlint.diagnostics import Diagnostic
from gradlint.engine import analyse_source
from gradlint.lsp_convert import (
    Linted,
    chosen_findings,
    code_actions,
    document_path,
    lsp_diagnostics,
)
from gradlint.settings import Settings
from gradlint.text import document_lines

logger = logging.getLogger("gradlint.server")

DEFAULT_DEBOUNCE_MS = 150
#: set in the server's environment to register the ``gradlint.debug`` command (tests only)
DEBUG_ENV = "GRADLINT_LSP_DEBUG"
URI_SCHEMES = ("file", "untitled")


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
            from gradlint import config_resolve
            from gradlint.config import ConfigError

            if uri.startswith("untitled:"):
                root = self.workspace.root_path
                if not root:
                    return Settings()
                where = Path(root) / "untitled.py"
            else:
                where = Path(path)
            try:
                return config_resolve.settings_for(where)
            except ConfigError as exc:
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
            findings = analyse_source(text, path, settings)
            lines = document_lines(text)
            bom = 1 if text.startswith("\ufeff") else 0  # the engine drops a BOM before columns
            out = lsp_diagnostics(findings, uri, path, version, lines, encoding, bom, self.lines_of)
            return Linted(uri, version, text, path, settings, encoding, findings, out, lines=lines)

        def lines_of(self, path: str) -> list[str] | None:
            """The lines of another file (open in the editor, else on disk), or None."""
            doc = self.workspace.text_documents.get(from_fs_path(os.path.abspath(path)))
            if doc is not None:
                return document_lines(doc.source)
            try:
                return document_lines(Path(path).read_text(encoding="utf-8"))
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
        chosen = chosen_findings(linted, params.context.diagnostics, params.range)
        if not chosen:
            return None
        findings = linted.findings
        if any(findings[i].fix is not None and not findings[i].fix.edits for i in chosen):
            findings = await asyncio.get_running_loop().run_in_executor(ls.linter, ls.with_fixes, linted)
        return code_actions(linted, findings, chosen, ls.client_capabilities) or None

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
