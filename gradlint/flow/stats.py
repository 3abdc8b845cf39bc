"""The flow profile's records: the forward statistics of a node (:class:`Stat`), a weighted
layer's predicted gradient (:class:`LayerFlow`) and the whole :class:`Profile` the propagation
pass (:mod:`gradlint.flow.propagate`) makes of a graph, with the quantities the hazard tests
judge (``first``, ``last``, ``ratio``, ``gain``, ``total``, ``finite``, the dead probability)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gradlint.flow.convention import FLOAT32_SUBNORMAL

#: the cap on second moments (beyond it a value is inf in any float type)
BIG = 1e300
#: the start of ``Stat.why`` for inputs too heavy-tailed for the finite-width correction
HEAVY_WHY = "heavy-tailed inputs"


@dataclass
class Stat:
    """Forward statistics of one node's output (per element)."""

    m: float = 0.0
    q: float = 1.0
    c: float = 0.0
    pos: float = 1.0
    width: int | None = None
    certain: bool = True
    overflow: bool = False
    #: for activations: fraction of saturated / dead units, and the probability that every
    #: unit of the layer is dead for the whole batch
    saturated: float = 0.0
    dead: float = 0.0
    dead_layer: float = 0.0
    why: str | None = None  # why the node is uncertain
    #: dying activations (ReLU) passed since the last batch normalization: after one, a narrow
    #: layer's inputs have collapsed towards one direction
    dying: int = 0
    #: fourth-moment ratio E[x^4] / E[x^2]^2 of the values (3: a centred Gaussian). Sums over a
    #: small fan-in of heavy-tailed inputs stay heavy-tailed, which raises what ``x ** 2`` makes
    #: of them (tracked only in graphs that have one)
    r4: float = 3.0
    #: the part of ``c`` that varies from position to position (a padded convolution on a small
    #: map gives border positions fewer taps, so a channel's mean differs by position): BatchNorm
    #: removes only the channel's mean over positions, so this part counts as its variance
    cp: float = 0.0
    #: the values as a mixture of Gaussians ``((weight, mean, variance), ...)`` where one
    #: Gaussian would misjudge an activation: a rectified stream is exactly 0 in part, so a
    #: residual add ``branch + relu(...)`` has a thinner lower tail than a Gaussian of its
    #: moments, and a ReLU after it passes more. None: Gaussian
    atoms: tuple | None = None

    def copy(self, **kw) -> "Stat":
        d = dict(self.__dict__)
        d["atoms"] = None  # a transform of the values: the mixture is not carried unless said
        d.update(kw)
        return Stat(**d)


@dataclass
class LayerFlow:
    """The prediction for one weighted layer, in forward order."""

    name: str
    node: int  # id of its first application
    grad_norm: float  # predicted ‖∇W‖
    out_grad_rms: float  # predicted RMS of the gradient at its output (first application)
    input_rms: float  # predicted RMS of its input
    certain: bool
    #: its gradient is exactly 0 at step 0 only because a zero-initialized layer (or a zero
    #: normalization scale) downstream blocks it; the first update unblocks it
    blocked: bool = False
    #: its gradient is exactly 0 because zero weights (not at the output) stop it: dead
    zeroed: bool = False
    numel: int = 0  # entries of its weight


@dataclass
class Profile:
    """The flow profile of one graph."""

    stats: dict  # node id -> Stat
    grads: dict  # node id -> g (second moment of dL/d output), None when no gradient reaches it
    layers: list  # LayerFlow, forward order (weighted layers only)
    overflow_node: int | None = None
    notes: list = field(default_factory=list)
    #: recurrent node id -> (spec, per-layer weights, inputs, steps), as unrolled
    rnn: dict = field(default_factory=dict)
    #: recurrent node id -> whether its sequence length is known (else recurrent.STEPS)
    rnn_steps_known: dict = field(default_factory=dict)
    #: variance of log ||x||^2 over the plain stack (finite width; 0 when not corrected)
    fluctuation: float = 0.0
    #: some weighted layer has a bias that is not exactly 0: past a dead layer, later layers
    #: still see a (constant) input and learn, so the net is not dead as a whole
    biased: bool = False

    # ------------------------------------------------------------ summaries
    def certain_layers(self) -> list:
        """The layers the tests judge: certain, and not blocked by a zero-initialized layer for
        the first step only (a zero output layer is a deliberate trick that recovers after one
        update, not a vanishing gradient)."""
        return [l for l in self.layers if l.certain and not l.blocked]

    @property
    def complete(self) -> bool:
        """Every weighted layer's prediction rests on modelled operations only."""
        return bool(self.layers) and all(l.certain for l in self.layers)

    def _pair(self):
        ls = self.certain_layers()
        return (ls[0], ls[-1]) if len(ls) >= 2 else (None, None)

    @property
    def first(self) -> float | None:
        ls = self.certain_layers()
        return ls[0].grad_norm if ls else None

    @property
    def last(self) -> float | None:
        ls = self.certain_layers()
        return ls[-1].grad_norm if ls else None

    @property
    def ratio(self) -> float | None:
        a, b = self._pair()
        if a is None:
            return None
        if b.grad_norm <= 0:
            return math.inf if a.grad_norm > 0 else None
        return a.grad_norm / b.grad_norm

    @property
    def gain(self) -> float | None:
        a, b = self._pair()
        if a is None or b.out_grad_rms <= 0:
            return None
        return a.out_grad_rms / b.out_grad_rms

    @property
    def total(self) -> float | None:
        ls = self.certain_layers()
        if not ls:
            return None
        return math.sqrt(min(sum(min(l.grad_norm, 1e150) ** 2 for l in ls), BIG))

    @property
    def finite(self) -> bool:
        return self.overflow_node is None

    @property
    def underflows(self) -> bool:
        """Every judged layer but the last gets a gradient below float32's smallest value
        (1.4e-45 per entry): torch computes exactly 0 for them, as for a dead net."""
        ls = self.certain_layers()
        if len(ls) < 2:
            return False
        return all(l.numel and l.grad_norm / math.sqrt(l.numel) < FLOAT32_SUBNORMAL for l in ls[:-1])

    @property
    def zeroed(self) -> bool:
        """The first judged layer's gradient is exactly 0, stopped by zero weights for good."""
        ls = self.certain_layers()
        return bool(ls) and ls[0].zeroed

    @property
    def zeroed_below_head(self) -> bool:
        """Every judged layer but the last gets exactly 0 (a dead net, as measured)."""
        ls = self.certain_layers()
        return len(ls) >= 2 and all(l.zeroed for l in ls[:-1])

    @property
    def dead_probability(self) -> float:
        """Probability that some activation layer is dead for the whole batch at init (certain
        nodes only): then every gradient below it is exactly 0."""
        alive = 1.0
        for st in self.stats.values():
            if st.certain and st.dead_layer > 0:
                alive *= 1.0 - st.dead_layer
        return 1.0 - alive
