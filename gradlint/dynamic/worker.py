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

from gradlint.vocab import Probe

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
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


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
    """Build the model: a factory function, the class with the configured kwargs, or the
    statements of the script that configure it (``model = Net(...)`` and the inits after it)."""
    name = spec["name"]
    if spec.get("source"):
        # the site's statements, as the file has them, run as a function in the module's
        # namespace, at their own line numbers (a failure names the user's line), under no_grad
        # as initialization is (a statement the file ran inside ``with torch.no_grad():``)
        import ast

        tree = ast.parse(spec["source"], filename=path)
        func = tree.body[0]
        for stmt, line in zip(func.body, spec.get("lines") or ()):
            ast.increment_lineno(stmt, line - stmt.lineno)
        namespace = dict(vars(module))
        exec(compile(tree, path, "exec"), namespace)  # noqa: S102 - the user's own lines
        with torch.no_grad():
            model = namespace[spec["entry"]]()
        if not isinstance(model, nn.Module):
            raise _Skip(f"`{name}` gave {type(model).__name__}, not an nn.Module")
        return model
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
            p.name
            for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in kwargs
        ]
        if missing:
            raise _Skip(
                f"constructor needs {', '.join(f'`{m}`' for m in missing)} — set it under "
                f'[tool.gradlint.dynamic.models."{spec["config_key"]}"] kwargs'
            )
    model = obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise _Skip(f"`{name}` returned {type(model).__name__}, not an nn.Module")
    return model


class _Skip(Exception):
    """The model cannot be measured, for a reason that is not an error in the user's code."""


#: forward parameters that take a mask of ones (all positions valid) beside token ids
_MASKS = ("attention_mask", "mask", "padding_mask", "src_mask", "attn_mask", "input_mask", "key_padding_mask")
#: forward parameters that take each sequence's length (every sequence full length)
_LENGTHS = ("lengths", "lens", "seq_lens", "seq_lengths", "input_lengths", "x_lens")
#: forward parameters that take a recurrent state, and the model methods that make the first one
_STATES = ("hidden", "h", "hx", "h0", "state", "states", "hidden_state", "hc")
_STATE_MAKERS = (
    "init_hidden",
    "initHidden",
    "init_state",
    "begin_state",
    "initial_state",
    "zero_state",
    "init_hidden_state",
    "init_states",
)


def make_tensor(spec: dict, device, generator_seed: int, seq_len: int | None = None):
    """One synthesized tensor: ``shape``, ``dtype`` (float, long, bool), ``fill`` (random,
    ones, zeros) and for integers ``high`` (exclusive); ``time_axis`` takes ``seq_len``."""
    shape = [int(n) for n in spec["shape"]]
    if seq_len is not None and spec.get("time_axis") is not None:
        shape[spec["time_axis"]] = seq_len
    dtype = spec.get("dtype", "float")
    fill = spec.get("fill", "random")
    integer = dtype in ("long", "int64", "int", "int32")
    torch_dtype = torch.long if integer else torch.bool if dtype == "bool" else torch.float32
    if fill == "ones":
        return torch.ones(shape, dtype=torch_dtype, device=device)
    if fill == "zeros":
        return torch.zeros(shape, dtype=torch_dtype, device=device)
    g = torch.Generator().manual_seed(generator_seed)
    if integer or dtype == "bool":
        high = 2 if dtype == "bool" else int(spec.get("high", 2))
        return torch.randint(0, high, shape, generator=g).to(device=device, dtype=torch_dtype)
    return torch.randn(shape, generator=g).to(device)


def _synthesize(spec: dict, device, seed: int, seq_len):
    args = [make_tensor(t, device, seed + 7919 * k, seq_len) for k, t in enumerate(spec.get("args") or ())]
    kwargs = {
        name: make_tensor(t, device, seed + 104729 * (k + 1), seq_len)
        for k, (name, t) in enumerate((spec.get("kwargs") or {}).items())
    }
    return args, kwargs


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (
            type(value)(_to(v, device) for v in value)
            if not hasattr(value, "_fields")
            else type(value)(*(_to(v, device) for v in value))
        )
    return value


def _load_hook(ref: str, path: str):
    """``module:function`` (importable beside the model file) or ``file.py:function``."""
    where, _, name = ref.rpartition(":")
    if not where or not name:
        raise _Skip(f"input-fn `{ref}` is not `module:function`")
    if where.endswith(".py"):
        file = Path(where) if os.path.isabs(where) else Path.cwd() / where
        if not file.is_file():
            file = Path(path).parent / where
        spec = importlib.util.spec_from_file_location(f"gradlint_input_{file.stem}", file)
        if spec is None or not file.is_file():
            raise _Skip(f"input-fn `{ref}`: no file `{where}`")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module(where)
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise _Skip(f"input-fn `{ref}`: `{name}` is not a function of `{where}`")
    return fn


def model_inputs(spec: dict, model, device, seed: int, seq_len, path: str):
    """``(args, kwargs)`` for one forward: from the ``input-fn`` hook, or synthesized from the
    input specs, completed with masks of ones and full lengths where ``forward`` asks for them."""
    inp = spec["input"]
    if inp.get("fn"):
        fn = _load_hook(inp["fn"], path)
        offered = {
            "model": model,
            "seed": seed,
            "device": device,
            "batch_size": inp.get("batch", 8),
            "seq_len": seq_len,
        }
        try:
            params = inspect.signature(fn).parameters
            accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
            kw = {k: v for k, v in offered.items() if accepts_any or k in params}
        except (TypeError, ValueError):
            kw = {}
        torch.manual_seed(10_000 + seed)
        out = fn(**kw)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict) and isinstance(out[0], (list, tuple)):
            args, kwargs = list(out[0]), dict(out[1])
        else:
            args, kwargs = [out], {}
        return _to(args, device), _to(kwargs, device)
    args, kwargs = _synthesize(inp, device, seed, seq_len)
    if inp.get("complete", True) and args and isinstance(args[0], torch.Tensor):
        _complete(model, args, kwargs, int((inp.get("args") or [{}])[0].get("batch_axis", 0)))
    return args, kwargs


def _forward_params(model):
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _complete(model, args, kwargs, batch_axis: int = 0) -> None:
    """Required ``forward`` parameters after the given ones that are masks or lengths."""
    params = _forward_params(model)
    if not params:
        return
    first = args[0]
    for p in params[len(args) :]:
        if p.name in kwargs or p.default is not inspect.Parameter.empty:
            continue
        if p.name in _MASKS and first.dim() >= 2:
            kwargs[p.name] = torch.ones(
                first.shape[:2], dtype=torch.long if not first.is_floating_point() else first.dtype, device=first.device
            )
        elif p.name in _LENGTHS and first.dim() >= 2:
            kwargs[p.name] = torch.full((first.shape[0],), first.shape[1], dtype=torch.long)
        elif p.name in _STATES and _first_state(model, args, kwargs, p.name, batch_axis):
            pass
        else:
            return  # a parameter gradlint cannot fill: the forward's error says so


def _first_state(model, args, kwargs, name: str, batch_axis: int = 0) -> bool:
    """The model's own first recurrent state (``init_hidden(batch_size)``, ``initHidden()``)
    for ``forward``'s parameter ``name``. A maker that takes no batch size and returns a batch
    of one: the inputs are cut to one example, as the code that calls it feeds them."""
    maker = next((getattr(model, m) for m in _STATE_MAKERS if callable(getattr(model, m, None))), None)
    if maker is None:
        return False
    batch = args[0].shape[batch_axis] if args[0].dim() > batch_axis else args[0].shape[0]
    try:
        needed = [
            q
            for q in inspect.signature(maker).parameters.values()
            if q.default is inspect.Parameter.empty and q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        needed = []
    state = maker(batch) if len(needed) == 1 else maker() if not needed else None
    if state is None:
        return False
    first = state[0] if isinstance(state, (tuple, list)) and state else state
    device = args[0].device
    if not needed and isinstance(first, torch.Tensor) and first.dim() >= 1 and 1 in first.shape[:2] and batch != 1:
        args[:] = [
            a.narrow(batch_axis, 0, 1)
            if isinstance(a, torch.Tensor) and a.dim() > batch_axis and a.shape[batch_axis] == batch
            else a
            for a in args
        ]
    kwargs[name] = _to(state, device)
    return True


def _describe_value(v) -> str:
    if isinstance(v, torch.Tensor):
        kind = "" if v.is_floating_point() else f" of {str(v.dtype).replace('torch.', '')}"
        return f"a Tensor{kind} of shape ({', '.join(str(n) for n in v.shape)})"
    if isinstance(v, dict):
        return "a dict with " + ", ".join(f"{k!r}" for k in list(v)[:6])
    return f"a {type(v).__name__}"


def _reads_of(model, name: str) -> list[str]:
    """How ``forward`` reads its parameter ``name``: ``name["key"]`` and ``name.attr``."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(type(model).forward)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return []
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == name:
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                reads.append(((node.lineno, node.col_offset), f"{name}[{node.slice.value!r}]"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name:
            if not hasattr(torch.Tensor, node.attr):
                reads.append(((node.lineno, node.col_offset), f"{name}.{node.attr}"))
    return list(dict.fromkeys(text for _, text in sorted(reads)))[:4]


def forward_failure(model, spec, args, kwargs, exc, path) -> str:
    """What was passed, what ``forward`` wanted, and the key to set."""
    params = _forward_params(model) or []
    sig = ", ".join(p.name + ("" if p.default is inspect.Parameter.empty else "=…") for p in params)
    given = [_describe_value(a) for a in args] + [f"{k}={_describe_value(v)}" for k, v in kwargs.items()]
    text = f"forward({sig}) got {' and '.join(given) or 'nothing'}"
    keys = "inputs, kwargs-inputs or input-fn"
    if params and args:
        reads = _reads_of(model, params[0].name)
        if reads:
            text += f"; it reads {', '.join(reads)}"
            keys = "input-fn (a function returning (args, kwargs))"
    key = f'[tool.gradlint.dynamic.models."{spec["config_key"]}"]'
    return f"{text}: {_short(exc)}{_where(exc, path)} — set {keys} under {key}"


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


class _Run:
    """One model of the job: builds it and its inputs, runs a forward, and names what was
    passed when the forward fails."""

    def __init__(self, module, spec, job, device, seq_len):
        self.module, self.spec, self.job, self.device, self.seq_len = module, spec, job, device, seq_len
        self.path = job["path"]

    def build(self, seed: int):
        torch.manual_seed(seed)
        model = construct(self.module, self.spec, self.path).to(self.device)
        model.train()
        return model

    def inputs(self, model, seed: int, seq_len=None):
        return model_inputs(
            self.spec, model, self.device, seed, seq_len if seq_len is not None else self.seq_len, self.path
        )

    def forward(self, model, args, kwargs):
        try:
            return model(*args, **kwargs)
        except (TypeError, IndexError, KeyError, ValueError, AttributeError, RuntimeError) as exc:
            if _out_of_memory(exc):
                raise
            raise _Skip(forward_failure(model, self.spec, args, kwargs, exc, os.path.abspath(self.path))) from None


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
