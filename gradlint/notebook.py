"""Jupyter notebooks: lint the code cells as one module, report findings at their cell and line.

The code cells of a Python notebook are joined, in order, into one virtual module (a model
class defined in cell 2 and trained in cell 5 is one file to the analysis). IPython syntax
(``%magic``, ``!shell``, ``x = !ls``, ``obj?``, ``%%cell magics``) is replaced by ``pass``
lines that keep the line count. Findings are mapped back to ``(cell, line)``; cells are
numbered from 1 over all cells, markdown included, as notebook front-ends show them.

Fixes are applied to the virtual module and split back into the cells: only the ``source``
of changed code cells is rewritten; outputs, execution counts and metadata stay as they were.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from gradlint.diagnostics import Diagnostic, Related
from gradlint.text import split_lines

BOUNDARY = "# %% gradlint-cell-boundary"
_MAGIC_MARK = re.compile(r"^(\s*)pass  # gradlint-magic (\d+)$")
_ASSIGN_MAGIC = re.compile(r"^\s*[\w.\[\], ]+\s*=\s*[%!]")


class NotebookError(ValueError):
    """A file that is not a notebook gradlint can read."""


@dataclass
class Notebook:
    data: dict
    #: (cell number, 1-based over all cells; index into data["cells"])
    cells: list[tuple[int, int]] = field(default_factory=list)
    virtual: str = ""
    #: virtual line (1-based) -> (cell number, line within the cell); index 0 unused
    line_map: list[tuple[int, int]] = field(default_factory=list)
    magics: list[str] = field(default_factory=list)
    #: cell number -> the cell's source as Python (magics replaced), for excerpts
    texts: dict = field(default_factory=dict)
    indent: int | None = 1
    #: cells that do not parse even with magics blanked: (virtual line, column, message); their
    #: lines are ``pass`` in the virtual module, so the other cells are still analysed
    broken: list = field(default_factory=list)
    broken_cells: set = field(default_factory=set)  # their numbers: never written back

    @property
    def python(self) -> bool:
        def table(parent, key):
            value = parent.get(key) if isinstance(parent, dict) else None
            return value if isinstance(value, dict) else {}

        meta = table(self.data, "metadata")
        lang = table(meta, "kernelspec").get("language") or table(meta, "language_info").get("name")
        return lang in (None, "python", "python3", "ipython") or not isinstance(lang, str)


def _source(cell) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))  # nbformat: strings only
    return src if isinstance(src, str) else ""


_HELP = re.compile(r"^\s*[\w.]+\?{1,2}\s*$")


def _is_magic(line: str) -> bool:
    stripped = line.lstrip()
    if not stripped:
        return False
    return stripped[0] in "%!" or bool(_HELP.match(line)) or bool(_ASSIGN_MAGIC.match(line))


def _parses(text: str) -> bool:
    import ast

    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def _syntax_error(text: str):
    """``(line, column, message)`` of the first syntax error in ``text``, or None."""
    import ast

    try:
        ast.parse(text)
    except SyntaxError as exc:
        return exc.lineno or 1, exc.offset or 1, exc.msg
    except ValueError as exc:
        return 1, 1, str(exc)
    return None


def load(data: bytes) -> Notebook:
    try:
        nb = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookError(f"not a notebook: {exc}") from None
    except RecursionError:
        raise NotebookError("not a notebook: its JSON nests deeper than Python's parser goes") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError("not a notebook: no list of cells (nbformat 4 is read)")
    out = Notebook(nb)
    m = re.match(rb"\{\s*\n( *)\"", data.lstrip(b"\xef\xbb\xbf"))
    out.indent = len(m.group(1)) if m else None
    lines: list[str] = []
    line_map: list[tuple[int, int]] = [(0, 0)]
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number = index + 1
        text = _source(cell)
        cell_lines = split_lines(text)
        is_cell_magic = bool(cell_lines) and cell_lines[0].lstrip().startswith("%%")
        # a cell that is plain Python is taken as it is (a `!= b` continuation line or a
        # docstring ending in `?` is not IPython syntax); only the others have magics blanked
        plain = not is_cell_magic and _parses(text)
        py = []
        for n, line in enumerate(cell_lines, start=1):
            if not plain and (is_cell_magic or _is_magic(line)):
                indent = "" if is_cell_magic else line[: len(line) - len(line.lstrip())]
                py.append(f"{indent}pass  # gradlint-magic {len(out.magics)}")
                out.magics.append(line)
            else:
                py.append(line)
            line_map.append((number, n))
        out.cells.append((number, index))
        out.texts[number] = "\n".join(py) + "\n"
        if not plain:
            error = _syntax_error("\n".join(py) + "\n")
            if error is not None:
                # an unfinished cell (common in exercise notebooks): reported, and kept out
                line, col, msg = error
                out.broken.append((len(lines) + min(max(line, 1), len(py) or 1), col, msg))
                out.broken_cells.add(number)
                py = ["pass  # gradlint-broken-cell"] * len(py)
        lines.extend(py)
        lines.append(BOUNDARY)
        line_map.append((number, len(cell_lines) + 1))
    out.virtual = "\n".join(lines) + ("\n" if lines else "")
    out.line_map = line_map
    return out


def _map_line(nb: Notebook, line: int) -> tuple[int, int]:
    if 1 <= line < len(nb.line_map):
        return nb.line_map[line]
    return (nb.cells[-1][0], 1) if nb.cells else (1, 1)


def map_diagnostic(nb: Notebook, d: Diagnostic) -> Diagnostic:
    """A finding on the virtual module, moved to its cell."""
    cell, line = _map_line(nb, d.line)
    end_cell, end_line = _map_line(nb, d.end_line)
    if end_cell != cell:
        end_line, end_column = line, d.column + 1
    else:
        end_column = d.end_column
    related = []
    for r in d.related:
        rcell, rline = _map_line(nb, r.line)
        related.append(Related(r.path, rline, r.column, f"{r.message} (cell {rcell})" if rcell != cell else r.message))
    # edits are in the virtual module's lines; fixes of notebooks go through fix_virtual
    fix = replace(d.fix, edits=()) if d.fix is not None else None
    return replace(d, line=line, end_line=end_line, end_column=end_column, cell=cell, related=tuple(related), fix=fix)


def write_back(nb: Notebook, new_virtual: str) -> bytes:
    """The notebook's bytes with each code cell's source taken from ``new_virtual``."""
    parts: list[str] = []
    current: list[str] = []
    for line in new_virtual.split("\n"):
        if line == BOUNDARY:
            parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if any(l.strip() for l in current) or len(parts) != len(nb.cells):
        raise NotebookError("the fixed code no longer splits into the notebook's cells")
    data = json.loads(json.dumps(nb.data))  # a copy; outputs and metadata carried as they are
    for (number, index), text in zip(nb.cells, parts):
        if number in nb.broken_cells:
            continue  # analysed as `pass` lines: its own source stays as the user wrote it
        restored = []
        for line in text.split("\n"):
            m = _MAGIC_MARK.match(line)
            restored.append(nb.magics[int(m.group(2))] if m else line)
        cell = data["cells"][index]
        old = _source(cell)
        new = "\n".join(restored)
        if old.endswith("\n"):
            new += "\n"
        if new == old:
            continue
        if isinstance(cell.get("source"), list):
            cell["source"] = new.splitlines(keepends=True)
        else:
            cell["source"] = new
    return (json.dumps(data, indent=nb.indent, ensure_ascii=False) + "\n").encode("utf-8")


def definitions_source(nb: Notebook) -> str:
    """The notebook's code with only its imports, definitions and call-free constants kept
    (other statements blanked, line numbers kept): what ``--dynamic`` imports. A notebook's
    cells are not run; its training loops, downloads and plots stay out of the measurement."""
    import ast

    try:
        tree = ast.parse(nb.virtual)
    except SyntaxError:
        return nb.virtual
    lines = nb.virtual.split("\n")
    keep_types = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        if isinstance(node, keep_types):
            continue
        if (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and node.value is not None
            and not any(isinstance(n, (ast.Call, ast.Await, ast.Yield)) for n in ast.walk(node.value))
        ):
            continue
        for n in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            lines[n - 1] = ""
    return "\n".join(lines)
