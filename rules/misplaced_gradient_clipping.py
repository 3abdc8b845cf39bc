from __future__ import annotations

from gradlint.rule import Rule
from gradlint.rules._common import training_target


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

    ## References
    - [torch.nn.utils.clip_grad_norm_](https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html)
    - [Automatic mixed precision: working with unscaled gradients](https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping)
    """

    code = "GL402"
    name = "misplaced-gradient-clipping"
    severity = "warning"
    summary = "gradient clipping placed where it cannot affect the update"

    VALID = [
        "import torch\ndef train(model, data):\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        opt.zero_grad()\n        model(x).sum().backward()\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n        opt.step()\n",
    ]
    INVALID = [
        # after the step
        "import torch\ndef train(model, data):\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        opt.zero_grad()\n        model(x).sum().backward()\n        opt.step()\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n",
        # a different parameter set
        "import torch\ndef train(model, head, data):\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        opt.zero_grad()\n        head(model(x)).sum().backward()\n"
        "        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)\n        opt.step()\n",
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
                ctx.report(
                    clip.span, f"`{clip.text}` runs {where} (`{loop.events[s].text}`): {effect}",
                    help="move the clipping between `backward()` and the optimizer step",
                    related=(ctx.related(loop.events[b].span, "backward() here"), ctx.related(loop.events[s].span, "update here")),
                    target=training_target(loop),
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
