"""The child process of ``--dynamic``: imports one user file, builds its models, measures.

Run as ``python -m gradlint.dynamic.worker JOB.json RESULT.json`` by :mod:`gradlint.dynamic.runner`,
never imported by the parent. It is the only place user code runs, and the only module of
gradlint that imports torch at module level. It measures and reports raw numbers; the parent
judges them (:mod:`gradlint.dynamic.verdict`), so thresholds never need to cross the process
boundary. The result file is rewritten after every model, so a model that hangs or crashes
the process does not lose the ones measured before it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn as nn

#: the SGD learning rate of the short training runs (constant-init and recurrent checks)
LR = 0.1
SYMMETRY_STEPS = 3


def _write(result_path: str, result: dict) -> None:
    tmp = f"{result_path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, allow_nan=True)
    os.replace(tmp, result_path)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _where(exc: BaseException, path: str) -> str:
    """`` (line N)`` of the deepest frame of the exception inside the user's file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    return f" (line {line})" if line else ""


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )


def _cap(job: dict) -> str:
    cap = job.get("memory_cap_gib")
    return f" (the {cap:g} GiB memory cap; raise it with --memory-limit)" if cap else ""


def import_user_file(path: str):
    """Import ``path`` as a module, inside its package when it has one (relative imports).
    A notebook's imports, definitions and constants are executed; its other cells are not."""
    file = Path(path).resolve()
    if file.suffix == ".ipynb":
        import types

        from gradlint.notebook import definitions_source, load

        sys.path.insert(0, str(file.parent))
        module = types.ModuleType(f"gradlint_user_{file.stem}")
        module.__file__ = str(file)
        sys.modules[module.__name__] = module
        exec(compile(definitions_source(load(file.read_bytes())), str(file), "exec"), module.__dict__)
        return module
    parts = [file.stem]
    root = file.parent
    while (root / "__init__.py").exists():
        parts.insert(0, root.name)
        root = root.parent
    sys.path.insert(0, str(root))
    if len(parts) > 1:
        return importlib.import_module(".".join(parts))
    sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location(f"gradlint_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked, but torch sees no CUDA device")
    if requested in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def construct(module, spec: dict, path: str):
    """Build the model: a factory function, or the class with the configured kwargs."""
    name = spec["name"]
    kwargs = dict(spec.get("kwargs") or {})
    obj = getattr(module, name[:-2] if name.endswith("()") else name, None)
    if obj is None:
        raise LookupError(f"`{name}` is not defined at module level after import")
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        missing = [
            p.name for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in kwargs
        ]
        if missing:
            raise _Skip(
                f"constructor needs {', '.join(f'`{m}`' for m in missing)} — set it under "
                f"[tool.gradlint.dynamic.models.\"{spec['config_key']}\"] kwargs"
            )
    model = obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise _Skip(f"`{name}` returned {type(model).__name__}, not an nn.Module")
    return model


class _Skip(Exception):
    """The model cannot be measured, for a reason that is not an error in the user's code."""


def make_input(spec: dict, device, generator_seed: int, seq_len: int | None = None):
    shape = list(spec["shape"])
    if seq_len is not None and spec.get("time_axis") is not None:
        shape[spec["time_axis"]] = seq_len
    g = torch.Generator().manual_seed(generator_seed)
    if spec.get("dtype", "float") in ("long", "int64", "int"):
        return torch.randint(0, int(spec.get("high", 2)), shape, generator=g).to(device)
    return torch.randn(shape, generator=g).to(device)


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


class Recorder:
    """Forward order and gradient norms of every module that holds parameters of its own."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.order: list[str] = []
        self.owners = {}
        for name, m in model.named_modules():
            if any(True for _ in m.parameters(recurse=False)):
                self.owners[name] = m
        self.outputs: dict[str, torch.Tensor] = {}
        self.hooks = [m.register_forward_hook(self._seen(name)) for name, m in self.owners.items() if name]

    def _seen(self, name):
        def hook(module, inputs, output):
            if name not in self.order:
                self.order.append(name)
                t = output[0] if isinstance(output, (tuple, list)) and output else output
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    t.retain_grad()  # the gradient at the layer's output: the backward signal
                    self.outputs[name] = t
        return hook

    def output_grad_rms(self) -> dict[str, float]:
        """Root mean square of the gradient at each layer's output: per unit, so layers of
        different widths and spatial sizes compare as the static (mean-field) gain does."""
        return {n: _norm(t.grad) / math.sqrt(max(1, t.grad.numel())) for n, t in self.outputs.items() if t.grad is not None}

    def close(self):
        for h in self.hooks:
            h.remove()

    def names(self) -> list[str]:
        """Forward order first, then modules never called (and the root's own parameters)."""
        rest = [n for n in self.owners if n not in self.order]
        return self.order + rest

    def grad_norms(self) -> dict[str, float]:
        out = {}
        for name, m in self.owners.items():
            params = dict(m.named_parameters(recurse=False))
            if not name:  # the root's own parameters, one entry each
                for pname, p in params.items():
                    out[pname] = _norm(p.grad)
                continue
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


def _weight(model, name):
    m = _module(model, name)
    if m is not None and isinstance(getattr(m, "weight", None), torch.Tensor):
        return m.weight
    try:
        return model.get_parameter(name)
    except AttributeError:
        return None


def _backward(model, x):
    out = model(x)
    t = first_tensor(out)
    if t is None:
        raise _Skip("the model's output holds no floating tensor with a gradient")
    # a random linear read-out, scaled so the gradient at the output has norm about 1 per
    # example whatever the output's size: absolute thresholds then mean the same for every model
    per_example = max(1, t.numel() // max(1, t.shape[0]))
    readout = torch.randn(t.shape, generator=torch.Generator().manual_seed(1234)).to(t.device, t.dtype)
    loss = (t * readout).sum() / (max(1, t.shape[0]) * math.sqrt(per_example))
    loss.backward()
    return t


def measure_model(module, spec: dict, job: dict, device) -> dict:
    seeds = int(job.get("seeds", 3))
    probes = spec.get("probes", [])
    recurrent = any(p["expect"].startswith("recurrent") for p in probes)
    seq_len = int(job.get("seq_len", 200)) if recurrent else None
    per_layer: dict[str, list[float]] = {}
    per_output: dict[str, list[float]] = {}
    order: list[str] = []
    raw = {str(p["id"]): {"seeds": []} for p in probes}
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = construct(module, spec, job["path"]).to(device)
        model.train()
        rec = Recorder(model)
        x = make_input(spec["input"], device, seed, seq_len)
        model.zero_grad(set_to_none=True)
        _backward(model, x)
        norms = rec.grad_norms()
        out_norms = rec.output_grad_rms()
        if not order:
            order = rec.names()
        for name in order:
            per_layer.setdefault(name, []).append(norms.get(name, 0.0))
            per_output.setdefault(name, []).append(out_norms.get(name, float("nan")))
        rec.close()
        for p in probes:
            entry = raw[str(p["id"])]
            expect = p["expect"]
            if expect in ("symmetric", "starved"):
                entry["seeds"].append(_symmetry(module, spec, job, device, seed, p["layers"], order, norms))
            elif expect == "recurrent-vanishing":
                entry["seeds"].append(_through_time(module, spec, job, device, seed, p["layers"], seq_len))
            elif expect == "recurrent-exploding":
                # over the sequence length the training code uses, when it says
                entry["seeds"].append(_training(module, spec, job, device, seed, p.get("clip"), p.get("length") or seq_len))
    return {"layers": [{"name": n, "norms": per_layer[n], "output_norms": per_output[n]} for n in order], "probes": raw}


def _symmetry(module, spec, job, device, seed, layers, order, first_norms) -> dict:
    """Rows of each probed weight (and its gradient) after a few SGD steps; and whether the
    gradient reaches the layers before the first probed one at all."""
    torch.manual_seed(seed)
    model = construct(module, spec, job["path"]).to(device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    grad_spread = {}
    for step in range(SYMMETRY_STEPS):
        opt.zero_grad(set_to_none=True)
        _backward(model, make_input(spec["input"], device, 1000 * seed + step))
        if step == 0:
            grad_spread = {n: _rows_spread(getattr(_weight(model, n), "grad", None)) for n in layers}
        opt.step()
    weight_spread = {n: _rows_spread(_weight(model, n)) for n in layers}
    weight_cosine = {n: _rows_cosine(_weight(model, n)) for n in layers}
    upstream = []
    if layers and layers[0] in order:
        upstream = order[: order.index(layers[0])]
    blocked = bool(upstream) and all(first_norms.get(n, 0.0) == 0.0 for n in upstream)
    return {"grad_rows_spread": grad_spread, "weight_rows_spread": weight_spread, "weight_rows_cosine": weight_cosine,
            "upstream": len(upstream), "upstream_blocked": blocked, "steps": SYMMETRY_STEPS}


def _through_time(module, spec, job, device, seed, layers, seq_len) -> dict:
    """The gradient of the last step's output at the recurrent layer's input, first time
    step against last: how much of it crosses the sequence."""
    torch.manual_seed(seed)
    model = construct(module, spec, job["path"]).to(device)
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
    x = make_input(spec["input"], device, seed, seq_len)
    if x.is_floating_point():
        x.requires_grad_(True)
    model(x)
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


def _training(module, spec, job, device, seed, clip, seq_len) -> dict:
    """A few steps of BPTT training on random sequences with SGD; the gradient norm that
    reaches each update (after the loop's own clipping, when it clips)."""
    torch.manual_seed(seed)
    model = construct(module, spec, job["path"]).to(device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    steps = int(job.get("steps", 8))
    norms = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        x = make_input(spec["input"], device, 7000 + 100 * seed + step, seq_len)
        t = first_tensor(model(x))
        if t is None:
            raise _Skip("the model's output holds no floating tensor with a gradient")
        target = torch.randn(t.shape, generator=torch.Generator().manual_seed(step)).to(t.device, t.dtype)
        ((t - target) ** 2).mean().backward()
        params = [p for p in model.parameters() if p.grad is not None]
        if clip and clip[0] == "norm":
            torch.nn.utils.clip_grad_norm_(params, float(clip[1]))
        elif clip and clip[0] == "value":
            torch.nn.utils.clip_grad_value_(params, float(clip[1]))
        total = math.sqrt(sum(_norm(p.grad) ** 2 for p in params)) if params else 0.0
        norms.append(total)
        if not math.isfinite(total):
            break
        opt.step()
    return {"norms": norms, "steps": steps, "length": seq_len, "clip": clip}


def main(argv: list[str]) -> int:
    job_path, result_path = argv
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    result = {"torch": torch.__version__, "device": None, "models": {}, "import_note": None}
    try:
        device = resolve_device(job.get("device", "auto"))
    except RuntimeError as exc:
        result["import_note"] = str(exc)
        _write(result_path, result)
        return 0
    result["device"] = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    torch.set_num_threads(max(1, int(job.get("threads", 2))))
    _write(result_path, result)
    sink = io.StringIO()  # what the user's code prints stays out of gradlint's output
    path = os.path.abspath(job["path"])
    try:
        with contextlib.redirect_stdout(sink):
            module = import_user_file(path)
    except SystemExit as exc:
        result["import_note"] = f"importing the file called sys.exit({exc.code!r})"
        _write(result_path, result)
        return 0
    except BaseException as exc:  # noqa: BLE001 - any failure of user code is a note
        if _out_of_memory(exc):
            result["import_note"] = f"ran out of memory while importing the file{_cap(job)}"
        else:
            result["import_note"] = f"importing the file failed: {_short(exc)}{_where(exc, path)}"
        _write(result_path, result)
        return 0
    for spec in job["models"]:
        start = time.perf_counter()
        entry: dict = {"ok": False}
        try:
            with contextlib.redirect_stdout(sink):
                entry.update(measure_model(module, spec, job, device))
            entry["ok"] = True
        except _Skip as exc:
            entry["note"] = str(exc)
        except SystemExit as exc:
            entry["note"] = f"building or running the model called sys.exit({exc.code!r})"
        except torch.cuda.OutOfMemoryError:
            entry["note"] = "ran out of GPU memory"
        except BaseException as exc:  # noqa: BLE001
            if _out_of_memory(exc):
                entry["note"] = f"ran out of memory{_cap(job)}"
            else:
                entry["note"] = f"building or running the model failed: {_short(exc)}{_where(exc, path)}"
        entry["seconds"] = time.perf_counter() - start
        result["models"][spec["id"]] = entry
        _write(result_path, result)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # the result is complete: gradlint ends this process now, whatever the model file left
    # running (threads, children) that would keep it from exiting
    with open(sys.argv[2] + ".done", "w", encoding="ascii"):
        pass
    sys.exit(status)
