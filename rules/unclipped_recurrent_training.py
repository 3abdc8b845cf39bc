from __future__ import annotations

import re

from gradlint.diagnostics import Fix
from gradlint.flow.convention import THRESHOLDS
from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import amp_unscale, fix_position, is_autograd, runs_before, training_target
from gradlint.vocab import Applicability, Confidence, ModelKind, Probe, Severity

#: a model expression the fix can name again: ``model``, ``self.net``
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class UnclippedRecurrentTraining(Rule):
    """## What it does
    Finds training loops — `backward()` followed by an update (`optimizer.step()`,
    `scaler.step(optimizer)`, an LBFGS closure, a manual `p.data.add_(...)`; a function that is
    one such step counts too) — for a model that contains `nn.RNN`, `nn.LSTM`, `nn.GRU` or their
    cells, or writes a recurrence out (a `forward` loop feeding its state back through a layer,
    or a loop calling a one-step model with its state fed back: `out, h = rnn(x[i], h)`), with
    no gradient clipping between the backward pass and the update. A model handed to a
    framework's `Trainer` is judged by its setting: Lightning clips only with
    `gradient_clip_val`; Hugging Face clips by default (`max_grad_norm=1.0`) unless it is set to
    0 or None. A trainer's setting covers only the models it fits, not loops written out in the
    same file.

    How serious it is follows the flow model of the gradient through time at initialization:
    the per-step factor of the gradient norm (from the recurrent layers' own init, or for a
    one-step model fed its own state, from the layer that reads it) and the sequence length the
    code trains on, when it says (a `range(10)` over time steps, the stride of a truncated-BPTT
    `range(0, n, bptt)`, the input's shape, constants and `argparse` defaults):
    - **error** when the gradient is predicted to grow more than the exploding-ratio threshold
      over that length (or over 100 steps when the code does not say);
    - **info** when the length is known and the gradient is predicted not to grow that much:
      clipping is then a safeguard, not a fix;
    - **warning** otherwise: the gradient does not grow at init, but the sequences may be long.

    ## Why is this bad?
    Backpropagation through time multiplies the recurrent Jacobian once per step; when its
    largest singular value exceeds 1 the gradient grows exponentially with the sequence length
    and a single long batch can throw the weights far away (Pascanu, Mikolov & Bengio 2013).
    Gated cells (LSTM/GRU) tame vanishing, not explosion. The standard remedy is to rescale the
    gradient when its norm exceeds a threshold, after `backward()` and before the update:
    `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)` (common thresholds are
    0.25–5; Hugging Face's default is 1.0).

    Counted as clipping: `clip_grad_norm_`/`clip_grad_value_` (and the deprecated
    `clip_grad_norm`) under any import alias, `accelerator.clip_grad_norm_`,
    `fabric.clip_gradients`, a helper function of the file that clips, a gradient hook that
    clamps (`p.register_hook(lambda g: g.clamp(-1, 1))`), and Lightning's `gradient_clip_val`.
    The model may be defined in another file of the same run.

    ## Example
    ```python
    import torch
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, batch_first=True)
            self.out = nn.Linear(64, 5)

        def forward(self, x):
            return self.out(self.lstm(x)[0])

    def train(batches):
        model = Tagger()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in batches:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            optimizer.step()
    ```

    Use instead:
    ```python
    import torch
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, batch_first=True)
            self.out = nn.Linear(64, 5)

        def forward(self, x):
            return self.out(self.lstm(x)[0])

    def train(batches):
        model = Tagger()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in batches:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
    ```

    ## Known problems
    A model passed into the training function is followed to the calls of that function in the
    same file; when it cannot be resolved and every model class of the file is recurrent, the
    finding is reported with `heuristic` confidence, and otherwise not at all. Trainers that own
    the loop (Hugging Face `Trainer`, Lightning `Trainer`) are not loops in your code and are not
    reported.

    ## Fix safety
    The fix inserts `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)` as a
    statement right after the one that calls `backward()`, in the same block, so it runs
    before the update. `model` is the object whose parameters the optimizer updates. The
    clipping function is written through the file's own imports (`import torch as T` gives
    `T.nn.utils.clip_grad_norm_`, an imported `clip_grad_norm_` is called by its name);
    `import torch` is added when nothing fits. With a `GradScaler`
    (`scaler.scale(loss).backward()` ... `scaler.step(opt)`) it first inserts
    `scaler.unscale_(opt)` unless the loop unscales already, so the threshold applies to the
    true gradients; with Accelerate (`accelerator.backward(loss)`) it calls
    `accelerator.clip_grad_norm_`. No fix is offered when the optimized model is not a plain
    name (`model`, `self.net`) or the backward call is another framework's.

    It is unsafe: clipping changes the training run (every step whose gradient norm exceeds
    the threshold takes a shorter step), and 1.0 may be too tight or too loose for the model.

    ## References
    - Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*, ICML 2013
    - [torch.nn.utils.clip_grad_norm_](https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html)
    """

    code = "GL401"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = (Probe.RECURRENT_EXPLODING,)
    name = "unclipped-recurrent-training"
    severity = Severity.WARNING
    severities = {
        Severity.ERROR: "the flow model predicts the gradient through time explodes over the sequence length "
        "the code uses "
        "(100 steps when it does not say)",
        Severity.WARNING: "the growth through time is not predicted to explode, or is unknown",
        Severity.INFO: "the code's own sequence length keeps the predicted gradient through time bounded",
    }
    fix_safety = Applicability.UNSAFE
    summary = "a recurrent model is trained without gradient clipping: gradients may explode"

    VALID = [
        # clipped with an alias
        Valid(
            """
            import torch
            import torch.nn as nn
            from torch.nn.utils import clip_grad_norm_ as clip
            def fit(data):
                model = nn.GRU(4, 4)
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    opt.zero_grad()
                    model(x)[0].sum().backward()
                    clip(model.parameters(), 1.0)
                    opt.step()
            """
        ),
        # a non-recurrent model
        Valid(
            """
            import torch
            import torch.nn as nn
            def fit(data):
                model = nn.Linear(4, 4)
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    model(x).sum().backward()
                    opt.step()
            """
        ),
        # clipping in a helper function
        Valid(
            """
            import torch
            import torch.nn as nn
            def clip_all(m):
                torch.nn.utils.clip_grad_value_(m.parameters(), 0.5)
            def fit(data):
                model = nn.LSTM(4, 4)
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    model(x)[0].sum().backward()
                    clip_all(model)
                    opt.step()
            """
        ),
        # Lightning clips when gradient_clip_val is set
        Valid(
            """
            import torch.nn as nn
            import lightning.pytorch as pl
            class Seq(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.LSTM(4, 4)
                def forward(self, x):
                    return self.rnn(x)[0]
            pl.Trainer(gradient_clip_val=1.0).fit(Seq())
            """
        ),
    ]
    INVALID = [
        # Lightning does not clip by default
        Invalid(
            """
            import torch.nn as nn
            import lightning.pytorch as pl
            class Seq(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.LSTM(4, 4)
                def forward(self, x):
                    return self.rnn(x)[0]
            pl.Trainer(max_epochs=3).fit(Seq())
            """,
            line=9,
        ),
        # model built in the loop's function
        Invalid(
            """
            import torch
            import torch.nn as nn
            def fit(data):
                model = nn.LSTM(4, 4)
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    opt.zero_grad()
                    model(x)[0].sum().backward()
                    opt.step()
            """,
            line=9,
            fixed="""
            import torch
            import torch.nn as nn
            def fit(data):
                model = nn.LSTM(4, 4)
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    opt.zero_grad()
                    model(x)[0].sum().backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                    opt.step()
            """,
        ),
        # model passed in, resolved through the caller; AMP scaler step
        Invalid(
            """
            import torch
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.RNN(4, 4)
                def forward(self, x):
                    return self.rnn(x)[0]
            def fit(model, data):
                opt = torch.optim.SGD(model.parameters(), lr=0.1)
                scaler = torch.cuda.amp.GradScaler()
                for x in data:
                    scaler.scale(model(x).sum()).backward()
                    scaler.step(opt)
                    scaler.update()
            fit(Net(), [])
            """,
            line=14,
            fixed="""
            import torch
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.rnn = nn.RNN(4, 4)
                def forward(self, x):
                    return self.rnn(x)[0]
            def fit(model, data):
                opt = torch.optim.SGD(model.parameters(), lr=0.1)
                scaler = torch.cuda.amp.GradScaler()
                for x in data:
                    scaler.scale(model(x).sum()).backward()
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                    scaler.step(opt)
                    scaler.update()
            fit(Net(), [])
            """,
        ),
    ]

    def check_training(self, file, ctx) -> None:
        for fit in file.training.fits:
            # a framework's trainer owns the loop: it clips, or its setting says it does not
            if fit.clipping is not None or file.is_recurrent(fit.model) is not True:
                continue
            cls = fit.model[1].rsplit(".", 1)[-1]
            ctx.report(
                fit.span,
                f"`{fit.model_text}` ({cls}) contains recurrent layers and is trained by {fit.framework}'s "
                f"`Trainer` {fit.off}: its gradients may explode on long sequences",
                help=f"{fit.setting}",
            )
        if file.training.global_clipping:
            return
        for loop in file.training.loops:
            kinds = [e.kind for e in loop.events]
            b = kinds.index("backward")
            s = next(i for i in range(b, len(kinds)) if kinds[i] == "step")
            if "clip" in kinds:
                continue  # clipped; where it is, is GL402's question
            step = loop.events[s]
            recurrent = True if loop.feeds_back else file.is_recurrent(loop.model)
            confidence = Confidence.INFERRED
            requires = None
            if loop.model is not None and loop.model[0] == ModelKind.IMPORT:
                requires = ("recurrent", loop.model[1])
            elif recurrent is False:
                continue
            elif recurrent is None:
                # unresolved: only when every model class of the file is recurrent
                if not file.recurrent_classes or file.recurrent_classes != file.model_classes:
                    continue
                confidence = Confidence.HEURISTIC
            model = loop.model_text or "model"
            if loop.model and loop.model[0] in (ModelKind.LOCAL, ModelKind.TORCH):
                what = f"`{model}` ({loop.model[1]})"
            elif loop.model:
                module, _, cls = loop.model[1].rpartition(".")
                what = f"`{model}` ({cls}, imported from {module})"
            else:
                what = f"`{model}`"
            how = (
                "is run as a recurrence (a loop feeds its output state back into it)"
                if loop.feeds_back and file.is_recurrent(loop.model) is not True
                else "contains recurrent layers"
            )
            message = f"{what} {how} and is updated by `{step.text}` without gradient clipping after `backward()`"
            severity, tail = _judged(file, loop)
            message += tail
            if confidence == Confidence.HEURISTIC:
                defined = ", ".join(sorted(file.recurrent_classes))
                message += f" (the trained model is not resolved; this file defines {defined})"
            fix = None
            if loop.model_text and _DOTTED.match(loop.model_text):
                fix = Fix(
                    f"insert `torch.nn.utils.clip_grad_norm_({model}.parameters(), max_norm=1.0)` after `backward()`",
                    self.fix_safety,
                    data=(
                        ("backward", fix_position(ctx, loop.events[b].span)),
                        ("step", fix_position(ctx, step.span)),
                        ("model", model),
                    ),
                )
            ctx.report(
                step.span,
                message,
                severity=severity,
                confidence=confidence,
                requires=requires,
                help=f"call `torch.nn.utils.clip_grad_norm_({model}.parameters(), max_norm=1.0)` between `backward()`"
                f" and the update",
                related=(ctx.related(loop.events[b].span, "backward() here"),),
                target=training_target(loop, length=(_length(file, loop) or (None,))[0]),
                fix=fix,
            )

    def fix(self, source, diagnostic):
        """Insert the clipping call after the statement that calls ``backward()``."""
        import libcst

        data = dict(diagnostic.fix.data)
        backward = source.node_at(data["backward"], (libcst.Call,))
        step = source.node_at(data["step"])
        if backward is None or step is None or not isinstance(backward.func, (libcst.Attribute, libcst.Name)):
            return None
        lines = []
        receiver = backward.func.value if isinstance(backward.func, libcst.Attribute) else None
        if receiver is not None and any(a.keyword is None for a in backward.args) and not is_autograd(source, receiver):
            # a framework's backward: ``accelerator.backward(loss)`` clips through the framework
            if "accelerator" not in source.code(receiver).lower():
                return None
            clip, needed = f"{source.code(receiver)}.clip_grad_norm_", None
        else:
            clip, needed = source.spell(
                "torch.nn.utils.clip_grad_norm_",
                backward,
                prefer=("torch", "torch.nn", "torch.nn.utils"),
                same_as=("torch.nn.utils.clip_grad.clip_grad_norm_",),
            )
            unscale = amp_unscale(source, backward, step)
            if unscale is False:
                return None
            if unscale:
                lines.append(unscale)
        lines.append(f"{clip}({data['model']}.parameters(), max_norm=1.0)")
        if not runs_before(source, backward, step):
            return None
        table = source.insert_after(backward, [source.statement(line) for line in lines])
        if table is None:
            return None
        return source.add_import(source.rewrite(table), needed)


def _graph_of(file, loop):
    """The graph of the trained model: the model as the script configures it, else its class."""
    if loop.model is None or loop.model[0] != ModelKind.LOCAL:
        return None
    cls = loop.model[1]
    graphs = [g for g in file.graphs if g.factory_of == cls and g.site_span is not None]
    graphs += [g for g in file.graphs if g.name == cls]
    return graphs[0] if graphs else None


def _length(file, loop):
    """``(steps, SeqLength)``: the sequence length this loop trains on, along its model's time
    axis, else the one the model's own forward reshapes its input to (None: not said)."""
    from gradlint.graph.seqlen import recurrent_batch_first

    graph = _graph_of(file, loop)
    if loop.length is not None:
        steps = loop.length.along(recurrent_batch_first(graph) if graph is not None else None)
        if steps is not None:
            return steps, loop.length
    if graph is not None and graph.sequence is not None and graph.sequence[1].in_model:
        return graph.sequence  # the model's forward fixes it
    return None


def _judged(file, loop) -> tuple[str | None, str]:
    """The severity (None: the rule's) and what the flow model says, from the per-step gain of
    the gradient through time at init and the sequence length this loop uses."""
    import dataclasses

    from gradlint.flow import recurrent as R
    from gradlint.flow.hazards import judge
    from gradlint.flow.through_time import time_gain

    graph = _graph_of(file, loop)
    length = _length(file, loop)
    steps = length[0] if length else None
    tg = time_gain(graph, judge(graph).profile, fed_back=loop.feeds_back) if graph is not None else None
    if tg is None:
        if length is not None:
            return None, f" (over {length[1].describe(steps)}): its gradients may explode"
        return None, ": its gradients may explode on long sequences"
    tg = dataclasses.replace(tg, steps=steps or R.STEPS, known=steps is not None)
    over = (
        length[1].describe(tg.steps)
        if tg.known
        else (f"{tg.steps} steps (assumed: the code does not say how long its sequences are)")
    )
    per_step = f"its norm is multiplied by {tg.gain:.2g} per step in `{tg.layer}`"
    if tg.growth > THRESHOLDS["exploding-ratio"]:
        return Severity.ERROR, (
            f": at init the flow model predicts the gradient through time grows "
            f"{tg.growth:.2g}-fold over {over} ({per_step}), so it explodes"
        )
    if tg.known:
        grows = "does not grow" if tg.growth <= 1.0 else f"grows at most {tg.growth:.2g}-fold"
        return Severity.INFO, (
            f": over {over}, the flow model predicts the gradient through time {grows} at init "
            f"({per_step}); clipping is a safeguard here, not a fix"
        )
    return None, (
        f": its gradients may explode on long sequences (at init {per_step}, "
        f"but the code does not say how long its sequences are)"
    )
