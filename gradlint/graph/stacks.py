"""Structural queries over a layer graph that need no numbers: the deepest plain path.

The gradient-flow numbers themselves come from the flow profile (:mod:`gradlint.flow`).
"""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.vocab import Category

_STACK_KINDS_EXCLUDED = frozenset({"Embedding", "EmbeddingBag", "MultiheadAttention"})


def _is_stack_layer(graph, node) -> bool:
    if node.op != "layer":
        return False
    layer = graph.layer_of(node)
    if layer is None:
        return False
    if layer.category == Category.WEIGHTED:
        return layer.kind not in _STACK_KINDS_EXCLUDED
    return layer.category == Category.PARAMETER


@dataclass(frozen=True)
class PlainPath:
    """The deepest path of weighted layers the gradient must cross with no skip connection."""

    depth: int
    first: object  # Node
    last: object  # Node
    normalized: bool  # some normalization lies on it


def deepest_plain_path(graph) -> PlainPath | None:
    """Weighted layers counted along the forward dataflow; at a merge the gradient takes the
    shallowest incoming path (a residual add's identity path resets the count)."""
    best: dict[int, tuple] = {}  # node id -> (depth, first node, normalized)
    top = None
    for node in graph.nodes():
        preds = [best[p.id] for p in graph.predecessors(node) if p.id in best]
        if not preds:
            incoming = (0, None, False)
        elif node.op == "merge":
            incoming = min(preds, key=lambda t: t[0])
        else:
            incoming = max(preds, key=lambda t: t[0])
        depth, first, normalized = incoming
        if _is_stack_layer(graph, node):
            depth += 1
            first = first or node
        elif graph.category_of(node) == Category.NORM:
            normalized = True
        best[node.id] = (depth, first, normalized)
        if depth and (top is None or depth > top.depth):
            top = PlainPath(depth, first, node, normalized)
    return top
