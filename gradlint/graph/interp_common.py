"""What the builder's parts share: limits, control-flow signals, frames and small interpreter values."""

from __future__ import annotations

import ast
import functools
import operator

from gradlint.graph.model import Init, Span
from gradlint.graph.values import UNKNOWN, BlockSpec, ClassRef, FuncRef, LeafSpec, ParamRef, SeqSpec, Spec

MAX_UNROLL = 512  # iterations of one loop
MAX_STEPS = 60_000  # evaluation steps per model class
MAX_DEPTH = 24  # nested calls of the file's functions/classes
MAX_NODES = 6_000  # forward nodes per graph
MAX_FOLD_BITS = 4_096  # bits of an integer the builder folds (2 ** 4096 has 1,234 digits)
MAX_FOLD_LEN = 10_000  # items of a string or tuple the builder folds


def fold_too_large(op, left, right) -> bool:
    """Whether ``left op right`` would be bigger than the builder folds, told *before*
    computing it (``1 << (1 << 33)``, ``\"ab\" * 10**9``, ``x ** 64 ** 64`` would each take
    seconds and gigabytes)."""

    def bits(v):
        return v.bit_length() if isinstance(v, int) else 0

    def size(v):
        return len(v) if isinstance(v, (str, tuple)) else 0

    if isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, (int, float)):
        return abs(right) > 1 and bits(left) > 1 and bits(left) * abs(right) > MAX_FOLD_BITS
    if isinstance(op, ast.LShift) and isinstance(left, int) and isinstance(right, int):
        return left != 0 and bits(left) + right > MAX_FOLD_BITS
    if isinstance(op, ast.Mult):
        if isinstance(left, int) and isinstance(right, int):
            return bits(left) + bits(right) > MAX_FOLD_BITS
        seq, n = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(n, int) and isinstance(seq, (str, tuple)):
            return size(seq) * n > MAX_FOLD_LEN
    if isinstance(op, ast.Add):
        return size(left) + size(right) > MAX_FOLD_LEN
    return False


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
#: tensor methods that only reshape / reorder / reduce: the value flows through
_PASSTHROUGH_PREFIXES = ("torch.", "math.", "numpy.", "np.")


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Budget(Exception):
    """The analysis budget (steps, nodes) ran out; ``where``: the innermost function then."""

    where: str | None = None


def _is_known(v) -> bool:
    return v is not UNKNOWN


def _span(node) -> Span:
    return Span.of(node)


@functools.lru_cache(maxsize=4096)
def _torch_kind(qualname: str | None) -> str | None:
    """``torch.nn.Linear`` -> ``Linear``; None for anything outside torch.nn (memoized: the
    builder asks for every call it evaluates)."""
    if not qualname:
        return None
    if qualname.startswith("torch.nn.modules."):
        return qualname.rsplit(".", 1)[-1]
    if qualname.startswith("torch.nn.") and qualname.count(".") == 2:
        return qualname.rsplit(".", 1)[-1]
    return None


class Frame:
    __slots__ = ("locals", "self_block", "cls", "depth", "func", "prov")

    def __init__(self, self_block=None, cls=None, depth=0, func=None):
        self.locals: dict[str, object] = {}
        self.prov: dict[str, tuple] = {}  # local name -> where its number came from
        self.self_block = self_block
        self.cls = cls
        self.depth = depth
        self.func = func


def _spatial_dims(v) -> bool:
    """``(2, 3)``, ``[2, 3]``, ``(-2, -1)``: the spatial axes of an (N, C, H, W) tensor."""
    return (
        isinstance(v, (tuple, list))
        and len(v) >= 2
        and all(isinstance(d, int) for d in v)
        and 0 not in v
        and 1 not in v
    )


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _instance_key(cls, args, kwargs, repeat_ctx):
    """A cache key for instantiating ``cls`` with these arguments, or None when not cacheable."""
    items = (*args, *kwargs.values())
    for a in items:
        if not (a is None or a is UNKNOWN or isinstance(a, (int, float, str, bool, ClassRef, FuncRef))):
            if not (isinstance(a, tuple) and all(isinstance(x, (int, float, str, bool)) or x is None for x in a)):
                return None
    try:
        key = (id(cls), tuple(args), tuple(sorted(kwargs.items())), repeat_ctx)
        hash(key)
    except TypeError:
        return None
    return key


def _clone(value, memo: dict):
    """Copy a spec tree (specs, their dicts and lists); shared objects stay shared."""
    if isinstance(value, Spec):
        found = memo.get(id(value))
        if found is not None:
            return found
        new = object.__new__(type(value))  # copy.copy, without its __reduce_ex__ round trip
        new.__dict__.update(value.__dict__)
        memo[id(value)] = new
        new.inits = dict(value.inits)
        if isinstance(value, LeafSpec):
            new.params = dict(value.params)
        elif isinstance(value, SeqSpec):
            new.items = [[k, _clone(v, memo)] for k, v in value.items]
        elif isinstance(value, BlockSpec):
            new.attrs = {k: _clone(v, memo) for k, v in value.attrs.items()}
            new.values = {k: _clone(v, memo) for k, v in value.values.items()}
            new.prov = dict(value.prov)
            new.seq = _clone(value.seq, memo) if value.seq is not None else None
        return new
    if isinstance(value, list):
        return [_clone(v, memo) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v, memo) for k, v in value.items()}
    if isinstance(value, tuple) and any(isinstance(v, (Spec, list, dict)) for v in value):
        return tuple(_clone(v, memo) for v in value)
    if isinstance(value, ParamRef):
        return ParamRef(_clone(value.owner, memo), value.name)
    return value


class _BoundMethod:
    __slots__ = ("owner", "name")

    def __init__(self, owner, name):
        self.owner = owner
        self.name = name


class _PieceSeq(tuple):
    """``x.chunk(n)`` with a known ``n``: the pieces, each a flow of its own (a split node)."""

    def __new__(cls, pieces, flow):
        obj = super().__new__(cls, pieces)
        obj.flow = flow
        return obj


class _FlowSeq(tuple):
    """``x.chunk(2)``: a sequence of tensors that all come from the same producers."""

    def __new__(cls, flow):
        obj = super().__new__(cls, (flow, flow))
        obj.flow = flow
        return obj


class _Factory:
    """``torch.randn(64, 64)`` and friends, for ``nn.Parameter``."""

    def __init__(self, scheme, args, kwargs, node):
        self.scheme, self.args, self.kwargs, self.node = scheme, args, kwargs, node

    def shape(self):
        dims = self.args
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = dims[0]
        if self.scheme == "constant":
            dims = dims[0] if dims and isinstance(dims[0], (tuple, list)) else ()
        return tuple(d if isinstance(d, int) else None for d in dims)

    def init(self, text, scale=None):
        span = Span.of(self.node)
        value = None
        if self.scheme == "constant" and len(self.args) > 1 and isinstance(self.args[1], (int, float)):
            value = float(self.args[1])
        elif self.scheme == "zeros":
            value = 0.0
        elif self.scheme == "ones":
            value = 1.0
        std = 1.0 if self.scheme == "normal" else None
        bound = 1.0 if self.scheme == "uniform" else None
        mean = 0.0 if self.scheme == "normal" else 0.5 if self.scheme == "uniform" else None  # torch.rand: U[0, 1)
        if scale is not None:
            std = std * scale if std is not None else None
            bound = abs(bound * scale) if bound is not None else None
            value = value * scale if value is not None else None
            mean = mean * scale if mean is not None else None
        return Init(self.scheme, text[:120], span, "parameter-factory", value, std, bound, mean=mean)


class _Scaled:
    def __init__(self, base, scale):
        self.base, self.scale = base, scale

    def init(self, text):
        return self.base.init(text, self.scale)


_MODULE_METHODS = frozenset(
    {
        "post_init",
        "modules",
        "named_modules",
        "children",
        "named_children",
        "parameters",
        "named_parameters",
        "apply",
        "add_module",
        "register_module",
        "register_parameter",
        "to",
        "cuda",
        "cpu",
        "float",
        "double",
        "half",
        "train",
        "eval",
        "requires_grad_",
    }
)


def _same_object(a, b) -> bool | None:
    """Whether two class or function references name one object; None when one is imported from
    outside torch and the two differ (it may be an alias of the other)."""
    if a == b:
        return True
    for v in (a, b):
        if isinstance(v, ClassRef) and v.local is None and not v.qualname.startswith("torch"):
            return None
    return False
