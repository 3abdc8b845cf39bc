"""Deterministic dumps of layer graphs: ``gradlint graph FILE --format text|json|dot``."""

from __future__ import annotations

import json

from gradlint.graph.model import ModelGraph
from gradlint.graph.values import UNKNOWN
from gradlint.vocab import Category


def _params(layer) -> str:
    items = [f"{k}={v!r}" for k, v in layer.params.items() if v is not UNKNOWN]
    unknown = [k for k, v in layer.params.items() if v is UNKNOWN]
    items += [f"{k}=?" for k in unknown]
    return f"({', '.join(items)})" if items else ""


def _init_text(graph, layer) -> str:
    parts = []
    for pname in sorted(layer.inits):
        init = layer.inits[pname]
        parts.append(
            f"{pname}={init.scheme}"
            + (f"({init.value:g})" if init.value is not None else "")
            + (f"*{init.scale:g}" if init.scale != 1.0 else "")
        )
    if not parts and layer.category in (Category.WEIGHTED, Category.RECURRENT):
        parts.append("weight=default")
    return " ".join(parts)


def to_dict(graph: ModelGraph) -> dict:
    layers = []
    for layer in graph.layers():
        layers.append(
            {
                "name": layer.name,
                "kind": layer.kind,
                "category": layer.category,
                "activation": layer.activation,
                "line": layer.span.line,
                "params": {k: (v if v is not UNKNOWN else None) for k, v in layer.params.items()},
                "init": {
                    p: {
                        "scheme": i.scheme,
                        "line": i.span.line if i.span else None,
                        "via": i.via,
                        "value": i.value,
                        "std": i.std,
                        "scale": i.scale,
                    }
                    for p, i in sorted(layer.inits.items())
                },
                "repeat": [str(p) for p in layer.repeat],
            }
        )
    nodes = []
    for node in graph.nodes():
        nodes.append(
            {
                "id": node.id,
                "op": node.op,
                "layer": node.layer,
                "merge": node.merge,
                "line": node.span.line if node.span else None,
                "inputs": [p.id for p in graph.predecessors(node)],
            }
        )
    return {
        "model": graph.name,
        "path": graph.path,
        "line": graph.span.line,
        "layers": layers,
        "forward": nodes,
        "summary": graph.summary(),
        "unknowns": [
            {"kind": u.kind.value, "reason": u.reason, "line": u.span.line if u.span else None} for u in graph.unknowns
        ],
        "configured_at": graph.site_span.line if graph.site_span else None,
        "sequence": (
            {"steps": graph.sequence[0], "how": graph.sequence[1].how, "line": graph.sequence[1].line}
            if graph.sequence
            else None
        ),
    }


def render_json(graphs) -> str:
    return json.dumps([to_dict(g) for g in graphs], indent=2, default=str) + "\n"


def render_text(graphs) -> str:
    out = []
    for g in graphs:
        site = f", configured at line {g.site_span.line}" if g.site_span else ""
        context = ", checked in context" if g.checked_in_context else ""
        out.append(f"model {g.name} (line {g.span.line}{site}{context})\n")
        if g.sequence:
            out.append(f"  sequence: {g.sequence[0]} steps ({g.sequence[1].how}, line {g.sequence[1].line})\n")
        out.append("  layers:\n")
        for layer in g.layers():
            act = f" activation={layer.activation}" if layer.activation else ""
            init = _init_text(g, layer)
            rep = f" repeat[{'; '.join(str(p) for p in layer.repeat)}]" if layer.repeat else ""
            out.append(
                f"    {layer.name}: {layer.kind}{_params(layer)} [{layer.category}{act}] line {layer.span.line}"
                f"{' init ' + init if init else ''}{rep}\n"
            )
        out.append("  forward:\n")
        for node in g.nodes():
            ins = ",".join(f"#{p.id}" for p in g.predecessors(node))
            what = node.layer if node.op == "layer" else node.merge if node.op == "merge" else ""
            tag = " (skip)" if g.is_skip_merge(node) else " (gate)" if g.activation_of(node) and g.is_gate(node) else ""
            line = f" line {node.span.line}" if node.span else ""
            out.append(
                f"    #{node.id} {node.op} {what}{tag}{' <- ' + ins if ins else ''}{line}\n".replace("  <-", " <-")
            )
        s = g.summary()
        out.append(f"  summary: {len(s['weighted'])} weighted, activations {s['activations']}\n")
        if g.unknowns:
            out.append("  unknowns:\n")
            for u in g.unknowns:
                out.append(f"    [{u.kind.value}] line {u.span.line if u.span else '?'}: {u.reason}\n")
        out.append("\n")
    return "".join(out)


def render_dot(graphs) -> str:
    out = ["digraph gradlint {\n", "  rankdir=TB;\n", "  node [shape=box, fontname=monospace];\n"]
    for gi, g in enumerate(graphs):
        out.append(f"  subgraph cluster_{gi} {{\n    label={json.dumps(g.name)};\n")
        for node in g.nodes():
            if node.op == "layer":
                layer = g.layer_of(node)
                label = f"{node.layer}\\n{layer.kind if layer else '?'}"
            elif node.op == "merge":
                label = node.merge + (" (skip)" if g.is_skip_merge(node) else "")
            else:
                label = node.op
            out.append(f"    m{gi}_{node.id} [label={json.dumps(label).replace(chr(92) * 2, chr(92))}];\n")
        for node in g.nodes():
            for p in g.predecessors(node):
                out.append(f"    m{gi}_{p.id} -> m{gi}_{node.id};\n")
        out.append("  }\n")
    out.append("}\n")
    return "".join(out)


RENDERERS = {"text": render_text, "json": render_json, "dot": render_dot}
