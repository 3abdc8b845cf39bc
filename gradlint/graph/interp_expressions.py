"""Expressions: names, attributes, subscripts, literals, comprehensions, operators, calls."""

from __future__ import annotations

import ast

from gradlint.graph import formulas
from gradlint.graph.folding import FoldingMixin
from gradlint.graph.interp_common import (
    _CMPOPS,
    _MODULE_METHODS,
    MAX_FOLD_BITS,
    MAX_STEPS,
    MAX_UNROLL,
    Frame,
    _BoundMethod,
    _Budget,
    _Factory,
    _is_known,
    _same_object,
    _Scaled,
    _span,
)
from gradlint.graph.model import Node, Provenance, UnknownKind
from gradlint.graph.pybuiltins import _BUILTINS
from gradlint.graph.values import (
    UNKNOWN,
    BlockSpec,
    ClassRef,
    Flow,
    FuncRef,
    LeafSpec,
    ParamRef,
    ParamSpec,
    SeqSpec,
    Spec,
    UnknownSpec,
)


class ExpressionsMixin(FoldingMixin):
    """Expressions: names, attributes, subscripts, literals, comprehensions, operators, calls.

    A part of :class:`gradlint.graph.builder.Builder`."""

    # ================================================================ expressions
    def eval(self, node, frame: Frame):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Budget
        t = type(node)
        if t is ast.Constant:  # the commonest node, and the cheapest
            return node.value
        method = _EVAL_DISPATCH.get(t)
        if method is None:
            return UNKNOWN
        return method(self, node, frame)

    def eval_Constant(self, node, frame):
        return node.value

    def eval_JoinedStr(self, node, frame):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                x = self.eval(v.value, frame)
                if not _is_known(x) or not isinstance(x, (int, float, str)):
                    return UNKNOWN
                if isinstance(x, int) and x.bit_length() > MAX_FOLD_BITS:
                    return UNKNOWN  # str() of it is refused by Python (int_max_str_digits)
                parts.append(str(x))
            else:
                return UNKNOWN
        return "".join(parts)

    def eval_Name(self, node, frame):
        name = node.id
        if name in frame.locals:
            if name in frame.prov:
                self.prov.extend(frame.prov[name])
            return frame.locals[name]
        if name == "self" and frame.self_block is not None:
            return frame.self_block
        index = self.index
        ref = index.refs.get(name)
        if ref is not None:
            return ref
        if name in index.classes:
            ref = index.refs[name] = ClassRef(name, index.classes[name])
            return ref
        if name in index.functions:
            ref = index.refs[name] = FuncRef(index.functions[name])
            return ref
        if name in index.imports:
            ref = index.refs[name] = ClassRef(index.imports[name])
            return ref
        if name in self.index.constants:
            return self.module_constant(name)
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        return UNKNOWN

    def eval_Attribute(self, node, frame):
        # torch.nn.Linear and friends resolve by name first
        q = self.index.qualname(node)
        if q is not None and not (isinstance(node.value, ast.Name) and node.value.id in frame.locals):
            ref = self.index.refs.get(q)
            if ref is None:
                ref = self.index.refs[q] = ClassRef(q)
            return ref
        owner = self.eval(node.value, frame)
        attr = node.attr
        if isinstance(owner, BlockSpec):
            if attr in owner.attrs:
                return owner.attrs[attr]
            if attr in owner.values:
                if attr in owner.prov:
                    self.prov.extend(owner.prov[attr])
                return owner.values[attr]
            method = self.index.method(owner.cls, attr)
            if method is not None:
                return FuncRef(method, bound=owner)
            stmt = self.index.class_attr(owner.cls, attr)
            if stmt is not None:
                value = self.eval(stmt.value, Frame(depth=frame.depth))
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.prov.append(Provenance(f"{owner.cls.name}.{attr}", value, stmt.lineno))
                return value
            if attr in _MODULE_METHODS:
                return _BoundMethod(owner, attr)
            if attr == "training":
                # nn.Module is in training mode when built, and is measured in it (the
                # convention of --dynamic): ``if self.training:`` takes its first branch
                return True
            if attr == "weight" and owner.seq is not None:
                return UNKNOWN
            return UNKNOWN
        if isinstance(owner, LeafSpec):
            if attr in ("weight", "bias") or attr.startswith(("weight_", "bias_", "in_proj_")):
                return ParamRef(owner, attr)
            if attr in owner.params:
                return owner.params[attr]
            if attr in _MODULE_METHODS:
                return _BoundMethod(owner, attr)
            return UNKNOWN
        if isinstance(owner, SeqSpec):
            if attr in _MODULE_METHODS or attr in (
                "append",
                "extend",
                "insert",
                "items",
                "keys",
                "values",
                "add_module",
                "update",
            ):
                return _BoundMethod(owner, attr)
            child = owner.get(attr)
            return child if child is not None else UNKNOWN
        if isinstance(owner, ParamRef):
            if attr == "data":
                return owner
            if attr == "ndim":
                return owner.ndim if owner.ndim is not None else UNKNOWN
            return _BoundMethod(owner, attr)
        if isinstance(owner, ParamSpec):
            if attr == "data":
                return ParamRef(owner, "weight")
            return _BoundMethod(ParamRef(owner, "weight"), attr)
        if isinstance(owner, Flow):
            return _BoundMethod(owner, attr)
        if isinstance(owner, ClassRef):
            if owner.local is not None:
                # a class attribute of a class of the file (``block.expansion``)
                stmt = self.index.class_attr(owner.local, attr)
                if stmt is not None:
                    return self.eval(stmt.value, Frame(depth=frame.depth))
                method = self.index.method(owner.local, attr)
                return FuncRef(method) if method is not None else UNKNOWN
            return ClassRef(f"{owner.qualname}.{attr}")
        if isinstance(owner, (list, dict, str)):
            return _BoundMethod(owner, attr)
        return UNKNOWN

    def eval_Subscript(self, node, frame):
        owner = self.eval(node.value, frame)
        if isinstance(owner, Flow):
            self.eval(node.slice, frame)
            return owner
        key = self.eval(node.slice, frame)
        if isinstance(owner, BlockSpec) and owner.seq is not None:
            owner = owner.seq
        if isinstance(owner, SeqSpec):
            if isinstance(key, slice):
                sub = SeqSpec(owner.kind, owner.span, [list(x) for x in owner.items[key]])
                return sub
            if isinstance(key, int) and owner.kind != "ModuleDict":
                try:
                    return owner.items[key][1]
                except IndexError:
                    return UNKNOWN
            if _is_known(key):
                child = owner.get(key)
                return child if child is not None else UNKNOWN
            return UNKNOWN
        if isinstance(owner, (list, tuple, str, dict, range)) and _is_known(key):
            try:
                return owner[key]
            except Exception:
                return UNKNOWN
        return UNKNOWN

    def eval_Slice(self, node, frame):
        parts = [self.eval(p, frame) if p is not None else None for p in (node.lower, node.upper, node.step)]
        if any(p is not None and (not isinstance(p, int) or isinstance(p, bool)) for p in parts):
            return UNKNOWN  # ``net[0.5:]`` fails in Python too; ``net[:n]`` with n unknown
        return slice(*parts)

    def eval_Tuple(self, node, frame):
        return tuple(self.eval_elts(node.elts, frame))

    def eval_List(self, node, frame):
        return list(self.eval_elts(node.elts, frame))

    def eval_Set(self, node, frame):
        return list(self.eval_elts(node.elts, frame))

    def eval_elts(self, elts, frame, unresolved: str = "unresolved *-expansion"):
        """The values of list/tuple elements or positional arguments, ``*x`` spread out (an
        unknown spread is one Unknown element, with ``unresolved`` as its reason)."""
        out = []
        for e in elts:
            if type(e) is ast.Starred:
                v = self.eval(e.value, frame)
                items = self.iterate(v)
                if items is None:
                    out.append(v if isinstance(v, Flow) else UnknownSpec(self.text(e.value)[:60], _span(e), unresolved))
                else:
                    out.extend(items)
            else:
                out.append(self.eval(e, frame))
        return out

    def eval_Dict(self, node, frame):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                sub = self.eval(v, frame)
                if isinstance(sub, dict):
                    out.update(sub)
                continue
            key = self.eval(k, frame)
            if not _is_known(key) or isinstance(key, (list, dict)):
                continue
            try:
                out[key] = self.eval(v, frame)
            except TypeError:
                pass
        return out

    def comprehension(self, node, frame, make):
        inner = Frame(frame.self_block, frame.cls, frame.depth, frame.func)
        inner.locals = dict(frame.locals)
        inner.prov = dict(frame.prov)
        results: list = []
        self._comprehension_level(node, node.generators, inner, make, results)
        return results

    def _comprehension_level(self, node, gens, inner, make, results) -> None:
        # a method, not a recursive closure: a closure that calls itself is a reference
        # cycle, which would keep every syntax tree alive until the cyclic GC runs
        if not gens:
            results.append(make(inner))
            return
        gen = gens[0]
        mark = len(self.prov)
        it = self.eval(gen.iter, inner)
        prov = tuple(self.prov[mark:])
        items = self.iterate(it)
        if items is None:
            self.note_unknown(
                f"comprehension count not resolved: `{self.text(gen.iter)[:60]}`", _span(gen.iter), UnknownKind.LOOP
            )
            items = [it if isinstance(it, Flow) else UNKNOWN]
        saved = self.repeat_ctx
        self.repeat_ctx = saved + prov
        try:
            for item in items[:MAX_UNROLL]:
                self.assign(gen.target, item, inner, node)
                if all(self.truth(self.eval(cond, inner)) is not False for cond in gen.ifs):
                    self._comprehension_level(node, gens[1:], inner, make, results)
        finally:
            self.repeat_ctx = saved

    def eval_ListComp(self, node, frame):
        return self.tag_repeat(self.comprehension(node, frame, lambda f: self.eval(node.elt, f)))

    eval_SetComp = eval_ListComp
    eval_GeneratorExp = eval_ListComp

    def eval_DictComp(self, node, frame):
        pairs = self.comprehension(node, frame, lambda f: (self.eval(node.key, f), self.eval(node.value, f)))
        out = {}
        for k, v in pairs:
            if _is_known(k) and not isinstance(k, (list, dict)):
                out[k] = v
        return out

    def formula(self, node, frame):
        """An activation spelled out (``1 / (1 + torch.exp(-x))``): its node, or None."""
        cache = self.index.formula_cache  # syntactic: one answer per node, however often it runs
        key = id(node)
        if key not in cache:
            cache[key] = formulas.match(node, self.index.qualname)
        hit = cache[key]
        if hit is None:
            return None
        act, operand = hit
        value = self.eval(operand, frame)
        if not isinstance(value, Flow):
            return None
        return self.functional_activation(act, f"{act} (written out)", [value], node)

    def eval_BinOp(self, node, frame):
        if isinstance(node.op, (ast.Div, ast.Sub, ast.Mult)):
            out = self.formula(node, frame)
            if out is not None:
                return out
        left = self.eval(node.left, frame)
        right = self.eval(node.right, frame)
        if (
            isinstance(left, Flow)
            or isinstance(right, Flow)
            or isinstance(left, ParamSpec)
            or isinstance(right, ParamSpec)
            or isinstance(left, ParamRef)
            or isinstance(right, ParamRef)
        ):
            return self.binop_flow(node.op, left, right, node)
        if isinstance(left, _Factory) and isinstance(right, (int, float)) and isinstance(node.op, (ast.Mult, ast.Div)):
            return _Scaled(left, right if isinstance(node.op, ast.Mult) else (1 / right if right else None))
        if isinstance(right, _Factory) and isinstance(left, (int, float)) and isinstance(node.op, ast.Mult):
            return _Scaled(right, left)
        if isinstance(left, list) and isinstance(right, list) and isinstance(node.op, ast.Add):
            return left + right
        if isinstance(left, list) and isinstance(right, int) and isinstance(node.op, ast.Mult):
            if right > MAX_UNROLL:
                return UNKNOWN
            return [x for _ in range(right) for x in left]  # the *same* module objects, n times
        return self.fold(node.op, left, right, node)

    def eval_UnaryOp(self, node, frame):
        v = self.eval(node.operand, frame)
        if isinstance(v, Flow):
            return v
        if not _is_known(v):
            return UNKNOWN
        try:
            if isinstance(node.op, ast.Not):
                t = self.truth(v)
                return UNKNOWN if t is None else (not t)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return +v
            if isinstance(node.op, ast.Invert):
                return ~v
        except Exception:
            return UNKNOWN
        return UNKNOWN

    def eval_BoolOp(self, node, frame):
        is_and = isinstance(node.op, ast.And)
        last = UNKNOWN
        for value_node in node.values:
            v = self.eval(value_node, frame)
            t = self.truth(v)
            if t is None:
                if isinstance(v, Flow):
                    return v
                last = UNKNOWN
                continue
            last = v
            if is_and and not t:
                return v
            if not is_and and t:
                return v
        return last

    def eval_Compare(self, node, frame):
        left = self.eval(node.left, frame)
        result = True
        for op, comp in zip(node.ops, node.comparators):
            right = self.eval(comp, frame)
            if (
                isinstance(op, (ast.Is, ast.IsNot))
                and (left is None or right is None)
                and _is_known(left)
                and _is_known(right)
            ):
                ok = (left is right) if isinstance(op, ast.Is) else (left is not right)
            elif isinstance(op, (ast.Is, ast.IsNot)) and all(isinstance(v, (ClassRef, FuncRef)) for v in (left, right)):
                # a class or function is one object: ``block_type is ConvBlock`` is equality of
                # the references, however many times the name was evaluated; a name imported
                # from outside torch may be any class (an alias of this one): not known
                same = _same_object(left, right)
                if same is None:
                    return UNKNOWN
                ok = same if isinstance(op, ast.Is) else not same
            elif (
                not _is_known(left)
                or not _is_known(right)
                or isinstance(left, (Flow, Spec))
                or isinstance(right, (Flow, Spec))
            ):
                return UNKNOWN
            else:
                try:
                    ok = _CMPOPS[type(op)](left, right)
                except Exception:
                    return UNKNOWN
            if not ok:
                result = False
            left = right
        return result

    def eval_IfExp(self, node, frame):
        t = self.truth(self.eval(node.test, frame))
        if t is True:
            return self.eval(node.body, frame)
        if t is False:
            return self.eval(node.orelse, frame)
        a = self.eval(node.body, frame)
        b = self.eval(node.orelse, frame)
        if isinstance(a, Flow) and isinstance(b, Flow):
            if a.producers == b.producers:
                return a
            # ``x + f(x) if self.use_residual else f(x)``: either may run; a "select" merge
            # keeps both, and gradient-path queries take the more favourable one
            self.note_unknown(
                self.condition_reason(node.test, "either value may be used"), _span(node), UnknownKind.CONDITION
            )
            n = self.graph.add_node(
                Node(self.next_node(), "merge", merge="select", span=_span(node)), a.producers | b.producers
            )
            return Flow(frozenset({n.id}))
        return a if isinstance(a, (Flow, Spec)) else b if isinstance(b, (Flow, Spec)) else UNKNOWN

    def eval_Lambda(self, node, frame):
        return FuncRef(node, bound=frame.self_block)

    def eval_NamedExpr(self, node, frame):
        v = self.eval(node.value, frame)
        self.assign(node.target, v, frame, node)
        return v

    def eval_Starred(self, node, frame):
        return self.eval(node.value, frame)

    def eval_Await(self, node, frame):
        return self.eval(node.value, frame)

    # ================================================================ calls
    def eval_Call(self, node, frame):
        func = node.func
        # super().__init__(...) and super().method(...)
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "super"
        ):
            return self.call_super(node, func.attr, frame)
        if (
            func.attr if type(func) is ast.Attribute else func.id if type(func) is ast.Name else None
        ) in _FORMULA_CALLS:
            out = self.formula(node, frame)
            if out is not None:
                return out
        callee = self.eval(func, frame)
        args, kwargs = self.eval_args(node, frame)
        if isinstance(func, ast.Attribute) and func.attr == "verify" and args == [None] and not kwargs:
            # torchvision factories: ``weights = ResNet50_Weights.verify(weights)`` keeps None
            return None
        return self.call(callee, args, kwargs, node, frame)


_FORMULA_CALLS = formulas.CALLS


_EVAL_DISPATCH = {
    getattr(ast, name[5:]): fn
    for name, fn in vars(ExpressionsMixin).items()
    if name.startswith("eval_") and hasattr(ast, name[5:])
}
