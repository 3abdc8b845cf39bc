"""Activations written as formulas: ``1 / (1 + torch.exp(-x))`` is a sigmoid.

Hand-written models (courses, tutorials, papers' reference code) often spell an activation
out instead of calling it. :func:`match` recognizes the usual spellings on the syntax tree,
before anything is evaluated, and returns the catalogue activation and the expression it is
applied to; the builder then records one activation node, as for ``torch.sigmoid(x)``.

Recognized (``X`` is the same expression everywhere it appears; ``exp``, ``tanh`` ... are the
``torch`` functions, or the tensor methods of the same name):

- sigmoid: ``1 / (1 + exp(-X))``, ``exp(X) / (1 + exp(X))``, ``1 / (exp(-X) + 1)``
- tanh: ``(exp(X) - exp(-X)) / (exp(X) + exp(-X))``, ``2 * sigmoid(2 * X) - 1``
- relu: ``X.clamp(min=0)``, ``clamp(X, min=0)``, ``X.clamp_min(0)``, ``maximum(X, 0-like)``,
  ``X * (X > 0)``, ``where(X > 0, X, 0)``
- leaky_relu: ``where(X > 0, X, a * X)``, ``maximum(X, a * X)`` (``0 < a < 1``)
- relu6 / hardtanh: ``X.clamp(0, 6)``, ``X.clamp(-1, 1)``
- silu: ``X * sigmoid(X)``; mish: ``X * tanh(softplus(X))``
- gelu: ``0.5 * X * (1 + erf(X / sqrt(2)))`` (any grouping of the product)
- softplus: ``log(1 + exp(X))``, ``log1p(exp(X))``
"""

from __future__ import annotations

import ast
import math

#: the calls that can be the outermost node of a formula (``x.clamp(min=0)``, ``torch.where``)
CALLS = frozenset({"clamp", "clip", "clamp_min", "maximum", "max", "where", "log", "log1p"})


def _num(node) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _num(node.operand)
        return -v if v is not None else None
    if isinstance(node, ast.Call) and _fname(node, None) == "sqrt" and len(node.args) == 1:
        v = _num(node.args[0])
        return math.sqrt(v) if v is not None and v >= 0 else None
    return None


def _fname(call, qualname) -> str | None:
    """``exp`` for ``torch.exp(...)``, ``x.exp()``, ``math.sqrt`` -> ``sqrt``; None otherwise."""
    if not isinstance(call, ast.Call):
        return None
    f = call.func
    if isinstance(f, ast.Attribute):
        q = qualname(f) if qualname else None
        if q is None or q.startswith(("torch.", "math.", "numpy.")) or not q:
            return f.attr
        return f.attr if q.split(".")[-1] == f.attr else None
    if isinstance(f, ast.Name) and qualname:
        q = qualname(f)
        if q and q.startswith(("torch.", "math.")):
            return q.split(".")[-1]
    return None


class _Matcher:
    def __init__(self, qualname):
        self.q = qualname

    def fn(self, node, name: str):
        """The argument of a call of ``name`` (function or method form), or None."""
        if _fname(node, self.q) != name:
            return None
        f = node.func
        if isinstance(f, ast.Attribute) and not self._is_module(f.value):
            return f.value  # x.exp()
        return node.args[0] if node.args else None

    def _is_module(self, expr) -> bool:
        q = self.q(expr) if isinstance(expr, (ast.Name, ast.Attribute)) else None
        return bool(q) and q.split(".")[0] in ("torch", "math", "numpy")

    def kw(self, call, name, pos: int):
        for k in call.keywords:
            if k.arg == name:
                return k.value
        f = call.func
        offset = 0 if isinstance(f, ast.Attribute) and not self._is_module(f.value) else 1
        i = pos + offset
        return call.args[i] if len(call.args) > i else None

    # ---------------------------------------------------------------- patterns
    def match(self, node):
        for m in (self.sigmoid, self.tanh, self.rectifier, self.gated, self.gelu, self.softplus):
            out = m(node)
            if out is not None:
                return out
        return None

    def neg(self, node):
        return node.operand if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) else None

    def sigmoid(self, node):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)):
            return None
        num, den = node.left, node.right
        if _num(num) == 1.0 and isinstance(den, ast.BinOp) and isinstance(den.op, ast.Add):
            for one, e in ((den.left, den.right), (den.right, den.left)):
                if _num(one) == 1.0:
                    arg = self.fn(e, "exp")
                    x = self.neg(arg) if arg is not None else None
                    if x is not None:
                        return "sigmoid", x
        x = self.fn(num, "exp")
        if x is not None and isinstance(den, ast.BinOp) and isinstance(den.op, ast.Add):
            for one, e in ((den.left, den.right), (den.right, den.left)):
                if _num(one) == 1.0 and _same(self.fn(e, "exp"), x):
                    return "sigmoid", x
        return None

    def tanh(self, node):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            a, b = node.left, node.right
            if (
                isinstance(a, ast.BinOp)
                and isinstance(a.op, ast.Sub)
                and isinstance(b, ast.BinOp)
                and isinstance(b.op, ast.Add)
            ):
                x = self.fn(a.left, "exp")
                if (
                    x is not None
                    and _same(self.neg(self.fn(a.right, "exp")), x)
                    and _same(self.fn(b.left, "exp"), x)
                    and _same(self.neg(self.fn(b.right, "exp")), x)
                ):
                    return "tanh", x
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and _num(node.right) == 1.0:
            two = node.left
            if isinstance(two, ast.BinOp) and isinstance(two.op, ast.Mult):
                for c, s in ((two.left, two.right), (two.right, two.left)):
                    arg = self.fn(s, "sigmoid")
                    if _num(c) == 2.0 and isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mult):
                        for c2, x in ((arg.left, arg.right), (arg.right, arg.left)):
                            if _num(c2) == 2.0:
                                return "tanh", x
        return None

    def rectifier(self, node):
        if not isinstance(node, (ast.Call, ast.BinOp)):
            return None
        name = _fname(node, self.q) if isinstance(node, ast.Call) else None
        if name in ("clamp", "clip"):
            x = self.fn(node, name)
            lo, hi = _num(self.kw(node, "min", 0)), _num(self.kw(node, "max", 1))
            if x is None or lo is None:
                return None
            if lo == 0.0 and hi is None:
                return "relu", x
            if lo == 0.0 and hi == 6.0:
                return "relu6", x
            if lo == -1.0 and hi == 1.0:
                return "hardtanh", x
            return None
        if name == "clamp_min":
            x = self.fn(node, name)
            lo = _num(self.kw(node, "min", 0))
            return ("relu", x) if x is not None and lo == 0.0 else None
        if name in ("maximum", "max") and isinstance(node, ast.Call):
            args = self._operands(node)
            if args is None:
                return None
            x, other = args
            if self._zero_like(other, x):
                return "relu", x
            slope = self._scaled(other, x)
            if slope is not None and 0 < slope < 1:
                return "leaky_relu", x
            return None
        if name == "where" and len(node.args) == 3:
            cond, a, b = node.args
            if (
                isinstance(cond, ast.Compare)
                and len(cond.ops) == 1
                and isinstance(cond.ops[0], (ast.Gt, ast.GtE))
                and _num(cond.comparators[0]) == 0.0
                and _same(cond.left, a)
            ):
                if _num(b) == 0.0 or self._zero_like(b, a):
                    return "relu", a
                slope = self._scaled(b, a)
                if slope is not None and 0 < slope < 1:
                    return "leaky_relu", a
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for x, mask in ((node.left, node.right), (node.right, node.left)):
                m = mask
                if (
                    isinstance(m, ast.Call)
                    and isinstance(m.func, ast.Attribute)
                    and m.func.attr in ("float", "type_as", "to")
                    and not m.args[1:]
                ):
                    m = m.func.value
                if (
                    isinstance(m, ast.Compare)
                    and len(m.ops) == 1
                    and isinstance(m.ops[0], (ast.Gt, ast.GtE))
                    and _num(m.comparators[0]) == 0.0
                    and _same(m.left, x)
                ):
                    return "relu", x
        return None

    def _operands(self, call):
        f = call.func
        if isinstance(f, ast.Attribute) and not self._is_module(f.value):
            return (f.value, call.args[0]) if len(call.args) == 1 else None
        return (call.args[0], call.args[1]) if len(call.args) == 2 else None

    def _zero_like(self, node, x) -> bool:
        if _num(node) == 0.0:
            return True
        if _fname(node, self.q) == "zeros_like":
            return True
        if _fname(node, self.q) == "tensor" and node.args and _num(node.args[0]) == 0.0:
            return True
        return False

    def _scaled(self, node, x) -> float | None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            for c, y in ((node.left, node.right), (node.right, node.left)):
                if _num(c) is not None and _same(y, x):
                    return _num(c)
        return None

    def gated(self, node):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)):
            return None
        for x, g in ((node.left, node.right), (node.right, node.left)):
            if _same(self.fn(g, "sigmoid"), x):
                return "silu", x
            inner = self.fn(g, "tanh")
            if inner is not None and _same(self.fn(inner, "softplus"), x):
                return "mish", x
        return None

    def gelu(self, node):
        """``0.5 * X * (1 + erf(X / sqrt(2)))`` in any grouping of the product."""
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)):
            return None
        factors = _factors(node)
        half = [f for f in factors if _num(f) == 0.5]
        paren = [f for f in factors if isinstance(f, ast.BinOp) and isinstance(f.op, ast.Add)]
        if len(half) != 1 or len(paren) != 1 or len(factors) != 3:
            return None
        x = next(f for f in factors if f is not half[0] and f is not paren[0])
        p = paren[0]
        for one, e in ((p.left, p.right), (p.right, p.left)):
            arg = self.fn(e, "erf")
            if (
                _num(one) == 1.0
                and isinstance(arg, ast.BinOp)
                and isinstance(arg.op, ast.Div)
                and _same(arg.left, x)
                and _num(arg.right) is not None
                and abs(_num(arg.right) - math.sqrt(2)) < 1e-3
            ):
                return "gelu", x
            if _num(one) == 1.0 and isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mult):
                for c, y in ((arg.left, arg.right), (arg.right, arg.left)):
                    if _same(y, x) and _num(c) is not None and abs(_num(c) - 1 / math.sqrt(2)) < 1e-3:
                        return "gelu", x
        return None

    def softplus(self, node):
        inner = self.fn(node, "log1p")
        if inner is not None:
            x = self.fn(inner, "exp")
            return ("softplus", x) if x is not None else None
        inner = self.fn(node, "log")
        if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Add):
            for one, e in ((inner.left, inner.right), (inner.right, inner.left)):
                x = self.fn(e, "exp")
                if _num(one) == 1.0 and x is not None:
                    return "softplus", x
        return None


def _factors(node) -> list:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _factors(node.left) + _factors(node.right)
    return [node]


def _same(a, b) -> bool:
    return a is not None and b is not None and ast.dump(a) == ast.dump(b)


def could_match(node) -> bool:
    """A cheap first test: only expressions with a call or a comparison in them can match."""
    return isinstance(node, (ast.BinOp, ast.Call))


def match(node, qualname) -> tuple[str, ast.expr] | None:
    """``(activation, operand)`` when ``node`` spells out a catalogue activation, else None.
    ``qualname`` resolves a name or attribute to its qualified name (the file's imports)."""
    if not could_match(node):
        return None
    return _Matcher(qualname).match(node)
