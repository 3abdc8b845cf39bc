"""Source text, in one place: decoding bytes as Python does and splitting lines where Python
breaks them.

Python breaks lines at ``\\n``, ``\\r\\n`` and ``\\r`` only. ``str.splitlines`` also breaks at
form feeds, ``\\v``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029, which would put a finding's
excerpt, a column or an edit on another line than the one ``ast`` reports: everything that
numbers lines goes through here.
"""

from __future__ import annotations

import io
import re
import tokenize

#: Python's (and the LSP's) line terminators
LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: the characters ``str.splitlines`` breaks at besides Python's own
_OTHER_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def split_lines(text: str) -> list[str]:
    """The lines as Python numbers them, without their line breaks (no empty last line for a
    text that ends in a line break)."""
    if "\r" not in text and (text.isascii() and not any(c in text for c in _OTHER_BREAKS[:5])):
        return text.splitlines()  # the same lines, faster
    lines = LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def split_lines_keepends(text: str) -> list[str]:
    """The lines with their line breaks, broken where Python breaks them."""
    out, start = [], 0
    for m in LINE_BREAK.finditer(text):
        out.append(text[start:m.end()])
        start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


def decode(data: bytes) -> str:
    """Python source bytes as text, honouring a UTF-8 BOM or a PEP 263 coding declaration
    (UnicodeDecodeError, LookupError or SyntaxError when they cannot be honoured)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    if b"coding" in data[:400]:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    return data.decode("utf-8")


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
