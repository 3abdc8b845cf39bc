"""Source text, in one place: decoding bytes as Python does and splitting lines where Python
breaks them.

Python breaks lines at ``\\n``, ``\\r\\n`` and ``\\r`` only. ``str.splitlines`` also breaks at
form feeds, ``\\v``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029, which would put a finding's
excerpt, a column or an edit on another line than the one ``ast`` reports: everything that
numbers lines goes through here.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import tempfile
import tokenize

#: Python's (and the LSP's) line terminators
LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: the characters ``str.splitlines`` breaks at besides Python's own
_OTHER_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_OTHER_BREAK = re.compile("[" + "".join(_OTHER_BREAKS) + "]")


def split_lines(text: str) -> list[str]:
    """The lines as Python numbers them, without their line breaks (no empty last line for a
    text that ends in a line break)."""
    if not _OTHER_BREAK.search(text):
        return text.splitlines()  # the same lines (it breaks at \r\n, \r and \n too), faster
    lines = LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def document_lines(text: str) -> list[str]:
    """The lines of an editor's document as the LSP counts them: split at Python's breaks, and
    a text that ends in a break has an empty last line (where the cursor can be)."""
    return LINE_BREAK.split(text)


def split_lines_keepends(text: str) -> list[str]:
    """The lines with their line breaks, broken where Python breaks them."""
    out, start = [], 0
    for m in LINE_BREAK.finditer(text):
        out.append(text[start : m.end()])
        start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


def source_encoding(data: bytes) -> tuple[str, bytes]:
    """``(codec, BOM)`` Python source bytes are written in: UTF-8 after a BOM, the codec a
    PEP 263 coding declaration names, UTF-8 otherwise (SyntaxError for a declaration Python
    refuses)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8", codecs.BOM_UTF8
    if b"coding" in data[:400]:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
        return ("utf-8" if encoding == "utf-8-sig" else encoding), b""
    return "utf-8", b""


def decode(data: bytes) -> str:
    """Python source bytes as text, honouring a UTF-8 BOM or a PEP 263 coding declaration
    (UnicodeDecodeError, LookupError or SyntaxError when they cannot be honoured)."""
    codec, bom = source_encoding(data)
    return data[len(bom) :].decode(codec)


def encode(text: str, bom: bool = False) -> bytes:
    """Source text as the bytes of its own coding declaration (UTF-8 without one, or when the
    text does not fit the declared codec), after a UTF-8 BOM when ``bom``."""
    try:
        codec = source_encoding(text[:400].encode("utf-8", "surrogatepass"))[0] if "coding" in text[:400] else "utf-8"
        data = text.encode(codec)
    except (SyntaxError, UnicodeEncodeError, LookupError):
        data = text.encode("utf-8", "surrogatepass")
    return (codecs.BOM_UTF8 + data) if bom else data


def decode_lenient(data: bytes) -> str:
    """:func:`decode`, with undecodable bytes replaced (for showing a file's lines)."""
    try:
        return decode(data)
    except (UnicodeDecodeError, LookupError, SyntaxError):
        return data.decode("utf-8", "replace")


def source_lines(path: str) -> list[str]:
    """A file's lines as Python numbers them, for excerpts; [] when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return split_lines(decode_lenient(fh.read()))
    except (OSError, ValueError):
        return []


# ---------------------------------------------------------------- writing files
def write_atomic(
    path: str, new_bytes: bytes, original_bytes: bytes | None = None, durable: bool = True, keep_links: bool = True
) -> bool:
    """Write ``new_bytes`` to ``path`` atomically: a temporary file in the same folder, renamed
    over it (``os.replace``), so a reader sees the old content or the new, never a part.

    - With ``original_bytes``, the file is replaced only while it still holds them (it did not
      change on disk since it was read); otherwise nothing is written and False is returned.
    - An existing file keeps its mode, owner and group; a new one gets the mode the umask
      gives. A symbolic link is followed, not replaced.
    - A file with several hard links is rewritten in place instead (a rename would leave the
      other names on the old text): the one case that is not atomic.
    - ``durable``: the data and the rename are flushed to disk (``fsync``); the cache, which
      can always be rebuilt, skips it.
    - ``keep_links=False`` (the cache's own files): the name gets a new file whatever is
      there; a link planted at it is replaced, never followed or written through, and the
      new file gets no mode or owner from what was there."""
    target = os.path.realpath(path) if keep_links else os.path.abspath(path)
    st = None
    if keep_links or original_bytes is not None:
        try:
            with open(target, "rb") as fh:
                if original_bytes is not None and fh.read() != original_bytes:
                    return False
                st = os.fstat(fh.fileno())
        except FileNotFoundError:
            if original_bytes is not None:
                return False
    if not keep_links:
        st = None
    if st is not None and st.st_nlink > 1:
        return _write_in_place(target, new_bytes, original_bytes)
    folder = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".gradlint-tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(new_bytes)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        if st is None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is not what a new file gets
        else:
            if hasattr(os, "chown") and (st.st_uid, st.st_gid) != _owner(tmp):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)  # root fixing another user's file keeps it theirs
                except PermissionError:  # not root: keep at least the group, when it is one of ours
                    if st.st_gid in os.getgroups():
                        os.chown(tmp, -1, st.st_gid)
            os.chmod(tmp, st.st_mode & 0o7777)  # after chown, which clears set-id bits
        if original_bytes is not None:
            with open(target, "rb") as fh:  # last look: someone may have written meanwhile
                if fh.read() != original_bytes:
                    os.unlink(tmp)
                    return False
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        _sync_folder(folder)
    return True


def _sync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _owner(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def _write_in_place(target: str, new_bytes: bytes, original_bytes: bytes | None) -> bool:
    """Rewrite a hard-linked file through its own inode, so every name sees the new text."""
    with open(target, "r+b") as fh:
        if original_bytes is not None and fh.read() != original_bytes:
            return False
        fh.seek(0)
        fh.write(new_bytes)
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())
    return True
