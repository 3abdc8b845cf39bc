from __future__ import annotations

from gradlint.flow.hazards import GRADIENT_CAUSES
from gradlint.rule import Invalid, Rule, Valid
from gradlint.rules._common import confidence_of, flow_hazards
from gradlint.vocab import Probe, Severity


class MissingSkipConnection(Rule):
    """## What it does
    Finds a very deep plain path — many weighted layers in a row that the gradient must cross
    with no residual (skip) connection around them — even when the layers are normalized.

    ## Why is this bad?
    He et al. (CVPR 2016) trained plain networks of 20 and 56 layers, with BatchNorm, and the
    deeper one had *higher training error*: the degradation problem. Its gradients did not
    vanish (BatchNorm kept them healthy); the deep plain network is simply much harder to
    optimize, and residual connections (`y = x + F(x)`) remove the difficulty. This is an
    optimization warning, not a vanishing-gradient estimate: plain networks of up to about 30
    weighted layers (VGG-19, MobileNetV1) train fine.

    A path whose predicted gradient also leaves the healthy band is reported once, by the rule
    of its cause (GL101, GL202, GL203, GL301, or GL304 for a normalized path that explodes),
    not here: this rule is for deep plain paths whose gradient is predicted healthy at init.

    ## Example
    ```python
    import torch.nn as nn

    class Plain(nn.Module):
        def __init__(self, depth=40):
            super().__init__()
            layers = []
            for _ in range(depth):
                layers += [nn.Linear(256, 256), nn.LayerNorm(256), nn.ReLU()]
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            return self.body(x)
    ```

    Use instead:
    ```python
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, d=256):
            super().__init__()
            self.fc = nn.Linear(d, d)
            self.norm = nn.LayerNorm(d)

        def forward(self, x):
            return x + self.norm(self.fc(x)).relu()

    class Residual(nn.Module):
        def __init__(self, depth=40):
            super().__init__()
            self.body = nn.Sequential(*[Block() for _ in range(depth)])

        def forward(self, x):
            return self.body(x)
    ```

    ## Options
    - `max-plain-depth` (default `30`): the most weighted layers a plain path may have. ResNet's
      plain-34 is past it; VGG-19 (19) and MobileNetV1 (28, depthwise-separable) are not.

    ## References
    - He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016 (§4.1, plain-18 vs plain-34)
    - Simonyan & Zisserman, *Very Deep Convolutional Networks for Large-Scale Image Recognition*, ICLR 2015
    """

    code = "GL302"
    #: --dynamic measures what its findings claim (they carry a target)
    probes = (Probe.DEGRADATION,)
    name = "missing-skip-connection"
    severity = Severity.WARNING
    summary = "a very deep plain path without skip connections is hard to optimize (degradation)"
    options = {"max-plain-depth": 30}

    VALID = [
        # VGG-19 depth
        Valid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    layers = [m for _ in range(19) for m in (nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU())]
                    self.f = nn.Sequential(*layers)
                def forward(self, x):
                    return self.f(x)
            """
        ),
        # deep but residual
        Valid(
            """
            import torch.nn as nn
            class B(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.c = nn.Conv2d(8, 8, 3, padding=1)
                    self.n = nn.BatchNorm2d(8)
                def forward(self, x):
                    return x + self.n(self.c(x)).relu()
            class M(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.blocks = nn.ModuleList([B() for _ in range(50)])
                def forward(self, x):
                    for b in self.blocks:
                        x = b(x)
                    return x
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            class M(nn.Module):
                def __init__(self, depth=40):
                    super().__init__()
                    layers = [m for _ in range(depth) for m in (nn.Linear(64, 64), nn.LayerNorm(64), nn.ReLU())]
                    self.f = nn.Sequential(*layers)
                def forward(self, x):
                    return self.f(x)
            """,
            line=5,
        ),
    ]

    def check(self, graph, ctx) -> None:
        limit = int(ctx.options["max-plain-depth"])
        path = graph.deepest_plain_path()
        if path is None or path.depth <= limit:
            return
        # a gradient-flow hazard on the same layers is the finding to fix first
        hazard_layers = {l.name for h in flow_hazards(graph, *GRADIENT_CAUSES) for l in h.layers}
        if graph.layer_of(path.first).name in hazard_layers or graph.layer_of(path.last).name in hazard_layers:
            return
        first, last = graph.layer_of(path.first), graph.layer_of(path.last)
        message = (
            f"{path.depth} weighted layers in a row ({first.name} … {last.name}) with no skip connection: "
            f"very deep plain networks train worse than shallower ones even when normalized "
            f"(the degradation problem); the limit is {limit}"
        )
        ctx.report(
            first.span,
            message,
            confidence=confidence_of(graph),
            help="add residual connections (`x = x + block(x)`) around groups of layers",
            related=(ctx.related(last.span, f"{last.name}: layer {path.depth} of the path"),),
            layers=(first.name, last.name),
            expect=Probe.DEGRADATION,
        )
