"""How many time steps a training loop backpropagates through: the sequence length the code uses.

Backpropagation through time is as deep as the sequence, so whether a recurrent model's
gradient can grow far depends on that length. Training code says it in a few common ways:

- a loop over time steps around the call of a model fed its own state:
  ``for i in range(seq_len): out, h = rnn(x[i], h)``;
- truncated BPTT, a loop stepping through the data by the length:
  ``for i in range(0, data.size(0) - 1, args.bptt)``;
- the input tensor's shape: ``x = torch.randn(batch, 10, features)``, whose time axis is the
  model's (``batch_first``) and is picked where the model graph is known.

A length is an int the file states: a literal, a module-level or local constant, arithmetic of
those, or an ``argparse`` option's default (``args.bptt`` with ``add_argument("--bptt",
type=int, default=35)``). Anything else (``len(line)``, ``x.size(0)``, a data loader) is not a
known length: the caller treats the length as unknown, never as some guessed number.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from gradlint.vocab import Category, ModelKind

#: tensor constructors whose positional arguments are the shape
_SHAPED = frozenset({"randn", "rand", "zeros", "ones", "empty", "randint", "full"})
_RESHAPE = frozenset({"view", "reshape"})
#: tensor methods that keep the shape: ``x.reshape(-1, 28, 28).to(device)``
_SAME_SHAPE = frozenset(
    {"to", "cuda", "cpu", "float", "double", "half", "detach", "contiguous", "requires_grad_", "clone", "type"}
)
#: the largest length worth stating (a bound against folding an absurd constant)
MAX_STEPS = 10**6


@dataclass(frozen=True)
class SeqLength:
    """A sequence length the code uses. ``steps`` is known; or ``dims`` is an input shape whose
    time axis the model decides (``batch_first``)."""

    how: str  # what in the code says it: "`range(10)`", "`args.bptt` (its argparse default)"
    line: int
    steps: int | None = None
    dims: tuple[int | None, ...] = ()
    in_model: bool = False  # said by the model's own forward, not by the training code

    def along(self, batch_first: bool | None) -> int | None:
        """The length along the model's time axis (``dims`` is an input shape)."""
        if self.steps is not None:
            return self.steps
        if not self.dims:
            return None
        if len(self.dims) == 2:  # an unbatched sequence (time, features)
            return self.dims[0]
        if batch_first is None:
            return None
        axis = 1 if batch_first else 0
        return self.dims[axis] if axis < len(self.dims) else None

    def describe(self, steps: int) -> str:
        return f"the {steps} steps this code uses ({self.how}, line {self.line})"


def argparse_defaults(tree: ast.Module) -> dict[str, int]:
    """``dest -> default`` of every ``add_argument("--name", ..., default=<int>)`` in the file."""
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
        ):
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        default = kw.get("default")
        if not (isinstance(default, ast.Constant) and type(default.value) is int):
            continue
        dest = kw.get("dest")
        if isinstance(dest, ast.Constant) and isinstance(dest.value, str):
            out[dest.value] = default.value
            continue
        flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        long = [f for f in flags if f.startswith("--")] or flags
        if long:
            out[long[0].lstrip("-").replace("-", "_")] = default.value
    return out


class Ints:
    """Resolves an expression to an int the file states, with what says so."""

    def __init__(self, constants: dict[str, ast.AST], local: dict[str, ast.AST], defaults: dict[str, int]):
        self.constants = constants  # module-level name -> its assignment statement
        self.local = local  # the scope's ``name -> value`` assignments
        self.defaults = defaults

    def value(self, expr, depth: int = 0) -> tuple[int, str] | None:
        if depth > 8 or expr is None:
            return None
        if isinstance(expr, ast.Constant) and type(expr.value) is int:
            return (expr.value, f"`{expr.value}`") if abs(expr.value) <= MAX_STEPS else None
        if isinstance(expr, ast.Name):
            value = self.local.get(expr.id)
            if value is None and expr.id in self.constants:
                value = getattr(self.constants[expr.id], "value", None)
            got = self.value(value, depth + 1) if value is not None else None
            return (got[0], f"`{expr.id} = {got[0]}`") if got else None
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            text = ast.unparse(expr)
            if text in self.local:
                got = self.value(self.local[text], depth + 1)
                return (got[0], f"`{text} = {got[0]}`") if got else None
            if expr.attr in self.defaults:
                return self.defaults[expr.attr], f"`{text}`, its argparse default {self.defaults[expr.attr]}"
            return None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)):
            a, b = self.value(expr.left, depth + 1), self.value(expr.right, depth + 1)
            if a is None or b is None:
                return None
            if isinstance(expr.op, ast.FloorDiv) and b[0] == 0:
                return None
            v = {
                ast.Add: a[0] + b[0],
                ast.Sub: a[0] - b[0],
                ast.Mult: a[0] * b[0],
                ast.FloorDiv: a[0] // b[0] if b[0] else 0,
            }[type(expr.op)]
            return (v, f"`{ast.unparse(expr)}` = {v}") if abs(v) <= MAX_STEPS else None
        return None


def _range_count(it, ints: Ints) -> tuple[int, str] | None:
    """Iterations of ``range(...)`` (also under ``enumerate``), when its bounds are known."""
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "enumerate" and it.args:
        it = it.args[0]
    if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range") or it.keywords:
        return None
    vals = [ints.value(a) for a in it.args]
    if not vals or any(v is None for v in vals) or len(vals) > 3:
        return None
    nums = [v[0] for v in vals]
    start, stop, step = (0, nums[0], 1) if len(nums) == 1 else (nums[0], nums[1], nums[2] if len(nums) == 3 else 1)
    if step <= 0:
        return None
    return max(0, -(-(stop - start) // step)), f"`{ast.unparse(it)}`"


def _bptt_step(it, ints: Ints) -> tuple[int, str] | None:
    """The stride of ``range(a, b, stride)``: a truncated-BPTT loop's length."""
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "enumerate" and it.args:
        it = it.args[0]
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range" and len(it.args) == 3:
        got = ints.value(it.args[2])
        if got is not None and got[0] > 1:
            return got[0], f"the stride of `{ast.unparse(it)}`, {got[1]}"
    return None


def _calls_of(node, model: str):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and ast.unparse(sub.func) == model:
            yield sub


def _shape_of(expr, ints: Ints, local: dict, depth: int = 0) -> tuple[tuple[int | None, ...], str] | None:
    """The literal shape of a tensor expression: ``torch.randn(8, 10, 4)``, ``x.view(-1, 28, 28)``,
    or a name bound to one."""
    if depth > 4:
        return None
    if isinstance(expr, ast.Name) and expr.id in local:
        return _shape_of(local[expr.id], ints, local, depth + 1)
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)):
        return None
    name = expr.func.attr
    if name in _SAME_SHAPE:
        return _shape_of(expr.func.value, ints, local, depth + 1)
    args = list(expr.args)
    if name in _SHAPED:
        if name == "randint":
            args = [a.elts for a in args if isinstance(a, (ast.Tuple, ast.List))][:1]
            args = args[0] if args else []
        elif name == "full":
            args = args[0].elts if args and isinstance(args[0], (ast.Tuple, ast.List)) else []
        elif len(args) == 1 and isinstance(args[0], (ast.Tuple, ast.List)):
            args = args[0].elts
    elif name not in _RESHAPE:
        return None
    elif len(args) == 1 and isinstance(args[0], (ast.Tuple, ast.List)):
        args = args[0].elts
    if not args or any(isinstance(a, ast.Starred) for a in args):
        return None
    dims, named = [], []
    for a in args:
        got = ints.value(a)
        dims.append(got[0] if got is not None and got[0] > 0 else None)
        if got is not None and not isinstance(a, ast.Constant):
            named.append(got[1])
    if all(d is None for d in dims):
        return None
    with_names = f" with {', '.join(named)}" if named else ""
    return tuple(dims), f"the input's shape `{ast.unparse(expr)[:60]}`{with_names}"


def loop_length(loop, model: str | None, ints: Ints, local: dict) -> SeqLength | None:
    """The sequence length a training loop (or step function) backpropagates its model through."""
    if not model:
        return None
    # a loop over time steps feeding the model its own state: its count
    for sub in ast.walk(loop):
        if sub is loop and not isinstance(loop, (ast.For, ast.AsyncFor)):
            continue
        if isinstance(sub, (ast.For, ast.AsyncFor)) and sub is not loop and any(True for _ in _calls_of(sub, model)):
            got = _range_count(sub.iter, ints)
            if got is not None:
                return SeqLength(got[1], sub.lineno, steps=got[0])
    if isinstance(loop, (ast.For, ast.AsyncFor)):
        got = _bptt_step(loop.iter, ints)
        if got is not None:
            return SeqLength(got[1], loop.lineno, steps=got[0])
    for call in _calls_of(loop, model):
        if call.args:
            shape = _shape_of(call.args[0], ints, local)
            if shape is not None:
                return SeqLength(shape[1], call.lineno, dims=shape[0])
    return None


def forward_length(cls: ast.ClassDef, ints: Ints) -> SeqLength | None:
    """The input shape a model's ``forward`` reshapes its input to before its recurrent layer
    (``x = x.reshape(-1, 28, 28)`` for an LSTM over image rows): the one ``view``/``reshape``
    with known sizes among ``forward``'s statements, else None (none, or several: no guess)."""
    forward = next(
        (f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == "forward"), None
    )
    if forward is None:
        return None
    found = []
    for node in ast.walk(forward):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _RESHAPE:
            shape = _shape_of(node, ints, {})
            if shape is not None and len(shape[0]) >= 3:
                found.append((node, shape))
    if len(found) != 1:
        return None
    node, (dims, how) = found[0]
    return SeqLength(
        how.replace("the input's shape", "the shape forward gives its input", 1), node.lineno, dims=dims, in_model=True
    )


def recurrent_batch_first(graph) -> bool | None:
    """Whether the first recurrent layer of a graph reads ``(batch, time, ...)``; None: none."""
    for layer in graph.layers(Category.RECURRENT):
        value = layer.params.get("batch_first", False)
        return value if isinstance(value, bool) else None
    return None


def attach_lengths(graphs, facts, index=None) -> None:
    """Give each model graph the sequence length its training code uses (``graph.sequence``:
    ``(steps, SeqLength)``, the longest when several loops train it), else the one its own
    ``forward`` reshapes its input to, for the flow model's unrolling and the rules that
    state it."""
    for loop in facts.loops:
        if loop.length is None or loop.model is None or loop.model[0] != ModelKind.LOCAL:
            continue
        cls = loop.model[1]
        for graph in graphs:
            if graph.name != cls and graph.factory_of != cls:
                continue
            steps = loop.length.along(recurrent_batch_first(graph))
            if steps is None or steps < 1:
                continue
            current = getattr(graph, "sequence", None)
            if current is None or steps > current[0]:
                graph.sequence = (steps, loop.length)
    if index is None:
        return
    for graph in graphs:
        cls = index.classes.get(graph.factory_of or graph.name)
        if graph.sequence is not None or cls is None or not graph.layers(Category.RECURRENT):
            continue
        length = forward_length(cls, Ints(index.constants, {}, {}))
        steps = length.along(recurrent_batch_first(graph)) if length is not None else None
        if steps is not None and steps >= 1:
            graph.sequence = (steps, length)
