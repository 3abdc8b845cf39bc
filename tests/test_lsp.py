"""The language server, end to end: a real LSP client (pytest-lsp) talks to
``python -m gradlint.server`` over stdio, with the capabilities real editors send."""

from __future__ import annotations

import ast
import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp", reason="the lsp tests need pytest-lsp (dev extra)")
pytest.importorskip("pygls", reason="the language server needs pygls (lsp extra)")

from lsprotocol import types  # noqa: E402
from pygls.protocol import default_converter  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features  # noqa: E402

from gradlint import lsp_convert  # noqa: E402
from gradlint import server as gserver  # noqa: E402
from gradlint.diagnostics import Edit  # noqa: E402
from gradlint.engine import analyse_source  # noqa: E402
from gradlint.fixes import lint_with_edits  # noqa: E402
from gradlint.settings import Settings  # noqa: E402
from gradlint.text import document_lines  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30  # seconds; generous for a loaded 2-core machine

VSCODE = "visual-studio-code"  # no positionEncodings: UTF-16
NEOVIM = "neovim@v0.11.0"  # offers utf-8 first
EMACS = "emacs"  # offers utf-32 first

TOWER = """\
import torch.nn as nn

DEPTH = 8


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for _ in range(DEPTH):
            layers += [nn.Linear(64, 64), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
"""
FINDING_LINE = 11  # 1-based: the `layers += [...]` line
HEALTHY = TOWER.replace("DEPTH = 8", "DEPTH = 2")
WIDE = TOWER.replace("layers += [", 'tag = "🧪中文🐍"; layers += [')
BROKEN = TOWER.replace("nn.Sequential(*layers)", "nn.Sequential(*layers")


# ---------------------------------------------------------------- the client
def make_client() -> LanguageClient:
    """pytest-lsp's client, also recording every publishDiagnostics with its version."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []

    def publish(client: LanguageClient, params: types.PublishDiagnosticsParams):
        client.diagnostics[params.uri] = params.diagnostics
        client.published.append(params)

    register_lsp_features(client, {**DEFAULT_CLIENT_FEATURES, types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish})
    return client


CONFIG = ClientServerConfig(
    server_command=[sys.executable, "-m", "gradlint.server"],
    client_factory=make_client,
    server_env={**os.environ, gserver.DEBUG_ENV: "1", "PYTHONPATH": str(ROOT)},
)


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient):
    yield
    # bounded: after a test that failed before the session started, shutting down fails and
    # pytest-lsp would wait for the server's exit forever; the server is killed instead
    try:
        await asyncio.wait_for(lsp_client.shutdown_session(), TIMEOUT)
    finally:
        # shutdown_session returns at once when the session never started or the client
        # saw a fatal error; the server then never gets `exit`
        server = getattr(lsp_client, "_server", None)
        if server is not None and server.returncode is None:
            try:
                await asyncio.wait_for(server.wait(), 5 if lsp_client.capabilities and not lsp_client.error else 0.1)
            except asyncio.TimeoutError:
                server.kill()
                await server.wait()


def alive(client: LanguageClient) -> None:
    """Fail at once (rather than time out) when the server process has died."""
    server = getattr(client, "_server", None)
    if server is not None and server.returncode is not None:
        raise AssertionError(f"the language server exited with code {server.returncode}")


async def within(client: LanguageClient, awaitable):
    """``awaitable`` with a deadline: a server that stops answering fails the test, never hangs it."""
    return await asyncio.wait_for(awaitable, TIMEOUT)


async def start(client: LanguageClient, spec: str = VSCODE, debounce_ms: int | None = 0, root: Path | None = None):
    options = {} if debounce_ms is None else {"debounceMs": debounce_ms}
    return await within(
        client,
        client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(spec),
                initialization_options=options,
                root_uri=from_fs_path(str(root)) if root else None,
            )
        ),
    )


def open_doc(client: LanguageClient, path: Path, text: str, language: str = "python", version: int = 1) -> str:
    uri = from_fs_path(str(path))
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text),
        )
    )
    return uri


def change_doc(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def published(client: LanguageClient, uri: str, version: int | None) -> list[types.Diagnostic]:
    """The diagnostics published for ``uri`` at ``version`` (waits for them)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for params in reversed(client.published):
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)
        alive(client)
        await asyncio.sleep(0.01)
    raise AssertionError(f"no diagnostics for {uri} v{version}; got {[(p.uri, p.version) for p in client.published]}")


async def debug(client: LanguageClient) -> dict:
    return await within(
        client, client.workspace_execute_command_async(types.ExecuteCommandParams(command="gradlint.debug"))
    )


def units(text: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def offset(text: str, pos: types.Position, encoding: str) -> int:
    lines = text.splitlines(keepends=True)
    line = lines[pos.line] if pos.line < len(lines) else ""
    count = 0
    for i, ch in enumerate(line):
        if count >= pos.character:
            return sum(len(l) for l in lines[: pos.line]) + i
        count += units(ch, encoding)
    return sum(len(l) for l in lines[: pos.line]) + len(line.rstrip("\r\n"))


def apply(text: str, edit: types.WorkspaceEdit, uri: str, encoding: str = "utf-16") -> str:
    """Apply a workspace edit for ``uri`` the way an editor does."""
    if edit.document_changes:
        edits = [e for change in edit.document_changes if change.text_document.uri == uri for e in change.edits]
    else:
        edits = edit.changes[uri]
    spans = sorted(
        ((offset(text, e.range.start, encoding), offset(text, e.range.end, encoding), e.new_text) for e in edits),
        reverse=True,
    )
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def expected_range(text: str, code: str, encoding: str) -> types.Range:
    (d,) = [d for d in analyse_source(text, "x.py") if d.code == code]
    line = text.splitlines()[d.line - 1]
    return types.Range(
        start=types.Position(line=d.line - 1, character=units(line[: d.column - 1], encoding)),
        end=types.Position(line=d.end_line - 1, character=units(line[: d.end_column - 1], encoding)),
    )


# ---------------------------------------------------------------- diagnostics
@pytest.mark.asyncio
async def test_deep_sigmoid_stack_is_reported_then_cleared(client: LanguageClient, tmp_path):
    await start(client)
    path = tmp_path / "tower.py"
    uri = open_doc(client, path, TOWER)
    (diag,) = await published(client, uri, 1)
    assert diag.code == "GL101"
    assert diag.source == "gradlint"
    assert diag.range == expected_range(TOWER, "GL101", "utf-16")
    assert (
        TOWER.splitlines()[diag.range.start.line][diag.range.start.character : diag.range.end.character]
        == "nn.Sigmoid()"
    )
    assert diag.code_description.href.startswith("https://github.com/gradlint/gradlint/blob/main/docs/rules.md#gl101-")
    (finding,) = analyse_source(TOWER, str(path))
    severity = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}[finding.severity]
    assert diag.severity == severity
    assert finding.message in diag.message
    (related,) = diag.related_information
    assert related.location.uri == uri
    assert related.location.range.start.line == 2  # DEPTH = 8
    assert "DEPTH" in related.message

    change_doc(client, uri, 2, HEALTHY)
    assert await published(client, uri, 2) == []

    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert await published(client, uri, None) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("spec, encoding", [(VSCODE, "utf-16"), (NEOVIM, "utf-8"), (EMACS, "utf-32")])
async def test_positions_after_non_ascii_text_use_the_negotiated_encoding(
    client: LanguageClient, tmp_path, spec, encoding
):
    result = await start(client, spec)
    assert (result.capabilities.position_encoding or "utf-16") == encoding
    uri = open_doc(client, tmp_path / "wide.py", WIDE)
    (diag,) = await published(client, uri, 1)
    line = WIDE.splitlines()[FINDING_LINE - 1]
    begin = line.index("nn.Sigmoid()")
    assert diag.range.start == types.Position(line=FINDING_LINE - 1, character=units(line[:begin], encoding))
    assert diag.range.end == types.Position(
        line=FINDING_LINE - 1, character=units(line[: begin + len("nn.Sigmoid()")], encoding)
    )
    # the emoji and CJK before the finding really change the count in UTF-16 and UTF-8
    assert (units(line[:begin], encoding) != begin) == (encoding != "utf-32")


@pytest.mark.asyncio
async def test_a_syntax_error_is_gl001_and_the_server_goes_on(client: LanguageClient, tmp_path):
    await start(client)
    uri = open_doc(client, tmp_path / "broken.py", BROKEN)
    (diag,) = await published(client, uri, 1)
    assert diag.code == "GL001"
    assert diag.severity == types.DiagnosticSeverity.Error
    assert "cannot parse" in diag.message
    change_doc(client, uri, 2, TOWER)
    assert [d.code for d in await published(client, uri, 2)] == ["GL101"]


@pytest.mark.asyncio
async def test_only_python_documents_are_linted(client: LanguageClient, tmp_path):
    await start(client)
    other = open_doc(client, tmp_path / "notes.md", TOWER, language="markdown")
    uri = open_doc(client, tmp_path / "tower.py", TOWER)
    await published(client, uri, 1)
    assert other not in {p.uri for p in client.published}


@pytest.mark.asyncio
async def test_changes_are_debounced_and_only_the_latest_version_is_published(client: LanguageClient, tmp_path):
    await start(client, debounce_ms=None)  # the default, 150 ms
    assert (await debug(client))["debounce_ms"] == gserver.DEFAULT_DEBOUNCE_MS
    uri = open_doc(client, tmp_path / "tower.py", TOWER)
    await published(client, uri, 1)
    before = (await debug(client))["lint_count"]
    for version in range(2, 7):  # typing: five changes in quick succession
        change_doc(client, uri, version, TOWER + f"# {version}\n")
    assert [d.code for d in await published(client, uri, 6)] == ["GL101"]
    assert [p.version for p in client.published if p.uri == uri] == [1, 6]
    assert (await debug(client))["lint_count"] - before == 1


@pytest.mark.asyncio
async def test_linting_runs_off_the_event_loop_and_never_imports_torch(client: LanguageClient, tmp_path):
    await start(client)
    uri = open_doc(client, tmp_path / "tower.py", TOWER)
    await published(client, uri, 1)
    state = await debug(client)
    assert state["torch"] == [] and state["dynamic"] == []
    assert state["lint_threads"] and all(t.startswith("gradlint-lint") for t in state["lint_threads"])
    assert state["event_loop_thread"] not in state["lint_threads"]


@pytest.mark.parametrize("module", ["server.py", "lsp_convert.py"])
def test_the_server_modules_do_not_reach_the_dynamic_mode(module):
    tree = ast.parse((ROOT / "gradlint" / module).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.startswith(("torch", "gradlint.dynamic"))}, imported


@pytest.mark.asyncio
async def test_a_configuration_error_is_shown_and_defaults_are_used(client: LanguageClient, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\nselect = 5\n")
    await start(client, root=tmp_path)
    uri = open_doc(client, tmp_path / "tower.py", TOWER)
    assert [d.code for d in await published(client, uri, 1)] == ["GL101"]
    (message,) = client.messages
    assert message.type == types.MessageType.Warning
    assert "select" in message.message and "default" in message.message


@pytest.mark.asyncio
async def test_the_nearest_configuration_applies(client: LanguageClient, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.gradlint]\nignore = ["GL101", "GL301"]\n')
    await start(client, root=tmp_path)
    uri = open_doc(client, tmp_path / "tower.py", TOWER)
    assert await published(client, uri, 1) == []


@pytest.mark.asyncio
async def test_a_monorepo_gives_each_file_what_the_cli_gives_it(client: LanguageClient, tmp_path):
    from test_monorepo import EXPECTED, build_monorepo, check

    build_monorepo(tmp_path)
    await start(client, root=tmp_path)
    cli_found, _ = check(tmp_path, ".")
    for n, name in enumerate(sorted(EXPECTED)):
        path = tmp_path / name
        uri = open_doc(client, path, path.read_text(encoding="utf-8"))
        codes = sorted(str(d.code) for d in await published(client, uri, 1))
        assert codes == sorted(EXPECTED[name]) == sorted(cli_found.get(name, [])), name


# ---------------------------------------------------------------- code actions
async def actions_for(client: LanguageClient, uri: str, diag: types.Diagnostic) -> list[types.CodeAction]:
    result = await within(
        client,
        client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=diag.range,
                context=types.CodeActionContext(diagnostics=[diag], only=[types.CodeActionKind.QuickFix]),
            )
        ),
    )
    return list(result or [])


@pytest.mark.asyncio
@pytest.mark.parametrize("spec, encoding", [(VSCODE, "utf-16"), (NEOVIM, "utf-8")])
async def test_suppress_action_hides_the_finding(client: LanguageClient, tmp_path, spec, encoding):
    await start(client, spec)
    uri = open_doc(client, tmp_path / "wide.py", WIDE)
    (diag,) = await published(client, uri, 1)
    (action,) = [a for a in await actions_for(client, uri, diag) if a.title == "Suppress GL101 on this line"]
    assert action.kind == types.CodeActionKind.QuickFix
    assert action.diagnostics[0].code == "GL101"
    text = apply(WIDE, action.edit, uri, encoding)
    assert text.splitlines()[FINDING_LINE - 1] == WIDE.splitlines()[FINDING_LINE - 1] + "  # noqa: GL101"
    change_doc(client, uri, 2, text)
    assert await published(client, uri, 2) == []


@pytest.mark.asyncio
async def test_suppress_action_extends_an_existing_noqa_list(client: LanguageClient, tmp_path):
    await start(client)
    source = TOWER.replace("nn.Sigmoid()]", "nn.Sigmoid()]  # noqa: E501")
    uri = open_doc(client, tmp_path / "tower.py", source)
    (diag,) = await published(client, uri, 1)
    (action,) = [a for a in await actions_for(client, uri, diag) if a.title.startswith("Suppress")]
    text = apply(source, action.edit, uri)
    assert text.splitlines()[FINDING_LINE - 1].endswith("nn.Sigmoid()]  # noqa: E501, GL101")
    change_doc(client, uri, 2, text)
    assert await published(client, uri, 2) == []


def _fix_available(text: str) -> bool:
    from gradlint import fixes

    settings = Settings(fixes=hasattr(fixes, "attach_edits"))
    return any(d.code == "GL201" and d.fix is not None and d.fix.edits for d in lint_with_edits(text, "x.py", settings))


@pytest.mark.asyncio
async def test_fix_action_applies_the_rules_fix(client: LanguageClient, tmp_path):
    source = (ROOT / "fixtures" / "models" / "constant_init_mlp.py").read_text(encoding="utf-8")
    assert _fix_available(source)  # the engine gives GL201 its libcst edits
    await start(client)
    uri = open_doc(client, tmp_path / "mlp.py", source)
    diagnostics = await published(client, uri, 1)
    (diag,) = [d for d in diagnostics if d.code == "GL201"]
    actions = await actions_for(client, uri, diag)
    (fix,) = [a for a in actions if not a.title.startswith("Suppress")]
    (finding,) = [d for d in analyse_source(source, "x.py") if d.code == "GL201"]
    unsafe = finding.fix.applicability != "safe"
    assert ("unsafe" in fix.title) == unsafe
    assert bool(fix.is_preferred) == (not unsafe)
    assert fix.kind == types.CodeActionKind.QuickFix
    text = apply(source, fix.edit, uri)
    ast.parse(text)
    change_doc(client, uri, 2, text)
    assert "GL201" not in [d.code for d in await published(client, uri, 2)]


@pytest.mark.asyncio
async def test_no_code_actions_for_a_stale_version(client: LanguageClient, tmp_path):
    await start(client, debounce_ms=10_000)  # the change below is not linted during the test
    uri = open_doc(client, tmp_path / "tower.py", TOWER)
    (diag,) = await published(client, uri, 1)
    change_doc(client, uri, 2, "\n" + TOWER)
    assert await actions_for(client, uri, diag) == []


# ---------------------------------------------------------------- pure helpers
def test_to_position_counts_code_units():
    lines = document_lines('x = "😀é中"; y\r\nz\rw\n')
    assert lines[:3] == ['x = "😀é中"; y', "z", "w"]
    col = lines[0].index("y") + 1
    assert lsp_convert.to_position(lines, 1, col, "utf-32") == (0, 11)
    assert lsp_convert.to_position(lines, 1, col, "utf-16") == (0, 12)
    assert lsp_convert.to_position(lines, 1, col, "utf-8") == (0, 4 + 1 + 4 + 2 + 3 + 3)
    assert lsp_convert.to_position(lines, 3, 99, "utf-16") == (2, 1)  # clamped to the line
    assert lsp_convert.to_position(lines, 99, 1, "utf-16") == (3, 0)  # and to the document


@pytest.mark.parametrize(
    "source, line, code, expected",
    [
        ("x = f(1)\n", 1, "GL101", Edit(1, 9, 1, 9, "  # noqa: GL101")),
        ("x = f(1)   \n", 1, "GL101", Edit(1, 9, 1, 12, "  # noqa: GL101")),
        ("x = f(1)  # noqa: GL201\n", 1, "GL101", Edit(1, 24, 1, 24, ", GL101")),
        ("x = f(1)  # keep  # noqa:GL201 GL202 trailing\n", 1, "GL101", Edit(1, 37, 1, 37, ", GL101")),
        ("x = f(1)  # noqa: GL101\n", 1, "GL101", None),
        ('x = f("""a\nb""")\n', 1, "GL101", None),
        ("x = f(1) + \\\n    2\n", 1, "GL101", None),
        ("x = f(1  # open\n", 1, "GL101", Edit(1, 16, 1, 16, "  # noqa: GL101")),
    ],
)
def test_suppression_edit(source, line, code, expected):
    lines = document_lines(source)
    assert lsp_convert.suppression_edit(source, lines, line, code) == expected
