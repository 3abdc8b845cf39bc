"""Python builtins as the builder evaluates them (range, len, zip, isinstance, getattr ...)."""

from __future__ import annotations

import ast

from gradlint.graph.interp_common import Frame, _torch_kind
from gradlint.graph.values import UNKNOWN, BlockSpec, ClassRef, LeafSpec, SeqSpec, Spec, UnknownSpec
from gradlint.vocab import Category


def _builtin(fn):
    fn._gradlint_builtin = True
    return fn


@_builtin
def _b_range(b, args, kwargs, node, frame):
    if all(isinstance(a, int) and not isinstance(a, bool) for a in args) and 1 <= len(args) <= 3:
        return range(*args)
    return UNKNOWN


@_builtin
def _b_len(b, args, kwargs, node, frame):
    if not args:
        return UNKNOWN
    items = b.iterate(args[0])
    return len(items) if items is not None else UNKNOWN


@_builtin
def _b_enumerate(b, args, kwargs, node, frame):
    items = b.iterate(args[0]) if args else None
    if items is None:
        return UNKNOWN
    start = args[1] if len(args) > 1 and isinstance(args[1], int) else kwargs.get("start", 0)
    start = start if isinstance(start, int) else 0
    return [(i + start, v) for i, v in enumerate(items)]


@_builtin
def _b_zip(b, args, kwargs, node, frame):
    lists = [b.iterate(a) for a in args]
    if any(l is None for l in lists):
        return UNKNOWN
    return list(zip(*lists))


@_builtin
def _b_list(b, args, kwargs, node, frame):
    if not args:
        return []
    items = b.iterate(args[0])
    return list(items) if items is not None else UNKNOWN


@_builtin
def _b_tuple(b, args, kwargs, node, frame):
    if not args:
        return ()
    items = b.iterate(args[0])
    return tuple(items) if items is not None else UNKNOWN


@_builtin
def _b_reversed(b, args, kwargs, node, frame):
    items = b.iterate(args[0]) if args else None
    return list(reversed(items)) if items is not None else UNKNOWN


@_builtin
def _b_isinstance(b, args, kwargs, node, frame):
    if len(args) != 2:
        return UNKNOWN
    obj, classes = args
    classes = classes if isinstance(classes, (tuple, list)) else (classes,)
    if not isinstance(obj, Spec):
        if isinstance(obj, (int, float, str)):
            names = {c.qualname for c in classes if isinstance(c, ClassRef)}
            pyname = {int: "int", float: "float", str: "str"}[type(obj)] if type(obj) in (int, float, str) else None
            return pyname in names if names else UNKNOWN
        return UNKNOWN
    unknown = False
    for c in classes:
        if not isinstance(c, ClassRef):
            unknown = True
            continue
        if c.local is not None:
            if isinstance(obj, BlockSpec) and (obj.cls is c.local or b._inherits(obj.cls, c.local)):
                return True
            continue
        kind = _torch_kind(c.qualname)
        if kind is None:
            unknown = True
            continue
        if kind == "Module":
            return True
        if isinstance(obj, LeafSpec) and (obj.kind == kind or _torch_subclass(obj.kind, kind)):
            return True
        if isinstance(obj, SeqSpec) and obj.kind == kind:
            return True
        if isinstance(obj, BlockSpec) and obj.torch_base == kind:
            return True
        if isinstance(obj, UnknownSpec):
            unknown = True
    return UNKNOWN if unknown else False


def _torch_subclass(kind: str, base: str) -> bool:
    groups = {
        "_ConvNd": lambda k: k.startswith(("Conv", "LazyConv")),
        "_BatchNorm": lambda k: "BatchNorm" in k,
        "_NormBase": lambda k: "BatchNorm" in k or "InstanceNorm" in k,
        "_InstanceNorm": lambda k: "InstanceNorm" in k,
        "RNNBase": lambda k: k in ("RNN", "LSTM", "GRU"),
        "RNNCellBase": lambda k: k in ("RNNCell", "LSTMCell", "GRUCell"),
        "BatchNorm2d": lambda k: k == "SyncBatchNorm",
    }
    test = groups.get(base)
    return bool(test and test(kind))


def _inherits(self, cls, base) -> bool:
    """``cls`` derives from ``base``, a class of this file."""
    return any(c is base for c in self.index.same_file_mro(cls) if c is not cls)


@_builtin
def _b_getattr(b, args, kwargs, node, frame):
    if len(args) < 2 or not isinstance(args[1], str):
        return UNKNOWN
    owner, name = args[0], args[1]
    fake = ast.Attribute(value=ast.Name(id="__gl_owner__", ctx=ast.Load()), attr=name, ctx=ast.Load())
    ast.copy_location(fake, node)
    inner = Frame(frame.self_block, frame.cls, frame.depth, frame.func)
    inner.locals = {"__gl_owner__": owner}
    value = b.eval_Attribute(fake, inner)
    if value is UNKNOWN and len(args) > 2:
        return args[2]
    return value


@_builtin
def _b_setattr(b, args, kwargs, node, frame):
    if len(args) == 3 and isinstance(args[0], BlockSpec) and isinstance(args[1], str):
        b.set_attr(args[0], args[1], args[2], node)
    return None


@_builtin
def _b_hasattr(b, args, kwargs, node, frame):
    if len(args) == 2 and isinstance(args[1], str):
        owner = args[0]
        if isinstance(owner, LeafSpec):
            return (
                args[1] in ("weight", "bias")
                and (args[1] != "bias" or owner.params.get("bias", True) is not False)
                and owner.category in (Category.WEIGHTED, Category.NORM)
            )
        if isinstance(owner, BlockSpec):
            return args[1] in owner.attrs or args[1] in owner.values
    return UNKNOWN


def _numeric(fn):
    @_builtin
    def wrapped(b, args, kwargs, node, frame):
        vals = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
        if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            try:
                return fn(vals)
            except Exception:
                return UNKNOWN
        return UNKNOWN

    return wrapped


def _conversion(to):
    """``int(x)`` / ``float(x)`` of a known number or string; UNKNOWN otherwise or on error."""

    def convert(b, args, kwargs, node, frame):
        if args and isinstance(args[0], (int, float, str)):
            try:
                return to(args[0])
            except Exception:
                return UNKNOWN
        return UNKNOWN

    convert.__name__ = f"_b_{to.__name__}"
    return convert


_b_int = _builtin(_conversion(int))
_b_float = _builtin(_conversion(float))


_BUILTINS = {
    "range": _b_range,
    "len": _b_len,
    "enumerate": _b_enumerate,
    "zip": _b_zip,
    "list": _b_list,
    "tuple": _b_tuple,
    "reversed": _b_reversed,
    "isinstance": _b_isinstance,
    "getattr": _b_getattr,
    "setattr": _b_setattr,
    "hasattr": _b_hasattr,
    "max": _numeric(max),
    "min": _numeric(min),
    "sum": _numeric(sum),
    "abs": _numeric(lambda v: abs(v[0])),
    "round": _numeric(lambda v: round(v[0])),
    "int": _b_int,
    "float": _b_float,
    "dict": ClassRef("dict"),
    "OrderedDict": None,
}
_BUILTINS = {k: v for k, v in _BUILTINS.items() if v is not None}
