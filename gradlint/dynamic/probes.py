"""In the child of ``--dynamic``: the measurements of one model, seed by seed.

:func:`measure_model` runs a plain backward pass per seed (per-layer weight-gradient norms,
gradients at the layers' outputs and execution order, from
:class:`~gradlint.dynamic.recorder.Recorder`), then each probe's own test: the rows of the
weights after a few SGD steps (constant init), the gradient across the sequence (recurrent
vanishing), a few steps of BPTT training (recurrent exploding). Raw numbers only: the parent
judges them (:mod:`gradlint.dynamic.verdict`). Imported only in the child process (by
:mod:`gradlint.dynamic.worker`): it imports torch.
"""

from __future__ import annotations

import math

import torch

from gradlint.dynamic.build import _Run, _Skip
from gradlint.dynamic.recorder import Recorder, _norm
from gradlint.vocab import Probe

#: the SGD learning rate of the short training runs (constant-init and recurrent checks)
LR = 0.1
SYMMETRY_STEPS = 3


def first_tensor(out):
    """The first floating tensor that carries a gradient in a model's output (tensors,
    tuples, lists, dicts and Hugging Face-style output objects)."""
    if isinstance(out, torch.Tensor):
        return out if out.is_floating_point() and out.requires_grad else None
    if isinstance(out, dict) or hasattr(out, "values") and callable(out.values):
        items = list(out.values())
    elif isinstance(out, (tuple, list)):
        items = list(out)
    else:
        return None
    for item in items:
        t = first_tensor(item)
        if t is not None:
            return t
    return None


def _rows_spread(t) -> float:
    """max_i ||t_i - t_0|| / ||t_0||: 0 when every row (output unit) is identical."""
    if t is None or t.dim() < 2 or t.shape[0] < 2:
        return float("nan")
    flat = t.detach().double().reshape(t.shape[0], -1)
    base = flat[0].norm().item()
    spread = (flat - flat[0]).norm(dim=1).max().item()
    return spread / base if base > 0 else (0.0 if spread == 0 else float("inf"))


def _rows_cosine(t) -> float:
    """The smallest cosine between a row of ``t`` and the mean row: 1 when all rows point alike."""
    if t is None or t.dim() < 2 or t.shape[0] < 2:
        return float("nan")
    flat = t.detach().double().reshape(t.shape[0], -1)
    mean = flat.mean(dim=0, keepdim=True)
    cos = torch.nn.functional.cosine_similarity(flat, mean.expand_as(flat), dim=1, eps=1e-30)
    return float(cos.min().item())


def _module(model, name):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _in_model(model, name: str) -> str:
    """A static layer name as the built model names it: a model a script builds in place
    (``net = nn.Sequential(...)``) has ``0`` where the static graph says ``net.0``."""
    if _module(model, name) is not None:
        return name
    _, _, rest = name.partition(".")
    return rest if rest and _module(model, rest) is not None else name


def _weight(model, name):
    m = _module(model, name)
    if m is not None and isinstance(getattr(m, "weight", None), torch.Tensor):
        return m.weight
    try:
        return model.get_parameter(name)
    except AttributeError:
        return None


def _readout_loss(t):
    # a random linear read-out, scaled so the gradient at the output has norm about 1 per
    # example whatever the output's size: absolute thresholds then mean the same for every model
    per_example = max(1, t.numel() // max(1, t.shape[0] if t.dim() else 1))
    readout = torch.randn(t.shape, generator=torch.Generator().manual_seed(1234)).to(t.device, t.dtype)
    return (t * readout).sum() / (max(1, t.shape[0] if t.dim() else 1) * math.sqrt(per_example))


def _backward(run: _Run, model, args, kwargs):
    t = first_tensor(run.forward(model, args, kwargs))
    if t is None:
        raise _Skip("the model's output holds no floating tensor with a gradient")
    _readout_loss(t).backward()
    return t


def measure_model(module, spec: dict, job: dict, device) -> dict:
    """Every seed in this one process: a plain backward pass per seed (per-layer weight-gradient
    norms, gradients at the layers' outputs, execution order), then each probe's own test."""
    seeds = int(job.get("seeds", 3))
    probes = spec.get("probes", [])
    recurrent = [p for p in probes if Probe(p["expect"]).recurrent]
    # the sequence length the code uses (the static finding carries it), else the job's default
    seq_len = None
    if recurrent:
        seq_len = max(int(p.get("length") or job.get("seq_len", 100)) for p in recurrent)
    run = _Run(module, spec, job, device, seq_len)
    per_layer: dict[str, list[float]] = {}
    per_output: dict[str, list[float]] = {}
    order: list[str] = []
    kinds: dict = {}
    modules: list[str] = []
    raw = {str(p["id"]): {"seeds": []} for p in probes}
    recovered: list[int] = []
    for seed in range(seeds):
        model = run.build(seed)
        rec = Recorder(model)
        args, kwargs = run.inputs(model, seed)
        model.zero_grad(set_to_none=True)
        _backward(run, model, args, kwargs)
        norms = rec.grad_norms()
        out_norms = rec.output_grad_rms()
        if not order:
            order, kinds, modules = rec.names(), rec.kinds(), rec.order()
        rec.close()
        weighted = [n for n in order if kinds.get(n, ("", False))[1]]
        if len(weighted) > 1 and all(norms.get(n, 0.0) == 0.0 for n in weighted[:-1]):
            # nothing below the last weighted layer gets a gradient: dead for good, or only until a
            # zero-initialized layer (an output head) has had its first update? The measurement stays
            # the one at initialization; whether the gradient flows after a few steps is recorded
            if _after_steps(run, seed, weighted) is not None:
                recovered.append(seed)
        for name in order:
            per_layer.setdefault(name, []).append(norms.get(name, 0.0))
            per_output.setdefault(name, []).append(out_norms.get(name, float("nan")))
        for p in probes:
            entry = raw[str(p["id"])]
            expect = Probe(p["expect"])
            if expect in (Probe.SYMMETRIC, Probe.STARVED):
                entry["seeds"].append(_symmetry(run, seed, p["layers"], order, kinds, norms))
            elif expect == Probe.RECURRENT_VANISHING:
                entry["seeds"].append(_through_time(run, seed, p["layers"], seq_len))
            elif expect == Probe.RECURRENT_EXPLODING:
                entry["seeds"].append(_training(run, seed, p.get("clip"), p.get("length") or seq_len))
    layers = [
        {
            "name": n,
            "norms": per_layer[n],
            "output_norms": per_output[n],
            "kind": kinds.get(n, ("?", False))[0],
            "weighted": kinds.get(n, ("?", False))[1],
        }
        for n in order
    ]
    return {
        "layers": layers,
        "modules": modules,
        "probes": raw,
        "batch": _batch_of(spec),
        "recovered": {"seeds": recovered, "steps": SYMMETRY_STEPS},
    }


def _after_steps(run, seed, weighted):
    """The plain backward pass after :data:`SYMMETRY_STEPS` SGD steps, when the gradient then
    reaches a layer below the last weighted one (it was blocked only at initialization); None
    when the network stays dead."""
    model = run.build(seed)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for step in range(SYMMETRY_STEPS):
        opt.zero_grad(set_to_none=True)
        args, kwargs = run.inputs(model, 5000 + 100 * seed + step)
        _backward(run, model, args, kwargs)
        opt.step()
    rec = Recorder(model)
    model.zero_grad(set_to_none=True)
    args, kwargs = run.inputs(model, seed)
    _backward(run, model, args, kwargs)
    norms, out_norms = rec.grad_norms(), rec.output_grad_rms()
    rec.close()
    if any(norms.get(n, 0.0) != 0.0 for n in weighted[:-1]):
        return norms, out_norms
    return None


def _batch_of(spec) -> int | None:
    args = (spec.get("input") or {}).get("args") or ()
    return int(args[0]["shape"][0]) if args and args[0].get("shape") else None


def _symmetry(run, seed, layers, order, kinds, first_norms) -> dict:
    """Rows of each weight (and its gradient) after a few SGD steps, for every weighted layer
    (the probed ones decide, the rest are the chart's context); and whether the gradient
    reaches the layers before the first probed one at all."""
    model = run.build(seed)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    layers = [_in_model(model, n) for n in layers]
    weighted = [n for n in order if kinds.get(n, ("", False))[1]]
    every = list(dict.fromkeys([*layers, *weighted]))
    grad_spread = {}
    for step in range(SYMMETRY_STEPS):
        opt.zero_grad(set_to_none=True)
        args, kwargs = run.inputs(model, 1000 * seed + step)
        _backward(run, model, args, kwargs)
        if step == 0:
            grad_spread = {n: _rows_spread(getattr(_weight(model, n), "grad", None)) for n in every}
        opt.step()
    weight_spread = {n: _rows_spread(_weight(model, n)) for n in every}
    weight_cosine = {n: _rows_cosine(_weight(model, n)) for n in layers}
    upstream = []
    if layers and layers[0] in order:
        upstream = order[: order.index(layers[0])]
    blocked = bool(upstream) and all(first_norms.get(n, 0.0) == 0.0 for n in upstream)
    return {
        "grad_rows_spread": grad_spread,
        "weight_rows_spread": weight_spread,
        "weight_rows_cosine": weight_cosine,
        "upstream": len(upstream),
        "upstream_blocked": blocked,
        "steps": SYMMETRY_STEPS,
        "order": every,
    }


def _through_time(run, seed, layers, seq_len) -> dict:
    """The gradient of the last step's output at the recurrent layer's input, first time
    step against last: how much of it crosses the sequence."""
    model = run.build(seed)
    layers = [_in_model(model, n) for n in layers]
    target = _module(model, layers[0]) if layers else None
    if target is None:
        raise _Skip(f"no submodule `{layers[0] if layers else '?'}` in the built model")
    captured = {}

    def hook(mod, inputs, output):
        if "x" not in captured and inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].is_floating_point():
            inputs[0].retain_grad() if inputs[0].requires_grad else None
            captured["x"] = inputs[0]
            captured["out"] = output

    handle = target.register_forward_hook(hook)
    args, kwargs = run.inputs(model, seed, seq_len)
    if args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
        args[0].requires_grad_(True)
    run.forward(model, args, kwargs)
    handle.remove()
    if "x" not in captured or not captured["x"].requires_grad:
        raise _Skip(f"could not capture the input of `{layers[0]}` with a gradient")
    seq = captured["out"][0] if isinstance(captured["out"], tuple) else captured["out"]
    batch_first = bool(getattr(target, "batch_first", False))
    time_axis = 1 if batch_first else 0
    last = seq.select(time_axis, seq.shape[time_axis] - 1)
    readout = torch.randn(last.shape, generator=torch.Generator().manual_seed(99)).to(last.device, last.dtype)
    (last * readout).sum().backward()
    g = captured["x"].grad
    first_g = _norm(g.select(time_axis, 0))
    last_g = _norm(g.select(time_axis, g.shape[time_axis] - 1))
    return {"first_step": first_g, "last_step": last_g, "length": int(g.shape[time_axis])}


def _training(run, seed, clip, seq_len) -> dict:
    """A few steps of BPTT training on random sequences with SGD: per step, the gradient norm
    the backward pass gives (raw) and the one that reaches the update (after the loop's own
    clipping, when it clips)."""
    model = run.build(seed)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    steps = int(run.job.get("steps", 8))
    raw, norms = [], []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        args, kwargs = run.inputs(model, 7000 + 100 * seed + step, seq_len)
        t = first_tensor(run.forward(model, args, kwargs))
        if t is None:
            raise _Skip("the model's output holds no floating tensor with a gradient")
        target = torch.randn(t.shape, generator=torch.Generator().manual_seed(step)).to(t.device, t.dtype)
        ((t - target) ** 2).mean().backward()
        params = [p for p in model.parameters() if p.grad is not None]
        before = math.sqrt(sum(_norm(p.grad) ** 2 for p in params)) if params else 0.0
        if clip and clip[0] == "norm":
            torch.nn.utils.clip_grad_norm_(params, float(clip[1]))
        elif clip and clip[0] == "value":
            torch.nn.utils.clip_grad_value_(params, float(clip[1]))
        after = math.sqrt(sum(_norm(p.grad) ** 2 for p in params)) if clip and params else before
        raw.append(before)
        norms.append(after)
        if not (math.isfinite(after) and math.isfinite(before)):
            break
        opt.step()
    return {"norms": norms, "raw_norms": raw, "steps": steps, "length": seq_len, "clip": clip}
