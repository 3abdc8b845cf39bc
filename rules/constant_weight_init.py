from __future__ import annotations

from gradlint.diagnostics import Fix
from gradlint.graph import catalog
from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import confidence_of, describe_names, flow_direction, flow_hazards, flow_sentence
from gradlint.vocab import WEIGHT_CARRYING, Applicability, Category, Cause, Confidence, Probe, Severity


class ConstantWeightInit(Rule):
    """## What it does
    Finds weights initialized to a constant (`nn.init.constant_`, `ones_`, `zeros_`,
    `w.fill_(c)`, `w.zero_()`, `nn.Parameter(torch.full(...))`) on a layer whose output feeds
    other weighted layers.

    ## Why is this bad?
    With constant weights every unit of the layer computes the same function of its input and
    receives the same gradient, so the units never become different: the layer behaves like a
    single unit (the symmetry is never broken). When the biases are constant too (or absent)
    the symmetry is exact and permanent; when PyTorch's random default biases are left in
    place only the biases tell the units apart, and they learn nearly alike.
    Zero weights additionally block the gradient to every layer before them.

    Not reported: biases, normalization-layer weights (set to 1 by design), the output layer
    (it feeds no other weighted layer, so a zero-initialized head is a common, safe choice),
    and a zero-initialized last layer of a residual branch (zero-init-residual, ReZero, Fixup).

    ## Example
    ```python
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
            self.apply(self._init)

        def _init(self, m):
            if isinstance(m, nn.Linear):
                nn.init.constant_(m.weight, 0.01)
                nn.init.zeros_(m.bias)

        def forward(self, x):
            return self.net(x)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
            self.apply(self._init)

        def _init(self, m):
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

        def forward(self, x):
            return self.net(x)
    ```

    ## Known problems
    When the model's `forward` cannot be resolved, whether the layer feeds another one is
    unknown; the finding is then reported with `heuristic` confidence unless the layer is the
    last weighted layer the model registers.

    ## Fix safety
    The fix replaces an `nn.init.constant_`/`ones_`/`zeros_` call, or a `w.fill_(c)` /
    `w.zero_()`, with the initializer that matches the activation after the layer
    (`xavier_uniform_` for sigmoid/tanh, `kaiming_normal_` with the matching `nonlinearity`
    otherwise). The tensor argument is kept as written and the call keeps its module path
    (`nn.init.constant_(m.weight, 0.5)` becomes `nn.init.kaiming_normal_(m.weight,
    nonlinearity="relu")`); a method call is written through the file's own imports, and a
    bare `zeros_` imported from `torch.nn.init` gets its initializer imported the same way.
    No fix is offered for a constant tensor inside `nn.Parameter(...)`, or for a loop over
    parameters (`for p in self.parameters()`), which also reaches the 1-D biases these
    initializers reject.

    It is unsafe: it changes the model's initial weights, and so its training run.

    ## References
    - Goodfellow, Bengio & Courville, *Deep Learning*, §8.4 (breaking symmetry), 2016
    - Glorot & Bengio, *Understanding the difficulty of training deep feedforward neural networks*, AISTATS 2010
    - [torch.nn.init](https://pytorch.org/docs/stable/nn.init.html)
    """

    code = "GL201"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = (Probe.SYMMETRIC, Probe.STARVED)
    name = "constant-weight-init"
    severity = Severity.ERROR
    severities = {
        Severity.ERROR: "a zero init, or a constant one with constant biases too: "
        "nothing can ever tell the units apart",
        Severity.WARNING: "a constant init whose random biases still tell the units apart, barely",
    }
    fix_safety = Applicability.UNSAFE
    summary = "a weight initialized to a constant keeps its units identical (symmetric or dead)"
    claims = (Cause.CONSTANT_INIT,)

    VALID = [
        # constant biases, random weights
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.b = nn.Linear(8, 2)
                    nn.init.xavier_uniform_(self.a.weight)
                    nn.init.constant_(self.a.bias, 0.1)
                def forward(self, x):
                    return self.b(self.a(x).relu())
            """
        ),
        # zero-initialized output head
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.head = nn.Linear(8, 2)
                    nn.init.zeros_(self.head.weight)
                def forward(self, x):
                    return self.head(self.a(x).relu())
            """
        ),
        # normalization weights set to one
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.norm = nn.LayerNorm(8)
                    self.b = nn.Linear(8, 2)
                    nn.init.ones_(self.norm.weight)
                def forward(self, x):
                    return self.b(self.norm(self.a(x)))
            """
        ),
        # zero-init last layer of a residual branch
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.b = nn.Linear(8, 8)
                    self.out = nn.Linear(8, 2)
                    nn.init.zeros_(self.b.weight)
                def forward(self, x):
                    x = x + self.b(self.a(x).relu())
                    return self.out(x)
            """
        ),
    ]
    INVALID = [
        # constant_ via self.apply
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
                    self.apply(self.init)
                def init(self, m):
                    if isinstance(m, nn.Linear):
                        nn.init.constant_(m.weight, 0.5)
                def forward(self, x):
                    return self.net(x)
            """,
            line=9,
            fixed="""
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
                    self.apply(self.init)
                def init(self, m):
                    if isinstance(m, nn.Linear):
                        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                def forward(self, x):
                    return self.net(x)
            """,
        ),
        # fill_ under no_grad
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.b = nn.Linear(8, 2)
                    with torch.no_grad():
                        self.a.weight.fill_(0.1)
                def forward(self, x):
                    return self.b(torch.tanh(self.a(x)))
            """,
            line=9,
            fixed="""
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.b = nn.Linear(8, 2)
                    with torch.no_grad():
                        nn.init.xavier_uniform_(self.a.weight)
                def forward(self, x):
                    return self.b(torch.tanh(self.a(x)))
            """,
        ),
        # zeros over named_parameters
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(8, 8)
                    self.b = nn.Linear(8, 2)
                    for name, p in self.named_parameters():
                        nn.init.zeros_(p)
                def forward(self, x):
                    return self.b(self.a(x).relu())
            """,
            line=8,
        ),
        # raw parameter from torch.ones
        Invalid(
            """
            import torch
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w1 = nn.Parameter(torch.ones(8, 8))
                    self.w2 = nn.Parameter(torch.randn(8, 2))
                def forward(self, x):
                    return torch.relu(x @ self.w1) @ self.w2
            """,
            line=6,
        ),
    ]

    def check(self, graph, ctx) -> None:
        weighted = [l for l in graph.layers() if l.category in WEIGHT_CARRYING]
        groups: dict[tuple, list] = {}
        for layer in weighted:
            init = graph.init_of(layer, "weight")
            if init is None or not init.is_constant or init.span is None:
                continue
            if layer.category == Category.PARAMETER and (
                not graph.applications(layer) or len(layer.params.get("shape") or ()) == 1
            ):
                # a raw parameter is a weight only where forward multiplies by it (``x @ W``,
                # ``F.linear``); tokens, position tables, biases and scales are not
                continue
            feeds = graph.feeds_weighted(layer)
            confidence = confidence_of(graph)
            if feeds is False:
                continue
            if feeds is None:
                if layer is weighted[-1]:
                    continue
                confidence = Confidence.HEURISTIC
            if init.value == 0.0 and graph.ends_in_skip(layer):
                continue
            groups.setdefault((init.span.line, init.span.col, init.text), []).append((layer, init, confidence))
        for (_, _, text), items in groups.items():
            layers = [l for l, _, _ in items]
            init = items[0][1]
            confidence = Confidence.HEURISTIC if any(c == Confidence.HEURISTIC for _, _, c in items) else items[0][2]
            biases_constant = all(self._bias_constant(graph, l) for l in layers)
            kinds = sorted({l.kind for l in layers})
            what = f"nn.{kinds[0]}" if len(kinds) == 1 and layers[0].category != Category.PARAMETER else "layer"
            where = (
                layers[0].name
                if len(layers) == 1
                else f"{len(layers)} {what} weights ({describe_names(layers[0].name, layers[-1].name)})"
            )
            value = "zero" if init.value == 0.0 else "constant"
            if init.value == 0.0:
                effect = "the gradient to the layers before it is zero, and its units stay identical to each other"
                severity = Severity.ERROR
            elif biases_constant:
                effect = (
                    "its units start identical and get identical gradients, so they stay identical: "
                    "the layer works as one unit"
                )
                severity = Severity.ERROR
            else:
                effect = (
                    "only the random biases tell its units apart, so they start nearly identical and learn nearly alike"
                )
                severity = Severity.WARNING
            feed = "feeds" if len(layers) == 1 else "feed"
            message = f"{value} init `{text}` on {where}, which {feed} other layers: {effect}"
            remedy, fix = self._remedy(graph, layers[0], init, ctx)
            related = tuple(
                ctx.related(
                    l.span,
                    f"{l.name} = nn.{l.kind}(...)"
                    if l.category != Category.PARAMETER
                    else f"{l.name} = nn.Parameter(...)",
                )
                for l in layers[:8]
            )
            flow = next(
                (
                    h
                    for h in flow_hazards(graph, Cause.CONSTANT_INIT)
                    if set(h.detail.get("layers", ())) & {l.name for l in layers}
                ),
                None,
            )
            if flow is not None:
                message += f"; {flow_direction(flow)} at init — {flow_sentence(flow)}"
            ctx.report(
                init.span,
                message,
                severity=severity,
                confidence=confidence,
                help=remedy,
                related=related,
                fix=fix,
                layers=tuple(l.name for l in layers),
                expect=Probe.STARVED if severity == Severity.WARNING else Probe.SYMMETRIC,
                hazard=flow.hazard if flow is not None else "none",
                prediction=flow.prediction() if flow is not None else (),
            )

    @staticmethod
    def _bias_constant(graph, layer) -> bool:
        if layer.category == Category.PARAMETER:
            return True
        if layer.params.get("bias", True) is False:
            return True
        bias = layer.inits.get("bias")
        return bias is not None and bias.is_constant

    @staticmethod
    def _remedy(graph, layer, init, ctx):
        act = graph.next_activation(layer)
        info = catalog.activation_info(act)
        if info is not None:
            name, keywords = "xavier_uniform_", ()
            help = (
                f"use `nn.init.xavier_uniform_(…weight)`, which matches the {act} activation; keep constants for biases"
            )
        else:
            nonlinearity = "leaky_relu" if act == "leaky_relu" else "relu"
            name, keywords = "kaiming_normal_", (("nonlinearity", nonlinearity),)
            help = (
                f'use `nn.init.kaiming_normal_(…weight, nonlinearity="{nonlinearity}")` (Xavier for sigmoid/tanh); '
                "keep constants for biases"
            )
        fix = None
        # one call that initializes biases too (``for p in self.parameters(): nn.init.zeros_(p)``)
        # cannot become Kaiming or Xavier, which reject 1-D tensors: no fix, and the help says how
        covers_biases = any(
            (bias := l.inits.get("bias")) is not None and bias.span == init.span for l in graph.layers()
        )
        if covers_biases:
            help = help.replace("use `", "for the weights only (`if p.dim() > 1:`), use `", 1)
        # ``nn.init.constant_(w, c)`` / ``constant_(w, c)`` (imported from torch.nn.init) /
        # ``w.fill_(c)``, ``w.zero_()``; a constant tensor inside ``nn.Parameter(...)`` is not rewritten
        if init.via != "parameter-factory" and init.target and init.span is not None and not covers_biases:
            if init.callee and "." in init.callee:
                spelled = f"{init.callee.rsplit('.', 1)[0]}.{name}"
            else:
                spelled = f"nn.init.{name}"
            extra = "".join(f", {k}={v!r}".replace("'", '"') for k, v in keywords)
            fix = Fix(
                f"replace with `{spelled}({init.target}{extra})`",
                Applicability.UNSAFE,
                data=(("initializer", name), ("keywords", keywords), ("form", "call" if init.callee else "method")),
            )
        return help, fix

    #: the calls this fixer rewrites: nn.init functions and in-place tensor methods
    _CONSTANT_FUNCTIONS = frozenset({"constant_", "zeros_", "ones_", "constant", "zeros", "ones"})
    _CONSTANT_METHODS = frozenset({"fill_", "zero_"})

    def fix(self, source, diagnostic):
        """Rewrite the constant initializer call at the finding into ``data["initializer"]``,
        keeping the tensor argument as written and the module path the call used."""
        import libcst

        data = dict(diagnostic.fix.data)
        name, keywords = data["initializer"], data["keywords"]
        call = source.node_for(diagnostic, (libcst.Call,))
        if call is None:
            return None
        extra = source.expression("f(" + ", ".join(f'{k}="{v}"' for k, v in keywords) + ")").args if keywords else ()
        func = call.func
        if data["form"] == "method":
            if not (isinstance(func, libcst.Attribute) and func.attr.value in self._CONSTANT_METHODS):
                return None
            spelled, needed = source.spell(
                f"torch.nn.init.{name}", call, prefer=(f"torch.nn.init.{name}", "torch.nn.init", "torch.nn", "torch")
            )
            new_call = libcst.Call(func=source.expression(spelled), args=[libcst.Arg(func.value), *extra])
        else:
            if isinstance(func, libcst.Attribute) and func.attr.value in self._CONSTANT_FUNCTIONS:
                new_func, needed = func.with_changes(attr=libcst.Name(name)), None  # same module path
            elif isinstance(func, libcst.Name) and any(  # ``from torch.nn.init import zeros_ as z``
                n == func.value and q.startswith("torch.nn.init.") and q.rsplit(".", 1)[1] in self._CONSTANT_FUNCTIONS
                for n, q in source.bindings(call)
            ):
                spelled, needed = source.spell(f"torch.nn.init.{name}", call, fallback=("torch.nn.init", name))
                new_func = source.expression(spelled)
            else:
                return None
            tensor = next((a for a in call.args if a.keyword is not None and a.keyword.value == "tensor"), None)
            if tensor is None:
                positional = [a for a in call.args if a.keyword is None and not a.star]
                if not positional:
                    return None
                tensor = positional[0]
            args = [tensor.with_changes(comma=libcst.MaybeSentinel.DEFAULT), *extra]
            # the layout of the closing parenthesis (space, trailing comma) stays as written
            last = call.args[-1]
            args[-1] = args[-1].with_changes(comma=last.comma, whitespace_after_arg=last.whitespace_after_arg)
            new_call = call.with_changes(func=new_func, args=args)
        if self._loop_variable(source, call, new_call.args[0].value):
            return None  # ``for p in self.parameters()``: biases (1-D) too, which these initializers reject
        module = source.rewrite({id(call): lambda updated: new_call})
        return source.add_import(module, needed)

    @staticmethod
    def _loop_variable(source, node, tensor) -> bool:
        """``tensor`` is a name a ``for`` (or comprehension) around ``node`` iterates with."""
        import libcst

        if not isinstance(tensor, libcst.Name):
            return False

        def names(target):
            if isinstance(target, libcst.Name):
                yield target.value
            for child in target.children:
                yield from names(child)

        for a in source.ancestors(node):
            targets = [a.target] if isinstance(a, libcst.For) else []
            comp = getattr(a, "for_in", None)  # comprehensions
            while isinstance(comp, libcst.CompFor):
                targets.append(comp.target)
                comp = comp.inner_for_in
            if any(tensor.value in set(names(t)) for t in targets):
                return True
        return False
