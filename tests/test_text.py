"""Lines as Python numbers them, everywhere: a form feed, U+2028 or a CRLF never moves a
finding's excerpt, column or edit to another line."""

import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.text import decode, encode, source_encoding, split_lines, split_lines_keepends

TOWER = """import torch.nn as nn
{extra}
class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(8, 8), nn.Sigmoid())])

    def forward(self, x):
        return self.net(x)
"""


def test_split_lines_breaks_where_python_does():
    text = "a\x0cb\nc\u2028d\r\ne\rf\n"
    assert split_lines(text) == ["a\x0cb", "c\u2028d", "e", "f"]
    assert split_lines_keepends(text) == ["a\x0cb\n", "c\u2028d\r\n", "e\r", "f\n"]
    assert split_lines("x\ny") == ["x", "y"] and split_lines("") == []
    assert "".join(split_lines_keepends(text)) == text


def test_decode_honours_the_bom_and_the_coding_line():
    assert decode("# -*- coding: latin-1 -*-\nx = 'é'\n".encode("latin-1")).endswith("'é'\n")
    assert decode(b"\xef\xbb\xbfx = 1\n") == "x = 1\n"


def _full(tmp_path, text: str, encoding="utf-8", newline="\n"):
    (tmp_path / "m.py").write_bytes(text.replace("\n", newline).encode(encoding))
    result = CliRunner().invoke(cli, ["check", "--no-cache", "--output-format", "full", str(tmp_path / "m.py")])
    return result.stdout


def test_the_full_format_shows_the_line_the_finding_is_on(tmp_path):
    # a form feed (a page break, as Emacs writes them) and U+2028 in a comment above the finding:
    # str.splitlines would see two more lines and show line 5's text under line 6
    for extra in ("\x0c", "# a\u2028b", "# é\x0c"):
        out = _full(tmp_path, TOWER.format(extra=extra))
        assert "m.py:6:" in out
        assert "6 |         self.net = nn.Sequential(" in out, out
    out = _full(tmp_path, TOWER.format(extra=""), newline="\r\n")
    assert "6 |         self.net = nn.Sequential(" in out, out
    # a latin-1 file's excerpt is decoded by its coding line
    text = "# -*- coding: latin-1 -*-\n" + TOWER.format(extra="").replace(
        "super().__init__()", "super().__init__()  # é"
    )
    out = _full(tmp_path, text, encoding="latin-1")
    assert "super().__init__()  # é" in out and "\ufffd" not in out, out


def test_write_atomic_keeps_an_existing_files_mode_and_gives_a_new_one_the_umasks(tmp_path):
    import os

    from gradlint.text import write_atomic

    old = tmp_path / "old.txt"
    old.write_bytes(b"a")
    os.chmod(old, 0o640)
    assert write_atomic(str(old), b"b") and old.read_bytes() == b"b" and (old.stat().st_mode & 0o777) == 0o640
    mask = os.umask(0o022)
    try:
        assert write_atomic(str(tmp_path / "new.txt"), b"c")
    finally:
        os.umask(mask)
    assert ((tmp_path / "new.txt").stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600
    # a file that changed since it was read is left alone
    assert not write_atomic(str(old), b"d", original_bytes=b"not what it holds") and old.read_bytes() == b"b"
    assert [p.name for p in tmp_path.iterdir() if "gradlint-tmp" in p.name] == []


def test_write_atomic_without_keep_links_replaces_a_planted_link(tmp_path):
    import os

    from gradlint.text import write_atomic

    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    link = tmp_path / "entry"
    os.symlink(victim, link)
    assert write_atomic(str(link), b"cache entry", durable=False, keep_links=False)
    assert victim.read_bytes() == b"precious" and not link.is_symlink() and link.read_bytes() == b"cache entry"
    hard = tmp_path / "hard"
    os.link(victim, hard)
    assert write_atomic(str(hard), b"again", durable=False, keep_links=False)
    assert victim.read_bytes() == b"precious" and hard.read_bytes() == b"again"
    # keep_links (a user's file, as --fix writes it): the link is followed, both names see it
    os.link(victim, tmp_path / "second-name")
    assert write_atomic(str(victim), b"fixed", original_bytes=b"precious")
    assert (tmp_path / "second-name").read_bytes() == b"fixed"


def test_source_encoding_decode_and_encode_share_one_reading_of_the_coding_line():
    latin = "# -*- coding: latin-1 -*-\nname = 'café'\n"
    data = latin.encode("latin-1")
    assert source_encoding(data) == ("iso-8859-1", b"")
    assert decode(data) == latin and encode(latin) == data
    bom = b"\xef\xbb\xbfx = 'caf\xc3\xa9'\n"
    assert source_encoding(bom) == ("utf-8", b"\xef\xbb\xbf")
    assert encode(decode(bom), bom=True) == bom
    # a text that does not fit its declared codec is written as UTF-8 rather than lost
    assert encode("# coding: ascii\nx = 'é'\n") == "# coding: ascii\nx = 'é'\n".encode()
    with pytest.raises(SyntaxError):
        source_encoding(b"# coding: no-such-codec\n")
