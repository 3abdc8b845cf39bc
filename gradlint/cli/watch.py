"""``gradlint check --watch``: check again whenever a checked or configuration file changes."""

from __future__ import annotations

import os
import sys
import time

import click

from gradlint.cli import output
from gradlint.cli.output import EXIT_CLEAN, SILENT, _fail, _rendered, _say, _summary, _use_color
from gradlint.cli.settings import _configured

#: --watch: seconds between two looks at the files (more when a look takes long)
WATCH_INTERVAL = 0.5


def _watch(targets, resolver, cache, output_format, statistics, unsafe) -> int:
    """Check ``targets``, then again each time a file to check, or a configuration file the
    run read, is added, changed or removed. It polls (no file-system events), and each run
    goes through the result cache, so only the changed files are analysed again. Ctrl-C ends
    it with exit 0."""
    from gradlint.config_resolve import Resolver
    from gradlint.files import discover
    from gradlint.run import lint_paths

    def stamp(path):
        try:
            st = os.stat(path)
            return (path, st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return (path, None)

    def signature():
        """(the files to check, the configuration files that are or could be read) with their stats."""
        found = _configured(lambda: discover(targets, resolve=resolver))
        folders = set()
        for path in found.files:
            folder = os.path.dirname(os.path.abspath(path))
            while folder not in folders:
                folders.add(folder)
                parent = os.path.dirname(folder)
                if parent == folder:
                    break
                folder = parent
        candidates = {os.path.join(f, name) for f in folders for name in ("pyproject.toml", "gradlint.toml")}
        candidates |= {str(p) for p in resolver.read_files()}
        return tuple(map(stamp, found.files)), tuple(map(stamp, sorted(candidates)))

    def once(reason: str) -> None:
        if sys.stdout.isatty() and output.level > SILENT:
            click.clear()
        _say(f"[{time.strftime('%H:%M:%S')}] {reason}")
        result = _configured(lambda: lint_paths(targets, resolver, cache_dir=cache))
        for _, message in result.errors:
            _fail(message)
        color = output_format == "full" and _use_color(sys.stdout)
        out = _rendered(result.diagnostics, output_format, statistics, unsafe, color, result.sources, result.files)
        if out and output.level > SILENT:
            click.echo(out, nl=False, color=output_format == "full" and _use_color(sys.stdout))
        _summary(result)
        _say("Watching for changes (Ctrl-C to stop).")
        sys.stdout.flush()

    import signal

    # Ctrl-C ends the watch even when gradlint was started with SIGINT ignored (a shell's
    # background job inherits that); SIGTERM ends it the same way
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        # the state is taken before each run: a change made while it runs is seen after it
        last = signature()
        once("Checking in watch mode...")
        while True:
            started = time.monotonic()
            now = signature()
            spent = time.monotonic() - started
            if now != last:
                if now[1] != last[1]:  # a configuration file changed, came or went: read them all again
                    resolver = Resolver(
                        resolver.overrides,
                        isolated=resolver.isolated,
                        config_file=resolver.config_file,
                        warn=resolver.warn,
                    )
                    now = signature()
                last = now
                once("File change detected...")
            time.sleep(max(WATCH_INTERVAL, 4 * spent))
    except KeyboardInterrupt:
        return EXIT_CLEAN
