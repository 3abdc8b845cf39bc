"""The project's vocabularies, one home each: the words rules, the flow model, ``--dynamic``
and the reporters share.

Each is a string enum: a member *is* its text (``Severity.ERROR == "error"``, it hashes,
sorts, joins, formats and serializes to JSON as ``"error"``), so data read back from JSON or a
configuration file compares equal to the members, while code names the members and a typo
is an ``AttributeError`` instead of a silently different string. ``Vocab`` stands in for
``enum.StrEnum``, which Python 3.10 lacks.

This module imports nothing from gradlint: everything above it may use it.
"""

from __future__ import annotations

from enum import Enum


class Vocab(str, Enum):
    """A string enum whose members print, format and serialize as their value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Severity(Vocab):
    """The level of a finding, most severe first."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Confidence(Vocab):
    """How a finding knows what it says."""

    #: a fact of the file itself (a syntax error, an unused suppression)
    CONFIRMED = "confirmed"
    #: confirmed or refuted by ``--dynamic``'s backward pass
    REFUTED = "refuted"
    #: found by ``--dynamic`` alone (a hazard no static finding predicted)
    MEASURED = "measured"
    #: the static analysis, on a model it resolved
    INFERRED = "inferred"
    #: the static analysis, on a model with unresolved parts
    HEURISTIC = "heuristic"


class Applicability(Vocab):
    """Whether a fix keeps the program's meaning (``safe``, applied by ``--fix``) or may
    change what it computes (``unsafe``, applied with ``--unsafe-fixes``)."""

    SAFE = "safe"
    UNSAFE = "unsafe"


class Hazard(Vocab):
    """What a finding (or a measurement) says about the gradient at initialization."""

    VANISHING = "vanishing"
    EXPLODING = "exploding"
    DEAD = "dead"
    NONE = "none"


class Cause(Vocab):
    """Why the flow model predicts a hazard; each cause has one claiming rule."""

    ACTIVATION = "activation"  # GL101
    INIT_SCALE = "init-scale"  # GL202
    INIT_MISMATCH = "init-mismatch"  # GL203
    DEPTH = "depth"  # GL301: no normalization
    RESIDUAL_GROWTH = "residual-growth"  # GL303
    NORM_WITHOUT_SKIPS = "norm-without-skips"  # GL304
    NARROW_WIDTH = "narrow-width"  # GL305
    OVERFLOW = "overflow"  # GL103
    SATURATED_LAYER = "saturated-layer"  # GL104
    RECURRENT = "recurrent"  # GL102: the gradient through time
    CONSTANT_INIT = "constant-init"  # GL201


class Probe(Vocab):
    """What ``--dynamic`` measures to confirm a finding (a finding's ``expect``). A rule
    declares the probes its findings use (``Rule.probes``); the verdicts are in
    ``gradlint.dynamic.verdict``."""

    #: the first weighted layer's gradient against the last's, and their absolute sizes
    VANISHING = "vanishing"
    EXPLODING = "exploding"
    #: every gradient below the head exactly zero
    DEAD = "dead"
    #: a deep plain stack trains worse than its shallow counterpart (the gradient ratio)
    DEGRADATION = "degradation"
    #: a constant-initialized weight's rows stay identical after a backward pass and a step
    SYMMETRIC = "symmetric"
    #: ... or stay nearly alike (a constant bias or a tiny constant)
    STARVED = "starved"
    #: the gradient at the recurrent input over the time steps
    RECURRENT_VANISHING = "recurrent-vanishing"
    RECURRENT_EXPLODING = "recurrent-exploding"

    @property
    def recurrent(self) -> bool:
        return self in (Probe.RECURRENT_VANISHING, Probe.RECURRENT_EXPLODING)


class Verdict(Vocab):
    """What a measurement made of a finding."""

    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"


class Category(Vocab):
    """What a layer of the graph is, for the flow model and the rules."""

    WEIGHTED = "weighted"  # Linear, Conv*, Embedding, attention: has a weight matrix
    RECURRENT = "recurrent"  # RNN, LSTM, GRU and their cells
    NORM = "norm"  # BatchNorm, LayerNorm, GroupNorm, ...
    ACTIVATION = "activation"
    PARAMETER = "parameter"  # a raw nn.Parameter used as a weight
    OTHER = "other"  # a known module with no weight (Dropout, pooling, reshaping)
    UNKNOWN = "unknown"  # a module gradlint could not resolve


#: the categories whose layers carry weights the gradient is measured on
WEIGHT_CARRYING = frozenset({Category.WEIGHTED, Category.RECURRENT, Category.PARAMETER})


class ModelKind(Vocab):
    """Where a trained model comes from (``TrainingLoop.model`` is ``(kind, name)``)."""

    LOCAL = "local"  # a class of the file: name is its name
    IMPORT = "import"  # imported: name is its qualified name
    TORCH = "torch"  # a torch.nn recurrent module: name is its kind (LSTM, GRU, ...)
