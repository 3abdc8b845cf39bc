from __future__ import annotations

from gradlint.diagnostics import Fix
from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import amp_unscale, fix_position, training_target
from gradlint.vocab import Applicability, Probe, Severity


class MisplacedGradientClipping(Rule):
    """## What it does
    Finds gradient clipping that cannot take effect: called before `backward()` (it clips the
    gradients of the previous step, or `None`), after `optimizer.step()` (the update has already
    used the unclipped gradients), or on a different set of parameters than the optimizer
    updates.

    ## Why is this bad?
    Clipping rescales `p.grad` in place; it only protects the update that reads those gradients
    next. In a loop `zero_grad → forward → backward → clip → step`, any other position leaves
    the update unclipped while the code looks safe. With mixed precision, unscale first:
    `scaler.unscale_(optimizer)` and then clip, still before `scaler.step(optimizer)`.

    ## Example
    ```python
    import torch

    def train(model, batches):
        optimizer = torch.optim.Adam(model.parameters())
        for x, y in batches:
            optimizer.zero_grad()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
    ```

    Use instead:
    ```python
    import torch

    def train(model, batches):
        optimizer = torch.optim.Adam(model.parameters())
        for x, y in batches:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    ```

    ## Fix safety
    For clipping before `backward()` or after the update, the fix moves the clipping
    statement (with the comment lines just above it) to right after the statement that calls
    `backward()`, in that statement's block. With a `GradScaler` a `scaler.unscale_(opt)`
    right above the clipping moves with it, and one is inserted when the loop has none. No
    fix is offered when the clipping shares its line with other statements, is the only
    statement of its block, assigns a result and would move later (the result might be read
    in between), or for clipping of the wrong parameters (which parameters to clip is the
    author's choice).

    It is unsafe: the update then uses clipped gradients, which changes the training run.

    ## References
    - [torch.nn.utils.clip_grad_norm_](https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html)
    - [Automatic mixed precision: working with unscaled gradients](https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping)
    """

    code = "GL402"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = (Probe.RECURRENT_EXPLODING,)
    name = "misplaced-gradient-clipping"
    severity = Severity.WARNING
    fix_safety = Applicability.UNSAFE
    summary = "gradient clipping placed where it cannot affect the update"

    VALID = [
        Valid(
            """
            import torch
            def train(model, data):
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    opt.zero_grad()
                    model(x).sum().backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
            """
        ),
    ]
    INVALID = [
        # after the step
        Invalid(
            """
            import torch
            def train(model, data):
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    opt.zero_grad()
                    model(x).sum().backward()
                    opt.step()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            """,
            line=8,
            fixed="""
            import torch
            def train(model, data):
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    opt.zero_grad()
                    model(x).sum().backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
            """,
        ),
        # a different parameter set
        Invalid(
            """
            import torch
            def train(model, head, data):
                opt = torch.optim.Adam(model.parameters())
                for x in data:
                    opt.zero_grad()
                    head(model(x)).sum().backward()
                    torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
                    opt.step()
            """,
            line=7,
        ),
    ]

    def check_training(self, file, ctx) -> None:
        for loop in file.training.loops:
            kinds = [e.kind for e in loop.events]
            b = kinds.index("backward")
            s = next(i for i in range(b, len(kinds)) if kinds[i] == "step")
            clips = [(i, e) for i, e in enumerate(loop.events) if e.kind == "clip"]
            if not clips:
                continue
            between = [e for i, e in clips if b < i < s]
            if not between:
                i, clip = clips[0]
                where = "before `backward()`" if i < b else "after the update"
                effect = (
                    "it clips the previous step's gradients (or none), and this step's update is unclipped"
                    if i < b
                    else "the update has already used the unclipped gradients"
                )
                fix = Fix(
                    "move the clipping to right after `backward()`",
                    self.fix_safety,
                    data=(
                        ("backward", fix_position(ctx, loop.events[b].span)),
                        ("step", fix_position(ctx, loop.events[s].span)),
                    ),
                )
                ctx.report(
                    clip.span,
                    f"`{clip.text}` runs {where} (`{loop.events[s].text}`): {effect}",
                    help="move the clipping between `backward()` and the optimizer step",
                    related=(
                        ctx.related(loop.events[b].span, "backward() here"),
                        ctx.related(loop.events[s].span, "update here"),
                    ),
                    target=training_target(loop),
                    fix=fix,
                )
                continue
            for clip in between:
                if clip.params_of and loop.optimized and clip.params_of != loop.optimized:
                    ctx.report(
                        clip.span,
                        f"`{clip.text}` clips the gradients of `{clip.params_of}`, but the optimizer updates "
                        f"`{loop.optimized}`: the update is not clipped",
                        help=f"clip `{loop.optimized}.parameters()`, the parameters the optimizer updates",
                        target=training_target(loop),
                    )

    def fix(self, source, diagnostic):
        """Move the clipping statement to right after the statement that calls ``backward()``."""
        import libcst

        data = dict(diagnostic.fix.data)
        clip = source.node_for(diagnostic, (libcst.Call,))
        backward = source.node_at(data["backward"], (libcst.Call,))
        step = source.node_at(data["step"])
        if clip is None or backward is None or step is None:
            return None
        found, anchor = source.statement_of(clip), source.statement_of(backward)
        if found is None or anchor is None:
            return None
        small, line = found
        if not isinstance(line, libcst.SimpleStatementLine) or len(line.body) != 1:
            return None
        if not isinstance(anchor[1], libcst.SimpleStatementLine) or anchor[1] is line:
            return None
        later = source.before(line, anchor[1])  # clipping before backward moves down
        if isinstance(small, (libcst.Assign, libcst.AnnAssign, libcst.AugAssign)):
            if later or small.value is not clip:
                return None
        elif not (isinstance(small, libcst.Expr) and small.value is clip):
            return None
        block = source.parent(line)
        siblings = list(getattr(block, "body", ()))
        index = next((i for i, x in enumerate(siblings) if x is line), None)
        if index is None:
            return None
        moving = [line]
        unscale = amp_unscale(source, backward, step)
        if unscale is False:
            return None
        if index > 0 and _is_unscale(siblings[index - 1]):
            moving.insert(0, siblings[index - 1])  # ``scaler.unscale_(opt)`` goes with its clipping
            unscale = ""
        if len(moving) == len(siblings):
            return None  # the block would be left empty
        if any(source.contains(m, backward) for m in moving):
            return None
        table = {id(m): (lambda updated: libcst.RemovalSentinel.REMOVE) for m in moving}
        moved = [_keep_comments(m) for m in moving]
        if unscale:
            moved.insert(0, source.statement(unscale))
        return source.rewrite(source.insert_after(backward, moved, table))


def _is_unscale(statement) -> bool:
    import libcst

    if not (isinstance(statement, libcst.SimpleStatementLine) and len(statement.body) == 1):
        return False
    expr = statement.body[0]
    return (
        isinstance(expr, libcst.Expr)
        and isinstance(expr.value, libcst.Call)
        and isinstance(expr.value.func, libcst.Attribute)
        and expr.value.func.attr.value == "unscale_"
    )


def _keep_comments(line):
    """The statement as it moves: its own comment lines go with it, blank lines stay behind."""
    leading = list(line.leading_lines)
    while leading and leading[0].comment is None:
        leading.pop(0)
    return line.with_changes(leading_lines=leading)
