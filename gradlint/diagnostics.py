"""Diagnostics: frozen, plain data (no syntax nodes), shared by every reporter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("error", "warning", "info")
CONFIDENCES = ("heuristic", "inferred", "confirmed", "refuted")


@dataclass(frozen=True)
class Related:
    """A location that explains a finding: a layer it involves, the constant behind a depth."""

    path: str
    line: int
    column: int  # 1-based, in characters
    message: str


@dataclass(frozen=True)
class Edit:
    """Replace the text between two 1-based (line, column) positions."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str


@dataclass(frozen=True)
class Fix:
    title: str
    applicability: str  # "safe" | "unsafe"
    #: text edits; filled in by the libcst fix stage (gradlint.fixes) when fixes are asked for
    edits: tuple[Edit, ...] = ()
    #: what the rule's libcst fixer needs, as (key, value) pairs of plain data
    data: tuple = ()


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int  # 1-based
    column: int  # 1-based, in characters
    end_line: int
    end_column: int  # 1-based, exclusive
    code: str
    name: str
    severity: str
    message: str
    confidence: str = "inferred"
    help: str | None = None
    related: tuple[Related, ...] = ()
    fix: Fix | None = None
    evidence: tuple = field(default=())  # (key, value) pairs from dynamic confirmation
    #: what the dynamic mode measures for this finding, as (key, value) pairs: ``model`` (the
    #: graph's name: a class, or ``factory()``), ``layers`` (module names, forward order),
    #: ``expect`` (vanishing | exploding | symmetric | degradation | recurrent-vanishing |
    #: recurrent-exploding), for training findings ``clip``; empty when nothing can be measured
    target: tuple = field(default=(), compare=False)
    #: for notebooks: the 1-based code-cell number; ``line``/``end_line`` then count within the cell
    cell: int | None = None

    def sort_key(self):
        return (self.path, self.cell or 0, self.line, self.column, self.code, self.message)

    def to_json(self) -> dict:
        """The stable JSON object documented in the README (one per finding)."""
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "confidence": self.confidence,
            "message": self.message,
            "help": self.help,
            "related": [asdict(r) for r in self.related],
            "fix": None
            if self.fix is None
            else {
                "title": self.fix.title,
                "applicability": self.fix.applicability,
                "edits": [asdict(e) for e in self.fix.edits],
            },
            "evidence": dict(self.evidence) if self.evidence else None,
            "cell": self.cell,
        }
