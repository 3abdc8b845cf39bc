from __future__ import annotations

from gradlint.rule import Rule
from gradlint.rules._common import training_target


class UnclippedRecurrentTraining(Rule):
    """## What it does
    Finds training loops — `backward()` followed by an update (`optimizer.step()`,
    `scaler.step(optimizer)`, an LBFGS closure, a manual `p.data.add_(...)`) — for a model that
    contains `nn.RNN`, `nn.LSTM`, `nn.GRU` or their cells, with no gradient clipping between the
    backward pass and the update.

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
    finding is reported with `heuristic` confidence, and otherwise not at all. Trainers that own the loop (Hugging Face `Trainer`,
    Lightning `Trainer`) are not loops in your code and are not reported.

    ## References
    - Pascanu, Mikolov & Bengio, *On the difficulty of training recurrent neural networks*, ICML 2013
    - [torch.nn.utils.clip_grad_norm_](https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html)
    """

    code = "GL401"
    name = "unclipped-recurrent-training"
    severity = "warning"
    summary = "a recurrent model is trained without gradient clipping: gradients may explode"

    VALID = [
        # clipped with an alias
        "import torch\nimport torch.nn as nn\nfrom torch.nn.utils import clip_grad_norm_ as clip\n"
        "def fit(data):\n    model = nn.GRU(4, 4)\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        opt.zero_grad()\n        model(x)[0].sum().backward()\n"
        "        clip(model.parameters(), 1.0)\n        opt.step()\n",
        # a non-recurrent model
        "import torch\nimport torch.nn as nn\n"
        "def fit(data):\n    model = nn.Linear(4, 4)\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        model(x).sum().backward()\n        opt.step()\n",
        # clipping in a helper function
        "import torch\nimport torch.nn as nn\n"
        "def clip_all(m):\n    torch.nn.utils.clip_grad_value_(m.parameters(), 0.5)\n"
        "def fit(data):\n    model = nn.LSTM(4, 4)\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        model(x)[0].sum().backward()\n        clip_all(model)\n        opt.step()\n",
    ]
    INVALID = [
        # model built in the loop's function
        "import torch\nimport torch.nn as nn\n"
        "def fit(data):\n    model = nn.LSTM(4, 4)\n    opt = torch.optim.Adam(model.parameters())\n"
        "    for x in data:\n        opt.zero_grad()\n        model(x)[0].sum().backward()\n        opt.step()\n",
        # model passed in, resolved through the caller; AMP scaler step
        "import torch\nimport torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.rnn = nn.RNN(4, 4)\n"
        "    def forward(self, x):\n        return self.rnn(x)[0]\n"
        "def fit(model, data):\n    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n    scaler = torch.cuda.amp.GradScaler()\n"
        "    for x in data:\n        scaler.scale(model(x).sum()).backward()\n        scaler.step(opt)\n        scaler.update()\n"
        "fit(Net(), [])\n",
    ]

    def check_training(self, file, ctx) -> None:
        if file.training.global_clipping:
            return
        for loop in file.training.loops:
            kinds = [e.kind for e in loop.events]
            b = kinds.index("backward")
            s = next(i for i in range(b, len(kinds)) if kinds[i] == "step")
            if "clip" in kinds:
                continue  # clipped; where it is, is GL402's question
            step = loop.events[s]
            recurrent = file.is_recurrent(loop.model)
            confidence = "inferred"
            requires = None
            if loop.model is not None and loop.model[0] == "import":
                requires = ("recurrent", loop.model[1])
            elif recurrent is False:
                continue
            elif recurrent is None:
                # unresolved: only when every model class of the file is recurrent
                if not file.recurrent_classes or file.recurrent_classes != file.model_classes:
                    continue
                confidence = "heuristic"
            model = loop.model_text or "model"
            if loop.model and loop.model[0] in ("local", "torch"):
                what = f"`{model}` ({loop.model[1]})"
            elif loop.model:
                module, _, cls = loop.model[1].rpartition(".")
                what = f"`{model}` ({cls}, imported from {module})"
            else:
                what = f"`{model}`"
            message = (
                f"{what} contains recurrent layers and is updated by `{step.text}` without gradient "
                f"clipping after `backward()`: its gradients may explode on long sequences"
            )
            if confidence == "heuristic":
                message += f" (the trained model is not resolved; this file defines {', '.join(sorted(file.recurrent_classes))})"
            ctx.report(
                step.span, message, confidence=confidence, requires=requires,
                help=f"call `torch.nn.utils.clip_grad_norm_({model}.parameters(), max_norm=1.0)` between `backward()` and the update",
                related=(ctx.related(loop.events[b].span, "backward() here"),),
                target=training_target(loop),
            )
