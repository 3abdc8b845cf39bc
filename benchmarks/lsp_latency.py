"""Language-server latency: from ``didChange`` sent to the matching ``publishDiagnostics``.

Starts ``python -m gradlint.server`` over stdio as a real LSP client (pygls), opens the
largest transformers ``modeling_*.py`` file of the benchmark corpus (by lines), then makes
20 edits, one at a time, as an editor sends them (an incremental change that types one
character into a comment), and times each until the diagnostics of that version arrive.
Measured twice: with the debounce off (the server's own cost) and with the default debounce
(what a user waits). The peer, measured in the same run: ``analyse_source`` on the same text
in this process (no protocol, no thread hop), median of 20.

    .venv/bin/python benchmarks/lsp_latency.py [--edits 20] [--file PATH]

Needs the corpus (``make bench`` or ``python benchmarks/corpus.py``) and torch-gradlint[lsp].
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "benchmarks" / ".corpus" / "transformers"


def largest_modeling_file() -> Path | None:
    files = sorted(CORPUS.rglob("modeling_*.py")) if CORPUS.is_dir() else []
    if not files:
        return None
    return max(files, key=lambda p: (p.read_bytes().count(b"\n"), str(p)))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def measure(path: Path, text: str, edits: int, debounce_ms: int | None) -> tuple[list[float], int]:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient
    from pygls.uris import from_fs_path

    client = LanguageClient("gradlint-lsp-latency", "1")
    arrived: dict[int, float] = {}
    counts: dict[int, int] = {}
    waiters: dict[int, asyncio.Event] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(ls, params: types.PublishDiagnosticsParams):
        if params.version is not None:
            arrived[params.version] = time.perf_counter()
            counts[params.version] = len(params.diagnostics)
            event = waiters.get(params.version)
            if event is not None:
                event.set()

    await client.start_io(sys.executable, "-m", "gradlint.server")
    options = {} if debounce_ms is None else {"debounceMs": debounce_ms}
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options=options,
        )
    )
    client.initialized(types.InitializedParams())
    uri = from_fs_path(str(path))

    async def wait(version: int) -> None:
        waiters[version] = event = asyncio.Event()
        if version not in arrived:
            await asyncio.wait_for(event.wait(), 120)

    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text),
        )
    )
    await wait(1)
    # each edit types one character into a comment on the last line
    row = len(text.split("\n")) - 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(row, 0), end=types.Position(row, 0)), text="# edits: "
                )
            ],
        )
    )
    await wait(2)
    column = len("# edits: ")
    latencies = []
    for i in range(edits):
        version = 3 + i
        waiters[version] = asyncio.Event()
        sent = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(row, column), end=types.Position(row, column)), text="x"
                    )
                ],
            )
        )
        column += 1
        await wait(version)
        latencies.append((arrived[version] - sent) * 1000)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return latencies, counts.get(2 + edits, -1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--file", type=Path, default=None)
    args = parser.parse_args(argv)
    path = args.file or largest_modeling_file()
    if path is None:
        print(
            "no transformers modeling_*.py under benchmarks/.corpus/transformers: "
            "run `python benchmarks/corpus.py` (or `make bench`) first",
            file=sys.stderr,
        )
        return 2
    try:
        import pygls  # noqa: F401
    except ImportError:
        print("needs the lsp extra: pip install 'torch-gradlint[lsp]'", file=sys.stderr)
        return 2
    text = path.read_text(encoding="utf-8")
    sys.path.insert(0, str(REPO))
    from gradlint.engine import analyse_source

    peer = []
    for _ in range(args.edits):
        start = time.perf_counter()
        findings = analyse_source(text, str(path))
        peer.append((time.perf_counter() - start) * 1000)
    peer_median = statistics.median(peer)
    rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"file: {rel} ({text.count(chr(10))} lines, {len(text.encode()):,} bytes, {len(findings)} findings)")
    print(f"peer: analyse_source in-process, median of {args.edits}: {peer_median:.1f} ms")
    for label, debounce in (("debounce 0 ms", 0), ("default debounce", None)):
        latencies, count = asyncio.run(measure(path, text, args.edits, debounce))
        med = statistics.median(latencies)
        print(
            f"didChange -> publishDiagnostics, {label}: median {med:.1f} ms, p90 {pct(latencies, 0.9):.1f} ms, "
            f"min {min(latencies):.1f} ms, max {max(latencies):.1f} ms over {len(latencies)} edits "
            f"({count} diagnostics); median / peer = {med / peer_median:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
