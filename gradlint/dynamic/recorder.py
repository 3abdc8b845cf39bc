"""In the child of ``--dynamic``: what one backward pass of a model shows, layer by layer.

:class:`Recorder` hooks every submodule of a built model: the order their forwards ran in,
and after the backward pass the weight-gradient norm of each module that holds parameters
of its own and the gradient at its output. Imported only in the child process (by
:mod:`gradlint.dynamic.probes`): it imports torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

_NOT_WEIGHTED = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def is_weighted(m: nn.Module) -> bool:
    """A layer whose weight mixes units (a matrix or a kernel): what the flow model's first
    and last weighted layer are. Embeddings (a lookup) and normalization scales are not."""
    if isinstance(m, _NOT_WEIGHTED):
        return False
    return any(p.dim() >= 2 for p in m.parameters(recurse=False))


class Recorder:
    """Execution order (forward pre-hooks on every module) and gradient norms of every module
    that holds parameters of its own."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.calls: list[str] = []  # every submodule, in the order its forward first started
        self._called: set[str] = set()
        self.owners = {}
        for name, m in model.named_modules():
            if any(True for _ in m.parameters(recurse=False)):
                self.owners[name] = m
        self.outputs: dict[str, torch.Tensor] = {}
        self.hooks = []
        for name, m in model.named_modules():
            if not name:
                continue
            self.hooks.append(m.register_forward_pre_hook(self._started(name)))
            if name in self.owners:
                self.hooks.append(m.register_forward_hook(self._seen(name)))

    def _started(self, name):
        def hook(module, inputs):
            if name not in self._called:
                self._called.add(name)
                self.calls.append(name)

        return hook

    def _seen(self, name):
        def hook(module, inputs, output):
            if name not in self.outputs:
                t = output[0] if isinstance(output, (tuple, list)) and output else output
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    t.retain_grad()  # the gradient at the layer's output: the backward signal
                    self.outputs[name] = t

        return hook

    def output_grad_rms(self) -> dict[str, float]:
        """Root mean square of the gradient at each layer's output: per unit, so layers of
        different widths and spatial sizes compare as the static (mean-field) gain does."""
        return {
            n: _norm(t.grad) / math.sqrt(max(1, t.grad.numel())) for n, t in self.outputs.items() if t.grad is not None
        }

    def close(self):
        for h in self.hooks:
            h.remove()

    def order(self) -> list[str]:
        """Every submodule in execution order. One never called (the output projection that
        ``nn.MultiheadAttention`` applies through the functional API) goes right after the
        calls of its nearest called ancestor's subtree, where it runs."""
        order = list(self.calls)
        for name, _ in self.model.named_modules():
            if not name or name in self._called:
                continue
            parent = name
            anchor = None
            while "." in parent:
                parent = parent.rsplit(".", 1)[0]
                if parent in order:
                    anchor = parent
                    break
            if anchor is None:
                order.append(name)
                continue
            at = order.index(anchor)
            end = at + 1
            while end < len(order) and order[end].startswith(anchor + "."):
                end += 1
            order.insert(end, name)
        return order

    def names(self) -> list[str]:
        """The parameter-holding modules in execution order, then the root's own parameters."""
        names = [n for n in self.order() if n in self.owners]
        if "" in self.owners:
            names += list(dict(self.owners[""].named_parameters(recurse=False)))
        return names

    def kinds(self) -> dict[str, tuple[str, bool]]:
        out = {n: (type(m).__name__, is_weighted(m)) for n, m in self.owners.items() if n}
        if "" in self.owners:
            for pname in dict(self.owners[""].named_parameters(recurse=False)):
                out[pname] = ("Parameter", False)
        return out

    def grad_norms(self) -> dict[str, float]:
        out = {}
        for name, m in self.owners.items():
            params = dict(m.named_parameters(recurse=False))
            if not name:  # the root's own parameters, one entry each
                for pname, p in params.items():
                    out[pname] = _norm(p.grad)
                continue
            if isinstance(m, nn.RNNBase) and "weight_ih_l0" in params and "weight_hh_l0" in params:
                # a recurrent layer's ‖∇W‖ in the convention: its first layer's two matrices
                chosen = [params["weight_ih_l0"], params["weight_hh_l0"]]
            else:
                chosen = [params["weight"]] if "weight" in params else list(params.values())
            total = 0.0
            for p in chosen:
                n = _norm(p.grad)
                total = total + n * n if math.isfinite(n) else n
            out[name] = math.sqrt(total) if math.isfinite(total) else total
        return out


def _norm(grad) -> float:
    if grad is None:
        return 0.0
    return float(grad.detach().double().norm().item())
