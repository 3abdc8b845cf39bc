"""Lines as Python numbers them, everywhere: a form feed, U+2028 or a CRLF never moves a
finding's excerpt, column or edit to another line."""

from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.text import decode, split_lines, split_lines_keepends

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
    text = "# -*- coding: latin-1 -*-\n" + TOWER.format(extra="").replace("super().__init__()", "super().__init__()  # é")
    out = _full(tmp_path, text, encoding="latin-1")
    assert "super().__init__()  # é" in out and "\ufffd" not in out, out
