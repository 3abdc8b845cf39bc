"""Structural queries over a layer graph that need no numbers: the deepest plain path, the
plain chains of layers.

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


def plain_chains(graph) -> list[list]:
    """Maximal single-input, single-output runs of layer nodes (weighted, activation, shape-only)."""

    def plain(n):
        return n.op == "layer" and graph.category_of(n) in (
            Category.WEIGHTED,
            Category.PARAMETER,
            Category.ACTIVATION,
            Category.OTHER,
        )

    chains, seen = [], set()
    for node in graph.nodes():
        if node.id in seen or not plain(node):
            continue
        preds = graph.predecessors(node)
        if len(preds) == 1 and plain(preds[0]) and len(graph.successors(preds[0])) == 1:
            continue  # not the start of a run
        chain, cur = [node], node
        seen.add(node.id)
        while True:
            succ = graph.successors(cur)
            if len(succ) != 1 or not plain(succ[0]) or len(graph.predecessors(succ[0])) != 1 or succ[0].id in seen:
                break
            cur = succ[0]
            seen.add(cur.id)
            chain.append(cur)
        chains.append(chain)
    return chains
