"""The result cache: ``.gradlint_cache/``, one entry file per checked file.

A :class:`~gradlint.settings.FileResult` depends only on the file's bytes and the
:class:`~gradlint.settings.Settings` (findings across files are resolved after the per-file
results), so an entry is keyed by

* the cache format, ``gradlint.__version__``, the Python version, and a stamp of gradlint's own
  source files (their paths, sizes and mtimes: editing a rule in a checkout invalidates);
* the settings that change results (not the discovery-only ones: jobs, excludes, ...);
* the file, as the absolute path and the path as given (diagnostics carry the latter);
* the SHA-256 of the content. The file's stat (mtime, ctime, size, inode) is only a shortcut:
  when it is unchanged the content is not read. ``os.utime`` cannot set the ctime, so a
  same-size edit with the mtime put back still misses. A file modified less than
  :data:`RACY_NS` before its entry was written gets no shortcut (its stat may not yet show a
  second edit within the filesystem's timestamp granularity): the next run hashes it, and
  records the stat once it is old enough.

Layout::

    <cache_dir>/CACHEDIR.TAG, .gitignore ("*")
    <cache_dir>/<version>/<run key>/<aa>/<sha256 of the file key>

Entries are written to a temporary file in the same folder and ``os.replace``-d into place, so
several processes (the engine's forked workers, two runs at once) may write without a
coordinator: a reader sees a whole old entry or a whole new one. An entry that cannot be read
or decoded (truncated, corrupt, a different format) is a miss and is overwritten; nothing is
reported. A cache that cannot be written (read-only, disk full) only stops caching.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import sys
import time
import zlib
from dataclasses import dataclass, fields

import gradlint
from gradlint.files import read_source
from gradlint.text import write_atomic

#: bump when the entry format or what a key covers changes
FORMAT = 2  # 2: entries are JSON (1 was pickle, which runs code when loaded)
MAGIC = b"GLCACHE%d" % FORMAT
#: mtime_ns, ctime_ns, size, inode, content sha256, crc32 of the payload
_HEADER = struct.Struct("<qqqq32sI")
_NO_STAT = (-1, -1, -1, -1)
#: a file modified this recently (ns) when its entry is written gets no stat shortcut
RACY_NS = 2_000_000_000
#: the largest entry read back (a bigger one is corrupt)
MAX_ENTRY_BYTES = 64 * 1024 * 1024
#: the cache keeps the entries of this many (gradlint version, settings) combinations, the
#: most recently used, and deletes a combination unused for MAX_RUN_AGE_S
KEEP_RUNS = 8
MAX_RUN_AGE_S = 30 * 24 * 3600
#: a combination used this recently (seconds) is never pruned: the same run may be using it
#: for another sub-project's settings (one combination per configuration file), or a
#: concurrent run may be
IN_USE_S = 300
#: Settings fields that only decide which files are checked, never a file's findings
DISCOVERY_ONLY = frozenset(
    {"jobs", "exclude", "extend_exclude", "respect_gitignore", "force_exclude", "cache", "cache_dir", "no_cache"}
)
CACHEDIR_TAG = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by gradlint.\n"
    b"# For information about cache directory tags see https://bford.info/cachedir/\n"
)
DEFAULT_DIRNAME = ".gradlint_cache"

_code_stamp: str | None = None


def default_cache_dir(settings=None) -> str:
    """``$GRADLINT_CACHE_DIR``, else ``.gradlint_cache`` in the project root (the configuration
    file's folder, ``settings.root``) or the current directory."""
    env = os.environ.get("GRADLINT_CACHE_DIR")
    if env:
        return os.path.abspath(env)
    root = getattr(settings, "root", "") or os.getcwd()
    return os.path.join(os.path.abspath(root), DEFAULT_DIRNAME)


def code_stamp() -> str:
    """A hash of gradlint's own source files (path, size, mtime) and the interpreter: any edit
    to the engine or a rule, or another Python, gives other keys. Computed once per process."""
    global _code_stamp
    if _code_stamp is None:
        from importlib.util import find_spec

        h = hashlib.sha256()
        h.update(f"{sys.implementation.cache_tag}|{sys.version}|".encode())
        rules = find_spec("gradlint.rules")  # the rules folder, without importing the rules
        roots = {
            os.path.dirname(os.path.abspath(gradlint.__file__)),
            *(os.path.abspath(p) for p in ((rules.submodule_search_locations or ()) if rules else ())),
        }
        for root in sorted(roots):
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    if name.endswith(".py"):
                        path = os.path.join(folder, name)
                        try:
                            st = os.stat(path)
                        except OSError:
                            continue
                        h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        _code_stamp = h.hexdigest()
    return _code_stamp


def settings_key(settings) -> str:
    """What of ``settings`` changes a file's result, as text (the run key hashes it)."""
    parts = [
        f"{f.name}={getattr(settings, f.name)!r}"
        for f in sorted(fields(settings), key=lambda f: f.name)
        if f.name not in DISCOVERY_ONLY
    ]
    if getattr(settings, "per_file_ignores", ()) and not getattr(settings, "root", ""):
        parts.append(f"cwd={os.getcwd()!r}")  # per-file-ignores then match relative to it
    if getattr(settings, "fixes", False):
        try:
            from libcst._version import __version__ as libcst_version
        except ImportError:  # pragma: no cover
            libcst_version = "?"
        parts.append(f"libcst={libcst_version}")
    return "\n".join(parts)


@dataclass
class Lookup:
    """What :meth:`ResultCache.lookup` found for one file; hand it back to :meth:`ResultCache.store`."""

    path: str
    #: the cached result, or None on a miss
    result: object = None
    #: on a miss, the file's bytes (lint these: the entry is keyed by their hash); None when
    #: the file could not be read (lint it the ordinary way, and do not store)
    data: bytes | None = None
    entry: str = ""
    stat: tuple = _NO_STAT
    digest: bytes = b""


class ResultCache:
    """Per-file results on disk. Cheap to create and to pickle (workers get a copy)."""

    def __init__(self, cache_dir: str, settings) -> None:
        self.cache_dir = os.path.abspath(cache_dir)
        self.settings = settings
        run_key = hashlib.sha256(f"{FORMAT}|{gradlint.__version__}|{code_stamp()}|{settings_key(settings)}".encode())
        self.folder = os.path.join(self.cache_dir, _safe(gradlint.__version__), run_key.hexdigest()[:20])
        self._root_ready = False
        self._touched = False

    # ------------------------------------------------------------ the two halves
    def entry_path(self, path: str) -> str:
        key = hashlib.sha256(f"{os.path.abspath(path)}\0{path}".encode("utf-8", "surrogateescape")).hexdigest()
        return os.path.join(self.folder, key[:2], key)

    def lookup(self, path: str) -> Lookup:
        """A hit (``.result``) or a miss carrying the bytes to lint (``.data``)."""
        found = Lookup(path, entry=self.entry_path(path))
        if not self._touched:  # used now: the pruning of other runs keeps it
            self._touched = True
            try:
                os.utime(self.folder)
            except OSError:
                pass
        try:
            st = os.stat(path)
            found.stat = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        except OSError:
            return found  # unreadable: the caller's own read reports it
        stored = _read_entry(found.entry)
        if stored is not None and stored[0] == found.stat:
            result = _load(stored[2])
            if result is not None:
                found.result = result
                return found
        try:
            data = read_source(path)
        except OSError:
            return found  # the caller's own read reports it
        found.digest = hashlib.sha256(data).digest()
        if stored is not None and stored[1] == found.digest:
            result = _load(stored[2])
            if result is not None:
                found.result = result
                if stored[0] != self._shortcut(found.stat):
                    self._write(found, stored[2])  # same content, new stat: refresh it
                return found
        found.data = data
        return found

    def store(self, found: Lookup, result) -> None:
        """Record ``result``, computed from ``found.data``. Never raises."""
        if found.data is None or not found.digest:
            return
        if any(d.code == "GL002" for d in getattr(result, "diagnostics", ())):
            return  # an internal error may be the environment's (memory, recursion); try again next time
        try:
            payload = _dump(result)
        except (TypeError, ValueError):  # something that is not plain data: not cached
            return
        self._write(found, payload)

    # ------------------------------------------------------------ internals
    def _shortcut(self, stat: tuple) -> tuple:
        """The stat to record: none while the file is too recently modified to trust it."""
        if stat == _NO_STAT:
            return _NO_STAT
        return stat if time.time_ns() - max(stat[0], stat[1]) > RACY_NS else _NO_STAT

    def _write(self, found: Lookup, payload: bytes) -> None:
        header = _HEADER.pack(*self._shortcut(found.stat), found.digest, zlib.crc32(payload))
        try:
            if not self._root_ready:
                self._prepare_root()
            os.makedirs(os.path.dirname(found.entry), exist_ok=True)
            write_atomic(found.entry, MAGIC + header + payload, durable=False, keep_links=False)
        except OSError:
            pass

    def _prepare_root(self) -> None:
        os.makedirs(self.cache_dir, exist_ok=True)
        for name, content in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", b"# created by gradlint\n*\n")):
            target = os.path.join(self.cache_dir, name)
            try:
                with open(target, "rb") as fh:
                    if fh.read() == content:
                        continue
            except OSError:
                pass
            try:
                write_atomic(target, content, durable=False, keep_links=False)
            except OSError:
                pass
        self._root_ready = True
        self._prune()

    def _prune(self) -> None:
        """Delete the entries of other (version, settings) combinations beyond the
        :data:`KEEP_RUNS` most recently used, and any unused for :data:`MAX_RUN_AGE_S`.
        Another process using a deleted one only loses its cache. Never raises."""
        import shutil

        runs = []
        try:
            for version in os.scandir(self.cache_dir):
                if not version.is_dir(follow_symlinks=False):
                    continue
                for run in os.scandir(version.path):
                    if run.is_dir(follow_symlinks=False) and run.path != self.folder:
                        runs.append((run.stat(follow_symlinks=False).st_mtime, run.path))
        except OSError:
            return
        runs.sort(reverse=True)
        now = time.time()
        for i, (mtime, path) in enumerate(runs):
            if now - mtime < IN_USE_S:
                continue
            if i >= KEEP_RUNS - 1 or now - mtime > MAX_RUN_AGE_S:
                shutil.rmtree(path, ignore_errors=True)
                try:
                    os.rmdir(os.path.dirname(path))  # the version folder, once empty
                except OSError:
                    pass


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_+" else "_" for c in text) or "_"


def _read_entry(entry: str):
    """(stat, digest, payload) of an entry, or None when it is missing or not a whole entry."""
    try:
        blob = read_source(entry, MAX_ENTRY_BYTES)  # a FIFO or a link to /dev/zero is corrupt, not read
    except OSError:
        return None
    start = len(MAGIC) + _HEADER.size
    if len(blob) <= start or not blob.startswith(MAGIC):
        return None
    mtime, ctime, size, ino, digest, crc = _HEADER.unpack_from(blob, len(MAGIC))
    payload = blob[start:]
    if zlib.crc32(payload) != crc:
        return None
    return (mtime, ctime, size, ino), digest, payload


def _dump(result) -> bytes:
    """A FileResult as JSON: plain data only, so that loading an entry, even a planted one,
    can never run code (as a pickle does)."""
    return json.dumps(_encode(result), separators=(",", ":"), allow_nan=True).encode("utf-8", "surrogatepass")


def _encode(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"s": sorted((_encode(v) for v in value), key=repr)}
    if isinstance(value, dict):
        return {"m": [[_encode(k), _encode(v)] for k, v in value.items()]}
    name = type(value).__name__
    if name in _entry_types() and type(value) is _entry_types()[name]:
        return {"t": name, "v": [_encode(getattr(value, f.name)) for f in fields(value)]}
    raise TypeError(f"not cacheable: {name}")


def _decode(value):
    """Arrays become tuples (the diagnostics are frozen); only the known types are built."""
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        if "s" in value:
            return frozenset(_decode(v) for v in value["s"])
        if "m" in value:
            return {_decode(k): _decode(v) for k, v in value["m"]}
        cls = _entry_types()[value["t"]]  # KeyError for anything else: a corrupt entry
        return cls(*(_decode(v) for v in value["v"]))
    return value


@functools.lru_cache(maxsize=1)
def _entry_types() -> dict:
    from gradlint.diagnostics import Diagnostic, Edit, Fix, Related
    from gradlint.settings import FileResult

    return {c.__name__: c for c in (Diagnostic, Edit, Fix, Related, FileResult)}


def _load(payload: bytes):
    from gradlint.settings import FileResult

    try:
        result = _decode(json.loads(payload.decode("utf-8", "surrogatepass")))
    except Exception:  # a corrupt entry is a miss
        return None
    if not isinstance(result, FileResult):
        return None
    result.diagnostics = list(result.diagnostics)
    result.deferred = [tuple(item) for item in result.deferred]
    result.recurrent_classes = frozenset(result.recurrent_classes)
    return result
