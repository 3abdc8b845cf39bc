"""``gradlint graph FILE --flow``: the flow profile of each model, as text or JSON.

One row per forward node: what it is, the predicted forward statistics of its output (mean,
RMS, saturated and dead fractions), the predicted RMS of the gradient at its output, and for
weighted layers the predicted weight-gradient norm; then the judged numbers and hazards.
"""

from __future__ import annotations

import json
import math

from gradlint.flow.convention import BATCH
from gradlint.flow.hazards import Numbers, judge
from gradlint.vocab import Category


def _num(x):
    if x is None:
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "-inf" if x < 0 else "nan"
    return x


def _label(graph, node) -> str:
    if node.op == "layer":
        layer = graph.layer_of(node)
        if layer is None:
            return node.layer or "?"
        act = layer.activation if layer.category == Category.ACTIVATION else None
        return f"{layer.name} ({act or layer.kind})"
    if node.op == "merge":
        return f"{node.merge} merge"
    if node.op == "scale":
        return f"× {node.factor:g}" if node.factor is not None else "scale"
    return node.op


def profile_json(graph) -> dict:
    j = judge(graph)
    p = j.profile
    grads = {l.node: l for l in p.layers}
    rows = []
    for node in graph.nodes():
        st = p.stats.get(node.id)
        if st is None:
            continue
        g = p.grads.get(node.id)
        row = {
            "node": node.id,
            "what": _label(graph, node),
            "line": node.span.line if node.span else None,
            "mean": _num(st.m),
            "rms": _num(math.sqrt(max(st.q, 0.0))),
            "grad_rms": _num(math.sqrt(g)) if g is not None else None,
            "certain": st.certain,
        }
        if st.saturated:
            row["saturated"] = st.saturated
        if st.dead:
            row["dead"] = st.dead
        if st.why and not st.certain:
            row["why"] = st.why
        lf = grads.get(node.id)
        if lf is not None:
            row["weight_grad_norm"] = _num(lf.grad_norm) if lf.certain else None
        rows.append(row)
    n = Numbers.of(p)
    hazard, test = n.judge()
    return {
        "model": graph.name,
        "path": graph.path,
        "batch": BATCH,
        "layers": [
            {"name": l.name, "grad_norm": _num(l.grad_norm) if l.certain else None, "certain": l.certain}
            for l in p.layers
        ],
        "nodes": rows,
        "ratio": _num(n.ratio),
        "first": _num(n.first),
        "total": _num(n.total),
        "gain": _num(n.gain),
        "finite": n.finite,
        "dead_probability": n.dead,
        "fluctuation": p.fluctuation,
        "hazard": str(hazard),
        "test": test,
        "findings": [{"cause": str(h.cause), "hazard": str(h.hazard), "test": h.test} for h in j.hazards()],
    }


def _e(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.2e}"


def render_text(graphs) -> str:
    out = []
    for graph in graphs:
        d = profile_json(graph)
        out.append(f"model {d['model']}: predicted at init, batch {d['batch']}, inputs N(0, 1), unit read-out gradient")
        out.append(f"  {'node':<40} {'mean':>9} {'rms':>9} {'grad rms':>9} {'‖∇W‖':>9}  notes")
        for r in d["nodes"]:
            notes = []
            if r.get("saturated"):
                notes.append(f"{r['saturated']:.0%} saturated")
            if r.get("dead"):
                notes.append(f"{r['dead']:.0%} inactive (f' = 0)")
            if not r["certain"]:
                notes.append(f"not modelled: {r.get('why') or 'upstream'}")
            out.append(
                f"  #{r['node']:<3} {r['what'][:35]:<35} {_e(r['mean']):>9} {_e(r['rms']):>9} "
                f"{_e(r['grad_rms']):>9} {_e(r.get('weight_grad_norm')):>9}  {', '.join(notes)}"
            )
        out.append(
            f"  ‖∇W first‖/‖∇W last‖ {_e(d['ratio'])}, ‖∇W first‖ {_e(d['first'])}, "
            f"whole gradient {_e(d['total'])}, P(dead) {d['dead_probability']:.2f}: {d['hazard']}"
            + (f" ({d['test']})" if d["test"] else "")
        )
        for f in d["findings"]:
            out.append(f"  hazard: {f['hazard']}, cause {f['cause']} (test {f['test']})")
        out.append("")
    return "\n".join(out)


def render_json(graphs) -> str:
    return json.dumps([profile_json(g) for g in graphs], indent=2, allow_nan=False) + "\n"
