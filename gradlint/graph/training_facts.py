"""What the training code of a file says: its loops (backward, clipping and update, in order)
and the models framework trainers fit. The records :mod:`gradlint.graph.training` produces."""

from __future__ import annotations

from dataclasses import dataclass, field

from gradlint.graph.model import Span
from gradlint.graph.seqlen import SeqLength


@dataclass(frozen=True)
class Event:
    kind: str  # backward | clip | step
    span: Span
    text: str
    #: for a clip: the object whose parameters it clips (``model`` in ``model.parameters()``)
    params_of: str | None = None


@dataclass
class TrainingLoop:
    span: Span  # the loop statement
    scope: str  # function name, or "<module>"
    events: list[Event] = field(default_factory=list)
    #: what the optimizer updates (``model`` in ``Adam(model.parameters())``), when known
    optimized: str | None = None
    #: the trained model: (ModelKind.LOCAL, class name) | (IMPORT, qualname) | (TORCH, kind) | None
    model: tuple | None = None
    model_text: str | None = None
    #: the loop feeds the model's output back into it (``out, h = rnn(x[i], h)``): recurrent
    #: whatever its class
    feeds_back: bool = False
    #: how many time steps the loop backpropagates through, when the code says
    #: (:mod:`gradlint.graph.seqlen`)
    length: SeqLength | None = None


@dataclass
class FrameworkFit:
    """A model trained by a framework's trainer, which owns the loop (and the clipping)."""

    span: Span  # the Trainer(...) construction
    framework: str  # "Lightning" | "Hugging Face"
    model_text: str | None
    model: tuple | None
    clipping: str | None  # what clips the gradients, or None: nothing does
    setting: str  # how to turn clipping on there
    off: str = ""  # when nothing clips: what the code says that makes it so


@dataclass
class TrainingFacts:
    loops: list[TrainingLoop]
    #: clipping for every loop of the file: a gradient hook that clamps (None when there is
    #: none; a trainer's clipping setting belongs to the models it fits, see ``fits``)
    global_clipping: str | None
    fits: list[FrameworkFit] = field(default_factory=list)
