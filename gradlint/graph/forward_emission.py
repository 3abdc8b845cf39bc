"""Forward dataflow emission: functional layers, merges, splits and operators on tensors become graph nodes."""

from __future__ import annotations

import ast

from gradlint.graph.interp_common import _FlowSeq, _PieceSeq, _span
from gradlint.graph.model import Layer, Node
from gradlint.graph.values import UNKNOWN, Flow, ParamRef, ParamSpec
from gradlint.vocab import Category


class ForwardMixin:
    """Forward dataflow emission: functional layers, merges, splits and operators on tensors become graph nodes.

    A part of :class:`gradlint.graph.builder.Builder`."""

    def functional_layer(self, q, category, args, node):
        flows = [a for a in args if isinstance(a, Flow)]
        if not flows:
            return UNKNOWN
        name = self._functional_name(q, node, category, None)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), flows[0].producers)
        return Flow(frozenset({n.id}))

    def functional_shape(self, kind, params, flow, node, q):
        """``F.max_pool2d(x, 2)``, ``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``,
        ``x.mean((2, 3))``: the module they do the work of (``MaxPool2d``, ``Flatten``,
        ``AdaptiveAvgPool2d``), as a functional layer of that kind, with its arguments."""
        clean = {k: v for k, v in params.items() if isinstance(v, (int, float, tuple)) and not isinstance(v, bool)}
        name = self._functional_name(q, node, Category.OTHER, None, kind=kind, params=clean)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), flow.producers)
        return Flow(frozenset({n.id}))

    def _functional_name(self, q, node, category, activation, kind=None, params=None):
        """The layer a functional call stands for, one per call site (``F.gelu@12:9``)."""
        key = (node.lineno, node.col_offset, q)
        name = self.func_layers.get(key)
        if name is None:
            short = q.replace("torch.nn.functional.", "F.")
            name = f"{short}@{node.lineno}:{node.col_offset + 1}"
            self.func_layers[key] = name
            self.graph.add_layer(
                Layer(
                    name,
                    kind or short,
                    category,
                    _span(node),
                    activation,
                    dict(params or {}),
                    functional=True,
                    repeat=self.repeat_ctx,
                )
            )
        return name

    def functional_activation(self, act, q, args, node):
        flows = [a for a in args if isinstance(a, Flow)]
        if not flows:
            return UNKNOWN
        name = self._functional_name(q, node, Category.ACTIVATION, act)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), flows[0].producers)
        return Flow(frozenset({n.id}))

    def functional_weighted(self, q, args, kwargs, node):
        flows = [a for a in args if isinstance(a, Flow)]
        weights = [a for a in [*args, *kwargs.values()] if isinstance(a, (ParamRef, ParamSpec))]
        if not flows:
            return UNKNOWN
        producers = frozenset().union(*(f.producers for f in flows))
        if weights:
            w = weights[0]
            owner = w.owner if isinstance(w, ParamRef) else w
            name = self.name_of(owner)
        else:
            name = self._functional_name(q, node, Category.OTHER, None)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), producers)
        return Flow(frozenset({n.id}))

    def split_flow(self, flow, parts: int, node):
        """A tensor cut into ``parts`` disjoint pieces: one ``split`` node per piece, each
        carrying its share, so that the gradient each piece sends back covers only its part."""
        pieces = []
        for _ in range(parts):
            n = self.graph.add_node(
                Node(self.next_node(), "merge", merge="split", span=_span(node), factor=1.0 / parts), flow.producers
            )
            pieces.append(Flow(frozenset({n.id})))
        return _PieceSeq(pieces, flow)

    def merge_call(self, kind, args, kwargs, node):
        if kind is None:
            flows = [a for a in args if isinstance(a, Flow)]
            return flows[0] if flows else UNKNOWN
        if kind == "cat" and args:
            items = self.iterate(args[0]) if not isinstance(args[0], Flow) else [args[0]]
            flows = [a for a in (items or []) if isinstance(a, Flow)]
            if isinstance(args[0], _FlowSeq):
                flows = [args[0].flow]
        else:
            flows = [a for a in args if isinstance(a, Flow)]
        if not flows:
            return UNKNOWN
        return self.merge_flows(kind, flows, node)

    def merge_flows(self, kind, flows, node):
        if len(flows) == 1:
            return flows[0]
        producers = [f.producers for f in flows]
        if all(p == producers[0] for p in producers) and kind != "add":
            return flows[0]
        n = self.graph.add_node(
            Node(self.next_node(), "merge", merge=kind, span=_span(node)), frozenset().union(*producers)
        )
        return Flow(frozenset({n.id}))

    def _merge_flows(self, values):
        flows = [v for v in values if isinstance(v, Flow)]
        if not flows:
            return UNKNOWN
        return Flow(frozenset().union(*(f.producers for f in flows)))

    def binop_flow(self, op, left, right, node):
        if isinstance(op, ast.MatMult):
            for w, x in ((right, left), (left, right)):
                if isinstance(w, (ParamSpec, ParamRef)) and isinstance(x, Flow):
                    owner = w.owner if isinstance(w, ParamRef) else w
                    n = self.graph.add_node(
                        Node(self.next_node(), "layer", layer=self.name_of(owner), span=_span(node)), x.producers
                    )
                    return Flow(frozenset({n.id}))
        lf, rf = isinstance(left, Flow), isinstance(right, Flow)
        if lf and isinstance(op, ast.Pow) and right == 2 and not isinstance(right, bool):
            return self.functional_activation("square", "pow2", [left], node)  # ``x ** 2``
        if lf and rf:
            if isinstance(op, (ast.Add, ast.Sub)):
                return self.merge_flows("add", [left, right], node)
            if isinstance(op, (ast.Mult, ast.MatMult, ast.Div)):
                return self.merge_flows("mul", [left, right], node)
            return Flow(left.producers | right.producers)
        if (lf or rf) and isinstance(op, (ast.Mult, ast.Div)):
            flow, factor = (left, right) if lf else (right, left)
            # ``gamma * f(x)`` (LayerScale), ``0.1 * f(x)``, ``f(x) / sqrt(n)``: a scaled branch
            if isinstance(factor, (ParamSpec, ParamRef)):
                owner = factor.owner if isinstance(factor, ParamRef) else factor
                n = self.graph.add_node(
                    Node(self.next_node(), "scale", layer=self.name_of(owner), span=_span(node)), flow.producers
                )
                return Flow(frozenset({n.id}))
            if isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor != 1:
                value = float(factor)
                if isinstance(op, ast.Div):
                    value = (1.0 / value if lf else None) if value else None  # ``c / f(x)`` is no scale
                n = self.graph.add_node(Node(self.next_node(), "scale", span=_span(node), factor=value), flow.producers)
                return Flow(frozenset({n.id}))
            if not isinstance(factor, (int, float)) or isinstance(factor, bool):
                # ``x * mask``, ``x / math.sqrt(d)`` with ``d`` unknown: a scale of unknown size,
                # not the identity
                n = self.graph.add_node(Node(self.next_node(), "scale", span=_span(node), factor=None), flow.producers)
                return Flow(frozenset({n.id}))
        if lf and isinstance(op, ast.Pow) and not rf:
            return self.unknown_node([left], node, "a power other than 2 (`x ** p`)")
        if lf:
            return left
        if rf:
            return right
        return UNKNOWN
