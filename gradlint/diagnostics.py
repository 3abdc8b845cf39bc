"""Diagnostics: frozen, plain data (no syntax nodes), shared by every reporter."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from gradlint.vocab import Applicability, Confidence, Hazard, Severity

#: the keys of a prediction, in the order the JSON object lists them
PREDICTION_KEYS = ("ratio", "first", "total", "gain", "test", "layers")


def json_safe(value):
    """``value`` as strict JSON data (valid under ``json.dumps(..., allow_nan=False)``): tuples
    become lists, mapping keys strings, and non-finite floats the strings ``"inf"``, ``"-inf"``
    and ``"nan"``."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)


def prediction_pairs(prediction) -> tuple:
    """A prediction given as a dict (the JSON form: ``layers`` a list of ``{name, grad_norm}``)
    or already as (key, value) pairs, as the hashable tuple a :class:`Diagnostic` stores:
    ``layers`` a tuple of (name, grad_norm) pairs."""
    if not prediction:
        return ()
    items = prediction.items() if isinstance(prediction, dict) else tuple(prediction)
    out = []
    for key, value in items:
        if key == "layers":
            layers = []
            for layer in value or ():
                if isinstance(layer, dict):
                    layers.append((layer["name"], layer["grad_norm"]))
                else:
                    name, norm = layer
                    layers.append((name, norm))
            value = tuple(layers)
        elif isinstance(value, (list, dict)):
            value = _frozen(value)
        out.append((key, value))
    return tuple(out)


def _frozen(value):
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


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
    applicability: Applicability
    #: text edits; filled in by the libcst fix stage (gradlint.fixes) when fixes are asked for
    edits: tuple[Edit, ...] = ()
    #: what the rule's libcst fixer needs, as (key, value) pairs of plain data
    data: tuple = ()

    def __post_init__(self):
        if type(self.applicability) is not Applicability:
            object.__setattr__(self, "applicability", Applicability(self.applicability))


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int  # 1-based
    column: int  # 1-based, in characters
    end_line: int
    end_column: int  # 1-based, exclusive
    code: str
    name: str
    severity: Severity
    message: str
    confidence: Confidence = Confidence.INFERRED
    help: str | None = None
    related: tuple[Related, ...] = ()
    fix: Fix | None = None
    evidence: tuple = field(default=())  # (key, value) pairs from dynamic confirmation
    #: what the dynamic mode measures for this finding, as (key, value) pairs: ``model`` (the
    #: graph's name: a class, or ``factory()``), ``layers`` (module names, forward order),
    #: ``expect`` (vanishing | exploding | symmetric | degradation | recurrent-vanishing |
    #: recurrent-exploding), for training findings ``clip``; empty when nothing can be measured
    target: tuple = field(default=(), compare=False)
    #: what the finding says happens to the gradient at initialization: ``vanishing``,
    #: ``exploding``, ``dead`` or ``none`` (a :class:`gradlint.vocab.Hazard`)
    hazard: Hazard = field(default=Hazard.NONE, compare=False)
    #: the static flow model's prediction, in the measurement convention of ``--dynamic``, as
    #: (key, value) pairs: ``ratio``, ``first``, ``total``, ``gain`` (floats; ``gain`` may be
    #: None), ``test`` (the threshold test that decided, or None) and ``layers`` ((name,
    #: grad_norm) pairs in forward order); empty when the flow model made none
    prediction: tuple = field(default=(), compare=False)
    #: for notebooks: the 1-based code-cell number; ``line``/``end_line`` then count within the cell
    cell: int | None = None

    def __post_init__(self):
        # the vocabularies' text (read back from JSON, the cache, a worker) becomes their
        # members; a dict prediction the hashable pairs
        for name, vocab in (("severity", Severity), ("confidence", Confidence), ("hazard", Hazard)):
            value = getattr(self, name)
            if type(value) is not vocab:
                object.__setattr__(self, name, vocab(value))
        if self.prediction:
            object.__setattr__(self, "prediction", prediction_pairs(self.prediction))

    def sort_key(self):
        return (self.path, self.cell or 0, self.line, self.column, self.code, self.message)

    def prediction_json(self) -> dict | None:
        """The prediction as the JSON object of the README (None when there is none); the
        documented keys are always there (None when unknown), non-finite floats are strings."""
        if not self.prediction:
            return None
        data = dict(self.prediction)
        out = {key: data.pop(key, None) for key in PREDICTION_KEYS}
        out["layers"] = [{"name": name, "grad_norm": norm} for name, norm in (out["layers"] or ())]
        out.update(data)  # anything else the flow model adds, after the documented keys
        return json_safe(out)

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
            "hazard": str(self.hazard),
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
            "prediction": self.prediction_json(),
            "evidence": json_safe(dict(self.evidence)) if self.evidence else None,
            "cell": self.cell,
        }
