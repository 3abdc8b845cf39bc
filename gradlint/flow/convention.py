"""The measurement convention and the hazard tests: one home for the static flow model and
``--dynamic`` alike.

**Input.** A batch of ``BATCH`` examples, every input element drawn from N(0, 1) (integer
token ids uniformly over the vocabulary for embeddings).

**Loss.** A fixed random linear read-out of the model's output ``t``:
``loss = sum(t * r) / (BATCH * sqrt(P))`` with ``r ~ N(0, 1)`` and ``P`` the number of output
elements per example. The gradient reaching the output then has a second moment of
``1 / (BATCH**2 * P)`` per element whatever the network does, so absolute gradient norms mean
the same for every model, and the static prediction and the measurement start the backward
pass from the same place.

**Quantities** (at initialization, geometric mean over seeds when measured):

- ``first``: ``‖∇W‖`` of the first weighted layer in forward order; ``last`` of the last;
- ``ratio``: ``first / last``;
- ``gain``: root mean square of the gradient at the first weighted layer's output over the
  same at the last one's (the backpropagated signal itself, per unit). Reported, not judged:
  per unit, it falls with every pooling or striding (a global average over 16 x 16 positions
  divides it by 256) while the weights' gradients stay healthy;
- ``total``: the norm of the whole gradient (every weighted layer's ``‖∇W‖`` in quadrature);
- ``finite``: no inf/NaN in the forward or backward pass;
- ``dead``: every gradient below the head is exactly zero (a dead ReLU net).

Pure Python: imported by the static path, so nothing here may import torch.
"""

from __future__ import annotations

import math

from gradlint import docs_url
from gradlint.vocab import Hazard

#: examples per measured batch
BATCH = 8
#: spatial size per dimension of the input --dynamic feeds a convolutional model
SPATIAL = {1: 64, 2: 64, 3: 16}
#: tokens per example --dynamic feeds an embedding
TOKENS = 32
#: float32 limits: a value beyond FLOAT32_MAX is inf in torch's default dtype
FLOAT32_MAX = 3.4028234663852886e38
#: the smallest positive float32 (subnormal): anything smaller is exactly 0
FLOAT32_SUBNORMAL = 1.401298464324817e-45


#: defaults; ``[tool.gradlint.dynamic.thresholds]`` overrides them for --dynamic
THRESHOLDS = {
    "vanishing-ratio": 1e-3,  # ||grad W_first|| / ||grad W_last|| below this: vanishing (AUTOTRAINER)
    "vanishing-absolute": 1e-7,  # ||grad W_first|| below this: vanished whatever the ratio
    "exploding-ratio": 70.0,  # first/last above this: exploding (AUTOTRAINER)
    "exploding-absolute": 1e3,  # ||grad W_first|| above this: exploded
    "exploding-total": 1e3,  # the whole gradient's norm above this: exploded
    "vanishing-gain": 1e-4,  # RMS of dL/dz at the first layer's output over the last's below this
    "exploding-gain": 1e4,  # ... above this: exploding
    "starved-cosine": 0.99,  # rows of a constant-initialized weight still this alike: starved
    "recurrent-exploding": 1e3,  # largest gradient norm reaching an update over the BPTT steps
    "recurrent-vanishing": 1e-3,  # first/last time step of the gradient at the recurrent input
    "symmetry": 1e-6,  # relative spread of a weight's rows at or below this: identical units
    "dead-probability": 0.5,  # predicted probability that a whole layer is dead at init
}


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def classify(
    ratio=None, first=None, total=None, gain=None, finite=True, dead=False, thresholds: dict | None = None
) -> tuple[Hazard, str | None]:
    """``(hazard, test)``: the hazard class of one model's gradients and the name of the test
    that decided it (None when healthy). Missing numbers (None or NaN) are skipped; ``gain``
    is accepted for the record and not judged (see the module docstring).

    Order: non-finite gradients are an explosion; a dead net is dead; then the explosion
    tests (an enormous first-layer or total gradient is exploding whatever the ratio says);
    then the vanishing tests.
    """
    t = {**THRESHOLDS, **(thresholds or {})}
    if not finite:
        return Hazard.EXPLODING, "overflow"
    if dead:
        return Hazard.DEAD, "dead"
    if _finite(first) and first > t["exploding-absolute"]:
        return Hazard.EXPLODING, "first"
    if _finite(total) and total > t["exploding-total"]:
        return Hazard.EXPLODING, "total"
    if _finite(ratio) and ratio > t["exploding-ratio"]:
        return Hazard.EXPLODING, "ratio"
    if _finite(ratio) and ratio < t["vanishing-ratio"]:
        return Hazard.VANISHING, "ratio"
    if _finite(first) and first < t["vanishing-absolute"]:
        return Hazard.VANISHING, "first"
    return Hazard.NONE, None


def describe_tests(t: dict | None = None) -> str:
    """The shared tests in words, from the thresholds themselves (rule docs include it)."""
    t = {**THRESHOLDS, **(t or {})}
    return (
        "The vanishing and exploding thresholds are not options of this rule: they are the tests "
        "`--dynamic` applies to measurements, kept in one place for both (`gradlint.flow.convention`): "
        f"the first layer's weight gradient below {t['vanishing-ratio']:g} of the last layer's, or its "
        f"norm below {t['vanishing-absolute']:g}, is vanishing; above {t['exploding-ratio']:g} times the "
        f"last layer's, a norm above {t['exploding-absolute']:g} for the first layer or above "
        f"{t['exploding-total']:g} for the whole gradient, or an overflow, is exploding."
    )


def classify_seeds(seeds: list[dict], thresholds: dict | None = None) -> tuple[Hazard, str | None]:
    """The hazard most seeds show, each seed (a dict with ``ratio``, ``first``, ``total``,
    ``finite``, ``dead``) judged by :func:`classify`: one unlucky seed (a net dead in one seed
    of three, or a rare overflow) does not decide. With no majority, the most severe class
    among those seen, in the order exploding, dead, vanishing."""
    votes: dict[Hazard, list] = {}
    for s in seeds:
        h, test = classify(
            s.get("ratio"),
            s.get("first"),
            s.get("total"),
            s.get("gain"),
            s.get("finite", True),
            bool(s.get("dead")),
            thresholds,
        )
        votes.setdefault(h, []).append(test)
    if not votes:
        return Hazard.NONE, None
    top, tests = max(votes.items(), key=lambda kv: len(kv[1]))
    if len(tests) * 2 > len(seeds):
        return top, tests[0]
    for h in (Hazard.EXPLODING, Hazard.DEAD, Hazard.VANISHING, Hazard.NONE):
        if h in votes:
            return h, votes[h][0]
    return Hazard.NONE, None


def geomean(values) -> float:
    """The geometric mean of measurements over seeds: NaN skipped; any inf makes it inf, any
    0 makes it 0; NaN when nothing is left."""
    vals = [v for v in values if v is not None and v == v]
    if not vals:
        return float("nan")
    if any(v == float("inf") for v in vals):
        return float("inf")
    if any(v <= 0 for v in vals):
        return 0.0
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def describe_calibration() -> str:
    """The sentence that introduces a rule doc's calibration excerpt (``{calibration-note}``)."""
    return (
        f"Prediction against measurement (torch backward passes at init, 3 seeds, batch {BATCH}, the\n"
        f"loss convention of `--dynamic`; ratio = ‖∇W first‖/‖∇W last‖, first = ‖∇W first‖; the whole\n"
        f"grid, and how it is measured, is gradlint's calibration table, {CALIBRATION_URL}):"
    )


#: where gradlint's calibration grid is published (it is measured from a clone of the repository)
CALIBRATION_URL = docs_url("calibration.md")


#: the documentation the measured rules (GL901-GL903) share, by placeholder
MEASURED_DOC = {
    "measured-scope": (
        "It is made by `gradlint check --dynamic` only, which measures every model of the checked\n"
        "files with real backward passes (the scope `--dynamic=findings` measures only the models\n"
        "that have static findings, and makes none of these). The finding is at the model's class,\n"
        "or at the line that builds and configures it (`model = Net(...)`); its `evidence` holds\n"
        "the measured numbers, the test that decided them, the per-layer weight-gradient norms and,\n"
        "where the gradient leaves the healthy band, the layer where it does."
    ),
    "measured-convention": (
        "The measurement uses the convention of the static flow model: a batch of 8 inputs drawn\n"
        "from N(0, 1) (token ids drawn uniformly), the loss a fixed random read-out of the output\n"
        "with a unit gradient per example, several seeds, and the class most seeds show.\n"
        "{shared-thresholds}\n\n"
        "A finding of this code means the static rules missed the hazard: the model reads a value\n"
        "gradlint cannot resolve (a scale computed at run time, a layer from a library it cannot\n"
        "see), or the hazard comes from a combination no rule covers. The static findings of the\n"
        "model, when it has some, carry their own verdicts."
    ),
    "measured-known-problems": (
        "The measurement is at initialization, on synthesized inputs; a model whose forward needs\n"
        "real data is measured only when its inputs are configured (`inputs`, `kwargs-inputs` or\n"
        '`input-fn` under `[tool.gradlint.dynamic.models."file.py::Class"]`).'
    ),
    "measured-references": (
        "- [Glorot & Bengio, Understanding the difficulty of training deep feedforward neural networks (2010)]"
        "(https://proceedings.mlr.press/v9/glorot10a.html)\n"
        "- [He et al., Delving Deep into Rectifiers (2015)](https://arxiv.org/abs/1502.01852)\n"
        "- [Schoenholz et al., Deep Information Propagation (2017)](https://arxiv.org/abs/1611.01232)"
    ),
}
