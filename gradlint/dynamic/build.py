"""In the child of ``--dynamic``: the user's model built, its inputs made, a forward run.

Imported only by the worker (:mod:`gradlint.dynamic.worker`) and its measurements
(:mod:`gradlint.dynamic.probes`), in the child process: it imports torch. A model is built
from a factory function, its class with the configured kwargs, or the script's own statements;
its inputs come from an ``input-fn`` hook or are synthesized from the input specs the plan
gives, completed with the masks, lengths and first recurrent state ``forward`` asks for. A
forward that fails names what was passed and which key of the configuration to set. What the
user's code does wrong becomes a note (:class:`_Skip`, :func:`_short`, :func:`_where`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import traceback
from pathlib import Path

import torch
import torch.nn as nn


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
