"""Build :class:`ModelGraph` objects from one parsed file (stdlib ``ast``).

The builder interprets ``__init__`` and ``forward`` of every ``nn.Module`` subclass
symbolically: constants are folded (module constants, class attributes, default
arguments, arithmetic), loops with a known count are unrolled, helper functions and
classes of the same file are called, layers become specs, and tensors in ``forward``
become sets of producing graph nodes. What it cannot resolve becomes an explicit
:class:`~gradlint.graph.model.Unknown` on the graph. It never reports findings.
"""

from __future__ import annotations

import ast
import builtins
import math
import copy
import dataclasses
import operator
from itertools import count

from gradlint.graph import catalog, formulas
from gradlint.graph.model import Init, Layer, ModelGraph, Node, Provenance, Span
from gradlint.graph.recurrence import forward_is_recurrent
from gradlint.graph.sites import find_sites
from gradlint.graph.values import (
    UNKNOWN,
    BlockSpec,
    ClassRef,
    Flow,
    FuncRef,
    Iterated,
    LeafSpec,
    ParamRef,
    ParamSpec,
    PartialRef,
    SeqSpec,
    Spec,
    UnknownSpec,
)

MAX_UNROLL = 512  # iterations of one loop
MAX_STEPS = 60_000  # evaluation steps per model class
MAX_DEPTH = 24  # nested calls of the file's functions/classes
MAX_NODES = 6_000  # forward nodes per graph

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv, ast.Div: operator.truediv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.BitOr: operator.or_, ast.BitAnd: operator.and_,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
#: tensor methods that only reshape / reorder / reduce: the value flows through
_PASSTHROUGH_PREFIXES = ("torch.", "math.", "numpy.", "np.")


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Budget(Exception):
    pass


def _is_known(v) -> bool:
    return v is not UNKNOWN


def _span(node) -> Span:
    return Span.of(node)


def _torch_kind(qualname: str | None) -> str | None:
    """``torch.nn.Linear`` -> ``Linear``; None for anything outside torch.nn."""
    if not qualname:
        return None
    if qualname.startswith("torch.nn.modules."):
        return qualname.rsplit(".", 1)[-1]
    if qualname.startswith("torch.nn.") and qualname.count(".") == 2:
        return qualname.rsplit(".", 1)[-1]
    return None


class FileIndex:
    """Names defined and imported at module level of one file."""

    def __init__(self, tree: ast.Module):
        self.text_cache: dict[int, str] = {}
        #: classes of this file whose instances contain nn.RNN/LSTM/GRU or their cells
        self.recurrent_classes: set[str] = set()
        #: (class, arguments, loop context) -> (interpreted BlockSpec, classes it built, unknowns)
        self.instances: dict = {}
        #: models whose build failed (a builder bug): (name, span, message), for GL002
        self.build_errors: list = []
        self._qualname_cache: dict[int, str | None] = {}
        self.imports: dict[str, str] = {}
        #: modules of ``from M import *`` statements
        self.star_imports: list[str] = []
        self.constants: dict[str, ast.AST] = {}
        self.functions: dict[str, ast.AST] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self._collect(tree.body)
        self.module_classes = self._module_classes()
        # a forward that feeds its state back through a layer is recurrent, like nn.RNN
        self.recurrent_classes |= {n for n in self.module_classes if forward_is_recurrent(self.classes[n])}
        #: id(method node) -> the class whose body defines it
        self.owner_of = {id(f): c for c in self.classes.values() for f in c.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def _collect(self, body) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    if a.asname:
                        self.imports[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.imports[top] = top
            elif isinstance(stmt, ast.ImportFrom):
                # a relative import keeps its dots (``.models.Seq2Seq``): another file of the run
                prefix = "." * stmt.level + (stmt.module or "") if stmt.level else stmt.module
                for a in stmt.names:
                    if a.name != "*":
                        sep = "" if prefix.endswith(".") else "."
                        self.imports[a.asname or a.name] = f"{prefix}{sep}{a.name}"
                    elif prefix:
                        self.star_imports.append(prefix)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if stmt.value is not None:
                    for t in targets:
                        if isinstance(t, ast.Name):
                            self.constants[t.id] = stmt
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = stmt
            elif isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = stmt
            elif isinstance(stmt, (ast.If, ast.Try)):
                self._collect(stmt.body)
                for h in getattr(stmt, "handlers", []):
                    self._collect(h.body)
                self._collect(stmt.orelse)

    def qualname(self, expr) -> str | None:
        """Resolve ``nn.Linear`` / ``F.relu`` / ``Linear`` to a fully qualified name."""
        key = id(expr)
        cache = self._qualname_cache
        if key in cache:
            return cache[key]
        value = cache[key] = self._qualname(expr)
        return value

    def _qualname(self, expr) -> str | None:
        if isinstance(expr, ast.Name):
            if expr.id in self.imports:
                return self.imports[expr.id]
            if len(self.star_imports) == 1 and expr.id not in self.classes and expr.id not in self.functions \
                    and expr.id not in self.constants and not hasattr(builtins, expr.id):
                # ``from model import *``: a name the file uses but does not define comes from there
                return f"{self.star_imports[0]}.{expr.id}"
            return None
        if isinstance(expr, ast.Attribute):
            base = self.qualname(expr.value)
            if base is None:
                return None
            return f"{base}.{expr.attr}"
        return None

    def _module_classes(self) -> dict[str, str | None]:
        """Classes that are nn.Module subclasses -> their torch base (or None)."""
        result: dict[str, str | None] = {}
        changed = True
        while changed:
            changed = False
            for name, cls in self.classes.items():
                if name in result:
                    continue
                for base in cls.bases:
                    q = self.qualname(base)
                    kind = _torch_kind(q)
                    if kind is not None or q in ("torch.nn.Module",):
                        result[name] = kind if kind != "Module" else None
                        changed = True
                        break
                    if isinstance(base, ast.Name) and base.id in result:
                        result[name] = result[base.id]
                        changed = True
                        break
        for name, cls in self.classes.items():
            # a class deriving from an imported base (PreTrainedModel, a Lightning module)
            # that writes a forward is treated as a module; its base stays unknown
            if name not in result and any(
                isinstance(s, ast.FunctionDef) and s.name == "forward" for s in cls.body
            ):
                result[name] = None
            elif name not in result and self.imported_bases(cls) and self._builds_layers(cls):
                # layers built on an imported base that gradlint cannot see (its forward lives
                # there): a model whose forward is an Unknown, noted, not ignored
                result[name] = None
        return result

    def imported_bases(self, cls: ast.ClassDef) -> list[str]:
        """Qualified names of ``cls``'s bases imported from outside torch (``mylib.BaseModel``)."""
        out = []
        for base in cls.bases:
            q = self.qualname(base)
            if q and not q.startswith("torch.") and not (isinstance(base, ast.Name) and base.id in self.classes):
                out.append(q)
        return out

    def _builds_layers(self, cls: ast.ClassDef) -> bool:
        init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        if init is None:
            return False
        for node in ast.walk(init):
            if isinstance(node, ast.Call):
                q = self.qualname(node.func) or ""
                if q.startswith("torch.nn.") and _torch_kind(q) is not None:
                    return True
        return False

    def method(self, cls: ast.ClassDef, name: str, _depth: int = 0):
        for stmt in cls.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                return stmt
        if _depth > 10:
            return None
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in self.classes and self.classes[base.id] is not cls:
                found = self.method(self.classes[base.id], name, _depth + 1)
                if found is not None:
                    return found
        return None

    def class_attr(self, cls: ast.ClassDef, name: str, _depth: int = 0):
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    if isinstance(t, ast.Name) and t.id == name:
                        return stmt
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if stmt.target.id == name and stmt.value is not None:
                    return stmt
        if _depth > 10:
            return None
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in self.classes and self.classes[base.id] is not cls:
                found = self.class_attr(self.classes[base.id], name, _depth + 1)
                if found is not None:
                    return found
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


class Builder:
    """Builds the graph of one model class."""

    def __init__(self, index: FileIndex, path: str, cls: ast.ClassDef | None, factory=None):
        self.index = index
        self.path = path
        self.cls = cls
        self.factory = factory
        where = factory if factory is not None else cls
        self.graph = ModelGraph(f"{factory.name}()" if factory is not None else cls.name, path, _span(where))
        self.steps = 0
        self.prov: list[Provenance] = []
        self.node_ids = count(1)
        self.names: dict[int, str] = {}  # id(spec) -> qualified name
        self.func_layers: dict[tuple, str] = {}  # call-site span -> functional layer name
        self.instantiated: set[str] = set()  # same-file classes used inside this one
        self.unknown_logs: list[list] = []  # unknowns seen while instantiating (for the cache)
        self.unregistered = count(0)

    def text(self, node) -> str:
        """``ast.unparse`` of a node, cached: the same nodes recur as blocks are re-instantiated."""
        cache = self.index.text_cache
        key = id(node)
        value = cache.get(key)
        if value is None:
            value = cache[key] = ast.unparse(node)
        return value

    # ================================================================ entry
    def build(self) -> ModelGraph | None:
        """The graph of the class, or of the model a factory function returns (None when the
        factory does not return an instance of one of the file's module classes)."""
        g = self.graph
        try:
            if self.factory is not None:
                root = self.call_function(self.factory, [], {}, Frame(depth=0), root=True)
                if not isinstance(root, BlockSpec) or root.cls.name not in self.index.module_classes:
                    return None
                self.cls = root.cls
                g.factory_of = root.cls.name
            else:
                root = self.instantiate(self.cls, [], {}, _span(self.cls), Frame(depth=0), root=True)
            self.name_specs(root, "")
            forward = self.index.method(self.cls, "forward")
            g.add_node(Node(0, "input"))
            if forward is not None or root.seq is not None:
                g.has_forward = True
                out = self.run_block(root, [Flow(frozenset({0}))], {}, Frame(depth=0), span=None)
                if isinstance(out, (tuple, list)):
                    out = self._merge_flows(out)
                if isinstance(out, Flow):
                    g.add_node(Node(next(self.node_ids), "output"), out.producers)
            elif root.torch_base is None:
                bases = self.index.imported_bases(self.cls)
                self.note_unknown(
                    f"forward() is inherited from `{bases[0]}`, which gradlint cannot see" if bases
                    else "no forward() in this class or its same-file bases", _span(self.cls))
        except _Budget:
            self.note_unknown("analysis budget exceeded: graph truncated", _span(self.cls or self.factory))
        except RecursionError:
            self.note_unknown("nesting too deep to analyse: graph truncated", _span(self.cls or self.factory))
        return g

    # ================================================================ naming
    def name_specs(self, spec: Spec, prefix: str) -> None:
        if id(spec) in self.names:
            return
        if prefix:
            self.names[id(spec)] = prefix
        if isinstance(spec, LeafSpec):
            self.graph.add_layer(
                Layer(prefix, spec.kind, spec.category, spec.span, spec.activation, dict(spec.params),
                      dict(spec.inits), spec.repeat)
            )
        elif isinstance(spec, ParamSpec):
            self.graph.add_layer(
                Layer(prefix, "Parameter", "parameter", spec.span, None, {"shape": spec.shape},
                      dict(spec.inits), spec.repeat)
            )
        elif isinstance(spec, UnknownSpec):
            self.graph.add_layer(Layer(prefix, spec.text, "unknown", spec.span, repeat=spec.repeat))
            self.note_unknown(spec.reason, spec.span)
        for key, child in spec.children():
            self.name_specs(child, f"{prefix}.{key}" if prefix else str(key))

    def name_of(self, spec: Spec) -> str:
        name = self.names.get(id(spec))
        if name is None:
            name = f"<unregistered {getattr(spec, 'kind', 'module')} line {spec.span.line}>#{next(self.unregistered)}"
            self.name_specs(spec, name)
        return name

    # ================================================================ classes
    def note_unknown(self, reason: str, span) -> None:
        """Record an unknown on the graph, and in every instantiation being captured."""
        self.graph.add_unknown(reason, span)
        for log in self.unknown_logs:
            log.append((reason, span))

    def instantiate(self, cls: ast.ClassDef, args, kwargs, span: Span, frame: Frame, root=False) -> BlockSpec:
        if frame.depth > MAX_DEPTH:
            raise RecursionError
        key = None if root else _instance_key(cls, args, kwargs, self.repeat_ctx)
        cache = self.index.instances
        if key is not None and key in cache:
            # the same class with the same arguments: reuse the structure interpreted for an
            # earlier model of the file (a fresh copy: callers initialize and rename it)
            template, instantiated, unknowns = cache[key]
            self.instantiated |= instantiated
            for reason, where in unknowns:
                self.note_unknown(reason, where)
            return _clone(template, {})
        if not root:
            self.instantiated.add(cls.name)
        before = set(self.instantiated)
        log: list = []
        self.unknown_logs.append(log)
        try:
            block = BlockSpec(cls, span, torch_base=self.index.module_classes.get(cls.name))
            if block.torch_base in ("Sequential", "ModuleList", "ModuleDict"):
                block.seq = SeqSpec(block.torch_base, span)
            init = self.index.method(cls, "__init__")
            if init is not None:
                self.call_function(init, [block, *args], kwargs, frame, self_block=block, cls=cls, root=root)
        finally:
            self.unknown_logs.pop()
        if key is not None:
            cache[key] = (_clone(block, {}), frozenset(self.instantiated - before) | {cls.name}, tuple(log))
        if any(isinstance(m, LeafSpec) and m.category == "recurrent" for _, m in self.all_modules(block, "")):
            self.index.recurrent_classes.add(cls.name)
        return block

    def _owner_class(self, func) -> ast.ClassDef | None:
        return self.index.owner_of.get(id(func))

    # ================================================================ functions
    def call_function(self, func, args, kwargs, caller: Frame, self_block=None, cls=None, root=False):
        frame = Frame(self_block, cls, caller.depth + 1, func)
        if frame.depth > MAX_DEPTH:
            raise RecursionError
        if isinstance(func, ast.Lambda):
            self.bind(func.args, args, kwargs, frame, root)
            return self.eval(func.body, frame)
        self.bind(func.args, args, kwargs, frame, root)
        try:
            self.exec_body(func.body, frame)
        except _Return as r:
            return r.value
        return None

    def bind(self, a: ast.arguments, args, kwargs, frame: Frame, root: bool) -> None:
        params = [*a.posonlyargs, *a.args]
        defaults = [None] * (len(params) - len(a.defaults)) + list(a.defaults)
        args = list(args)
        for i, (p, d) in enumerate(zip(params, defaults)):
            if i < len(args):
                frame.locals[p.arg] = args[i]
            elif p.arg in kwargs:
                frame.locals[p.arg] = kwargs[p.arg]
            elif d is not None:
                value = self.eval(d, Frame(depth=frame.depth))
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    frame.prov[p.arg] = (Provenance(p.arg, value, d.lineno),)
                frame.locals[p.arg] = value
            else:
                frame.locals[p.arg] = UNKNOWN
                if root and i > 0:
                    self.note_unknown(f"constructor argument `{p.arg}` has no default", Span.of(p))
        for p, d in zip(a.kwonlyargs, a.kw_defaults):
            if p.arg in kwargs:
                frame.locals[p.arg] = kwargs[p.arg]
            elif d is not None:
                frame.locals[p.arg] = self.eval(d, Frame(depth=frame.depth))
            else:
                frame.locals[p.arg] = UNKNOWN
        if a.vararg:
            frame.locals[a.vararg.arg] = tuple(args[len(params):])
        if a.kwarg:
            frame.locals[a.kwarg.arg] = {k: v for k, v in kwargs.items() if k not in frame.locals}

    # ================================================================ statements
    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Budget

    def exec_body(self, body, frame: Frame) -> None:
        for stmt in body:
            self.exec_stmt(stmt, frame)

    def exec_stmt(self, stmt, frame: Frame) -> None:
        self.tick()
        t = type(stmt)
        if t is ast.Assign:
            mark = len(self.prov)
            value = self.eval(stmt.value, frame)
            provs = tuple(self.prov[mark:])
            for target in stmt.targets:
                self.assign(target, value, frame, stmt, provs)
        elif t is ast.AnnAssign:
            if stmt.value is not None:
                self.assign(stmt.target, self.eval(stmt.value, frame), frame, stmt)
        elif t is ast.AugAssign:
            self.exec_augassign(stmt, frame)
        elif t is ast.Expr:
            self.eval(stmt.value, frame)
        elif t is ast.Return:
            raise _Return(self.eval(stmt.value, frame) if stmt.value is not None else None)
        elif t is ast.For or t is ast.AsyncFor:
            self.exec_for(stmt, frame)
        elif t is ast.While:
            self.exec_body(stmt.body, frame)
        elif t is ast.If:
            self.exec_if(stmt, frame)
        elif t is ast.With or t is ast.AsyncWith:
            for item in stmt.items:
                value = self.eval(item.context_expr, frame)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, value, frame, stmt)
            self.exec_body(stmt.body, frame)
        elif t is ast.Try or t.__name__ == "TryStar":
            self.exec_body(stmt.body, frame)
            self.exec_body(stmt.orelse, frame)
            self.exec_body(stmt.finalbody, frame)
        elif t is ast.FunctionDef or t is ast.AsyncFunctionDef:
            frame.locals[stmt.name] = FuncRef(stmt)
        elif t is ast.ClassDef:
            frame.locals[stmt.name] = UNKNOWN
        # Pass, Break, Continue, Raise, Assert, Delete, Global, Import: nothing to model

    def exec_if(self, stmt: ast.If, frame: Frame) -> None:
        test = self.truth(self.eval(stmt.test, frame))
        if test is True:
            self.exec_body(stmt.body, frame)
        elif test is False:
            self.exec_body(stmt.orelse, frame)
        else:
            # Both branches may run: explore both, in order, and keep what each defines.
            self.exec_body(stmt.body, frame)
            self.exec_body(stmt.orelse, frame)

    def truth(self, value):
        if value is UNKNOWN:
            return None
        if isinstance(value, (Flow, Spec, ClassRef, FuncRef, PartialRef, ParamRef, Iterated)):
            return True
        try:
            return bool(value)
        except Exception:
            return None

    def exec_for(self, stmt, frame: Frame) -> None:
        mark = len(self.prov)
        iterable = self.eval(stmt.iter, frame)
        loop_prov = tuple(self.prov[mark:])
        items = self.iterate(iterable)
        if items is None:
            self.note_unknown(f"loop count not resolved: `{self.text(stmt.iter)[:60]}`", _span(stmt))
            self.assign(stmt.target, UNKNOWN if not isinstance(iterable, Flow) else iterable, frame, stmt)
            self.exec_body(stmt.body, frame)
            return
        if len(items) > MAX_UNROLL:
            self.note_unknown(f"loop of {len(items)} iterations unrolled only {MAX_UNROLL} times", _span(stmt))
            items = items[:MAX_UNROLL]
        saved = self.repeat_ctx
        if loop_prov:
            self.repeat_ctx = saved + loop_prov
        try:
            for item in items:
                self.assign(stmt.target, item, frame, stmt)
                self.exec_body(stmt.body, frame)
        finally:
            self.repeat_ctx = saved
        self.exec_body(stmt.orelse, frame)

    repeat_ctx: tuple = ()

    def iterate(self, value):
        """Concrete items of an iterable, or None when they cannot be known."""
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, range):
            return list(value) if len(value) <= 100_000 else None
        if isinstance(value, dict):
            return list(value.keys())
        if isinstance(value, str):
            return list(value)
        if isinstance(value, SeqSpec):
            return [v for _, v in value.items] if value.kind != "ModuleDict" else [k for k, _ in value.items]
        if isinstance(value, BlockSpec) and value.seq is not None:
            return self.iterate(value.seq)
        if isinstance(value, Iterated):
            return self.iterated_items(value)
        return None

    def iterated_items(self, it: Iterated):
        owner = it.owner
        if it.kind in ("modules", "named_modules"):
            mods = self.all_modules(owner, "")
            if it.kind == "modules":
                return [m for _, m in mods]
            return [(n, m) for n, m in mods]
        if it.kind in ("children", "named_children"):
            kids = owner.children() if isinstance(owner, Spec) else []
            return [m for _, m in kids] if it.kind == "children" else [(k, m) for k, m in kids]
        if it.kind in ("parameters", "named_parameters"):
            params = []
            for name, m in self.all_modules(owner, ""):
                for pname in self.param_names(m):
                    params.append((f"{name}.{pname}" if name else pname, ParamRef(m, pname)))
            return [p for _, p in params] if it.kind == "parameters" else params
        if it.kind == "items":
            return [(k, v) for k, v in owner.items] if isinstance(owner, SeqSpec) else list(owner.items())
        if it.kind == "values":
            return [v for _, v in owner.items] if isinstance(owner, SeqSpec) else list(owner.values())
        if it.kind == "keys":
            return [k for k, _ in owner.items] if isinstance(owner, SeqSpec) else list(owner.keys())
        return None

    def all_modules(self, spec, prefix: str, seen=None, postorder=False, params=False):
        """``named_modules()`` order (pre-order); ``postorder`` is ``Module.apply``'s order.

        ``params`` also yields raw ``nn.Parameter`` specs.
        """
        seen = set() if seen is None else seen
        if not isinstance(spec, Spec) or id(spec) in seen or (isinstance(spec, ParamSpec) and not params):
            return []
        seen.add(id(spec))
        out = []
        for key, child in spec.children():
            out.extend(self.all_modules(child, f"{prefix}.{key}" if prefix else str(key), seen, postorder, params))
        return out + [(prefix, spec)] if postorder else [(prefix, spec)] + out

    def param_names(self, spec) -> list[str]:
        if isinstance(spec, BlockSpec):
            return [k for k, v in spec.attrs.items() if isinstance(v, ParamSpec)]
        if isinstance(spec, LeafSpec):
            if spec.category in ("weighted", "norm"):
                names = ["weight"]
                if spec.params.get("bias", True) is not False:
                    names.append("bias")
                return names
            if spec.category == "recurrent":
                return ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        return []

    def exec_augassign(self, stmt: ast.AugAssign, frame: Frame) -> None:
        target = stmt.target
        current = self.eval(target, frame)
        value = self.eval(stmt.value, frame)
        if isinstance(current, list) and isinstance(stmt.op, ast.Add):
            items = self.iterate(value)
            if items is None:
                current.append(UnknownSpec(self.text(stmt.value)[:60], _span(stmt.value), "list extended by an unresolved value"))
            else:
                current.extend(self.tag_repeat(items))
            return
        if isinstance(current, SeqSpec) and isinstance(stmt.op, ast.Add):
            items = self.iterate(value) or []
            for it in self.tag_repeat(items):
                current.items.append([str(len(current.items)), it])
            return
        if isinstance(current, ParamRef) and isinstance(stmt.op, (ast.Mult, ast.Div)) and _number(value) and value != 0:
            self.scale_init(current, float(value) if isinstance(stmt.op, ast.Mult) else 1.0 / float(value), stmt)
            return
        if isinstance(current, Flow) or isinstance(value, Flow):
            merged = self.binop_flow(stmt.op, current, value, stmt)
            self.assign(target, merged, frame, stmt)
            return
        result = self.fold(stmt.op, current, value)
        self.assign(target, result, frame, stmt)

    def tag_repeat(self, items):
        if self.repeat_ctx:
            for it in items:
                if isinstance(it, (LeafSpec, BlockSpec, ParamSpec, UnknownSpec)) and not it.repeat:
                    it.repeat = self.repeat_ctx
        return items

    # ------------------------------------------------------------ assignment
    def assign(self, target, value, frame: Frame, stmt, provs=()) -> None:
        t = type(target)
        if t is ast.Name:
            frame.locals[target.id] = value
            if provs and isinstance(value, (int, float)):
                frame.prov[target.id] = provs
            else:
                frame.prov.pop(target.id, None)
        elif t is ast.Attribute:
            owner = self.eval(target.value, frame)
            if isinstance(owner, BlockSpec):
                self.set_attr(owner, target.attr, value, stmt)
                if provs and isinstance(value, (int, float)):
                    owner.prov[target.attr] = provs
            elif isinstance(owner, ParamRef) and target.attr == "data":
                pass
            elif isinstance(owner, LeafSpec) and isinstance(value, ParamSpec):
                owner.inits[target.attr] = value.inits.get("weight")
        elif t is ast.Subscript:
            owner = self.eval(target.value, frame)
            key = self.eval(target.slice, frame)
            if isinstance(owner, SeqSpec) and isinstance(value, Spec) and _is_known(key):
                existing = owner.get(key)
                if existing is not None:
                    for item in owner.items:
                        if item[0] == str(key):
                            item[1] = value
                else:
                    owner.items.append([str(key), value])
            elif isinstance(owner, (list, dict)) and _is_known(key):
                try:
                    owner[key] = value
                except Exception:
                    pass
        elif t is ast.Tuple or t is ast.List:
            elts = target.elts
            if isinstance(value, (tuple, list)) and len(value) == len(elts) and not any(isinstance(e, ast.Starred) for e in elts):
                for e, v in zip(elts, value):
                    self.assign(e, v, frame, stmt)
            else:
                spread = value if isinstance(value, Flow) else UNKNOWN
                for e in elts:
                    self.assign(e.value if isinstance(e, ast.Starred) else e, spread, frame, stmt)
        elif t is ast.Starred:
            self.assign(target.value, value, frame, stmt)

    def set_attr(self, block: BlockSpec, name: str, value, stmt) -> None:
        if isinstance(value, list) and value and all(isinstance(v, Spec) for v in value):
            value = list(value)  # a plain list of modules is not registered by nn.Module
        if isinstance(value, Spec):
            self.tag_repeat([value])
            block.attrs.pop(name, None)
            block.attrs[name] = value
        else:
            block.values[name] = value

    # ================================================================ expressions
    def eval(self, node, frame: Frame):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Budget
        method = _EVAL_DISPATCH.get(type(node))
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
        if name in self.index.classes:
            return ClassRef(name, self.index.classes[name])
        if name in self.index.functions:
            return FuncRef(self.index.functions[name])
        if name in self.index.imports:
            return ClassRef(self.index.imports[name])
        if name in self.index.constants:
            return self.module_constant(name)
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        return UNKNOWN

    def module_constant(self, name: str):
        stmt = self.index.constants[name]
        cache = self.__dict__.setdefault("_const_cache", {})
        if name in cache:
            value = cache[name]
        else:
            cache[name] = UNKNOWN  # guards self-reference
            value = self.eval(stmt.value, Frame(depth=0))
            cache[name] = value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.prov.append(Provenance(name, value, stmt.lineno))
        return value

    def eval_Attribute(self, node, frame):
        # torch.nn.Linear and friends resolve by name first
        q = self.index.qualname(node)
        if q is not None and not (isinstance(node.value, ast.Name) and node.value.id in frame.locals):
            return ClassRef(q)
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
            if attr in _MODULE_METHODS or attr in ("append", "extend", "insert", "items", "keys", "values", "add_module", "update"):
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
        if any(p is UNKNOWN for p in parts):
            return UNKNOWN
        return slice(*parts)

    def eval_Tuple(self, node, frame):
        return tuple(self.eval_elts(node.elts, frame))

    def eval_List(self, node, frame):
        return list(self.eval_elts(node.elts, frame))

    def eval_Set(self, node, frame):
        return list(self.eval_elts(node.elts, frame))

    def eval_elts(self, elts, frame):
        out = []
        for e in elts:
            if isinstance(e, ast.Starred):
                v = self.eval(e.value, frame)
                items = self.iterate(v)
                if items is None:
                    out.append(v if isinstance(v, Flow) else UnknownSpec(self.text(e.value)[:60], _span(e), "unresolved *-expansion"))
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
            self.note_unknown(f"comprehension count not resolved: `{self.text(gen.iter)[:60]}`", _span(gen.iter))
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
        hit = formulas.match(node, self.index.qualname)
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
        if isinstance(left, Flow) or isinstance(right, Flow) or isinstance(left, ParamSpec) or isinstance(right, ParamSpec) or isinstance(left, ParamRef) or isinstance(right, ParamRef):
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
            return [self.copy_spec(x) if i else x for i in range(right) for x in left]
        return self.fold(node.op, left, right)

    def fold(self, op, left, right):
        fn = _BINOPS.get(type(op))
        if fn is None or not _is_known(left) or not _is_known(right):
            return UNKNOWN
        if not isinstance(left, (int, float, str, tuple)) or not isinstance(right, (int, float, str, tuple)):
            return UNKNOWN
        try:
            if isinstance(op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
                return UNKNOWN
            result = fn(left, right)
        except Exception:
            return UNKNOWN
        if isinstance(result, str) and len(result) > 10_000:
            return UNKNOWN
        return result

    def copy_spec(self, spec):
        # ``[block] * n`` repeats the *same* module object n times
        return spec

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
            if isinstance(op, (ast.Is, ast.IsNot)) and (left is None or right is None) and _is_known(left) and _is_known(right):
                ok = (left is right) if isinstance(op, ast.Is) else (left is not right)
            elif not _is_known(left) or not _is_known(right) or isinstance(left, (Flow, Spec)) or isinstance(right, (Flow, Spec)):
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
            self.note_unknown(f"condition not resolved: `{self.text(node.test)[:60]}`", _span(node))
            n = self.graph.add_node(Node(self.next_node(), "merge", merge="select", span=_span(node)), a.producers | b.producers)
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
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name) and func.value.func.id == "super":
            return self.call_super(node, func.attr, frame)
        if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) in formulas.CALLS:
            out = self.formula(node, frame)
            if out is not None:
                return out
        callee = self.eval(func, frame)
        args, kwargs = self.eval_args(node, frame)
        if isinstance(func, ast.Attribute) and func.attr == "verify" and args == [None] and not kwargs:
            # torchvision factories: ``weights = ResNet50_Weights.verify(weights)`` keeps None
            return None
        return self.call(callee, args, kwargs, node, frame)

    def eval_args(self, node, frame):
        args = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                v = self.eval(a.value, frame)
                items = self.iterate(v)
                if items is None:
                    args.append(v if isinstance(v, Flow) else UnknownSpec(self.text(a.value)[:60], _span(a), "unresolved *args"))
                else:
                    args.extend(items)
            else:
                args.append(self.eval(a, frame))
        kwargs = {}
        for k in node.keywords:
            v = self.eval(k.value, frame)
            if k.arg is None:
                if isinstance(v, dict):
                    kwargs.update({str(kk): vv for kk, vv in v.items()})
            else:
                kwargs[k.arg] = v
        return args, kwargs

    def call_super(self, node, attr, frame):
        block = frame.self_block
        args, kwargs = self.eval_args(node, frame)
        if block is None:
            return UNKNOWN
        cls = frame.cls or block.cls
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in self.index.classes:
                method = self.index.method(self.index.classes[base.id], attr)
                if method is not None:
                    return self.call_function(method, [block, *args], kwargs, frame, self_block=block, cls=self.index.classes[base.id])
                return None
        if attr == "__init__" and block.seq is not None:
            self.fill_container(block.seq, args, kwargs, node)
            return None
        if attr == "forward" and block.seq is not None:
            return self.apply_spec(block.seq, args, kwargs, node, frame)
        return None

    def call(self, callee, args, kwargs, node, frame):
        if isinstance(callee, ClassRef):
            return self.call_qualname(callee, args, kwargs, node, frame)
        if isinstance(callee, FuncRef):
            if callee.qualname:
                return self.call_qualname(ClassRef(callee.qualname), args, kwargs, node, frame)
            owner = callee.bound
            fn = callee.node
            if owner is not None and isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                cls = self._owner_class(fn)
                decorators = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
                if "staticmethod" in decorators:
                    return self.call_function(fn, args, kwargs, frame)
                if "classmethod" in decorators:
                    return self.call_function(fn, [UNKNOWN, *args], kwargs, frame)
                return self.call_function(fn, [owner, *args], kwargs, frame, self_block=owner, cls=cls)
            return self.call_function(fn, args, kwargs, frame, self_block=frame.self_block if isinstance(fn, ast.Lambda) else None)
        if isinstance(callee, PartialRef):
            return self.call(callee.target, [*callee.args, *args], {**dict(callee.kwargs), **kwargs}, node, frame)
        if isinstance(callee, _BoundMethod):
            return self.call_method(callee, args, kwargs, node, frame)
        if isinstance(callee, Spec):
            return self.apply_spec(callee, args, kwargs, node, frame)
        if callable(callee) and getattr(callee, "_gradlint_builtin", False):
            return callee(self, args, kwargs, node, frame)
        # an unresolved callee: tensors flow through, modules stay unknown
        flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
        if flows:
            return self.unknown_node(flows, node, f"call to unresolved `{self.text(node.func)[:60]}` in forward")
        if callee is UNKNOWN and frame.func is not None and frame.self_block is not None and isinstance(node.func, (ast.Name, ast.Attribute)):
            text = self.text(node.func)[:60]
            return UnknownSpec(text, _span(node), f"`{text}(...)` not resolved")
        return UNKNOWN

    def unknown_node(self, flows, node, reason):
        producers = frozenset().union(*(f.producers for f in flows))
        g = self.graph
        n = g.add_node(Node(self.next_node(), "unknown", span=_span(node)), producers)
        self.note_unknown(reason, _span(node))
        return Flow(frozenset({n.id}))

    def next_node(self) -> int:
        nid = next(self.node_ids)
        if nid > MAX_NODES:
            raise _Budget
        return nid

    def call_qualname(self, ref: ClassRef, args, kwargs, node, frame):
        q = ref.qualname
        if ref.local is not None:
            if ref.local.name in self.index.module_classes:
                return self.instantiate(ref.local, args, kwargs, _span(node), frame)
            return UNKNOWN
        kind = _torch_kind(q)
        if kind is not None:
            return self.construct(kind, args, kwargs, node, frame)
        if q in catalog.ACTIVATION_FUNCTIONS:
            return self.functional_activation(catalog.ACTIVATION_FUNCTIONS[q], q, args, node)
        if q in ("collections.OrderedDict", "OrderedDict", "dict"):
            return self.make_dict(args, kwargs)
        if q in catalog.MERGE_FUNCTIONS:
            return self.merge_call(catalog.MERGE_FUNCTIONS[q], args, kwargs, node)
        shape_op = catalog.FUNCTIONAL_SHAPE.get(q)
        if shape_op is not None and args and isinstance(args[0], Flow):
            kind, names = shape_op
            params = dict(zip(names, args[1:]))
            params.update({k: v for k, v in kwargs.items() if k in names})
            return self.functional_shape(kind, params, args[0], node, q)
        if q in catalog.FUNCTIONAL_NORMS:
            return self.functional_layer(q, "norm", args, node)
        if q in catalog.FUNCTIONAL_WEIGHTED:
            return self.functional_weighted(q, args, kwargs, node)
        if q == "torch.nn.init.calculate_gain":
            return catalog.calculate_gain(*args[:2], **kwargs) if args and isinstance(args[0], str) else UNKNOWN
        if q.startswith(("torch.nn.init.",)):
            return self.init_call(q.rsplit(".", 1)[-1], args, kwargs, node)
        if q in catalog.TENSOR_FACTORIES:
            return _Factory(catalog.TENSOR_FACTORIES[q], args, kwargs, node)
        if q == "typing.cast" and len(args) == 2:
            return args[1]
        if q == "torch.no_grad" or q == "torch.enable_grad":
            return None
        if q.endswith(".named_apply") and len(args) >= 2 and isinstance(args[1], Spec):
            # timm: named_apply(fn, module, name="", depth_first=True, include_root=False)
            include_root = kwargs.get("include_root", args[3] if len(args) > 3 else False) is True
            self.apply_to_modules(
                args[1], lambda m, mname: self.call(args[0], [], {"module": m, "name": mname}, node, frame),
                by_name=True, include_root=include_root,
            )
            return None
        if q in ("functools.partial",) and args:
            return PartialRef(args[0], tuple(args[1:]), tuple(kwargs.items()))
        if q == "torch.nn.functional" or q.startswith("torch.nn.utils."):
            return UNKNOWN
        flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
        if flows:
            # torch.flatten, torch.transpose, x.view, ...: shape-only ops let the value through
            if q.startswith("torch.") and not q.startswith("torch.nn."):
                return Flow(frozenset().union(*(f.producers for f in flows)))
            return self.unknown_node(flows, node, f"call to unresolved `{q}` in forward")
        last = q.rsplit(".", 1)[-1]
        if frame.self_block is not None and last[:1].isupper() and not q.startswith("torch."):
            # a class imported from another module (``from .layers import Mystery``)
            return UnknownSpec(last, _span(node), f"`{last}` is defined in another module ({q.lstrip('.')})")
        return UNKNOWN

    def make_dict(self, args, kwargs):
        out = {}
        if args:
            src = args[0]
            if isinstance(src, dict):
                out.update(src)
            elif isinstance(src, (list, tuple)):
                for pair in src:
                    if isinstance(pair, (list, tuple)) and len(pair) == 2 and _is_known(pair[0]):
                        out[pair[0]] = pair[1]
        out.update(kwargs)
        return out

    # ------------------------------------------------------------ constructing layers
    def construct(self, kind: str, args, kwargs, node, frame):
        span = _span(node)
        if kind in ("Sequential", "ModuleList", "ModuleDict"):
            spec = SeqSpec(kind, span)
            self.fill_container(spec, args, kwargs, node)
            return spec
        if kind == "Parameter":
            return self.make_parameter(args, kwargs, node)
        if kind in ("ParameterList", "ParameterDict"):
            return UnknownSpec(kind, span, f"nn.{kind} contents not modelled")
        if kind == "Module":
            return UnknownSpec(kind, span, "bare nn.Module()")
        category = catalog.layer_category(kind)
        params = self.layer_params(kind, args, kwargs)
        activation = catalog.ACTIVATION_MODULES.get(kind)
        if kind in ("RNN", "RNNCell"):
            nl = params.get("nonlinearity", "tanh")
            params["nonlinearity"] = nl if _is_known(nl) else "unknown"
        spec = LeafSpec(kind, category, span, activation, params)
        spec.repeat = self.repeat_ctx
        return spec

    _POSITIONAL = {
        "Linear": ("in_features", "out_features", "bias"),
        "Bilinear": ("in1_features", "in2_features", "out_features", "bias"),
        "Embedding": ("num_embeddings", "embedding_dim", "padding_idx"),
        "EmbeddingBag": ("num_embeddings", "embedding_dim"),
        "RNN": ("input_size", "hidden_size", "num_layers"),
        "LSTM": ("input_size", "hidden_size", "num_layers"),
        "GRU": ("input_size", "hidden_size", "num_layers"),
        "RNNCell": ("input_size", "hidden_size", "bias", "nonlinearity"),
        "LSTMCell": ("input_size", "hidden_size", "bias"),
        "GRUCell": ("input_size", "hidden_size", "bias"),
        "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
        "GroupNorm": ("num_groups", "num_channels", "eps", "affine"),
        "MultiheadAttention": ("embed_dim", "num_heads", "dropout", "bias"),
        "LeakyReLU": ("negative_slope",),
        "ELU": ("alpha",),
        "Hardtanh": ("min_val", "max_val"),
        "Softmax": ("dim",),
        "Dropout": ("p",), "Dropout1d": ("p",), "Dropout2d": ("p",), "Dropout3d": ("p",), "AlphaDropout": ("p",),
        **{f"MaxPool{d}d": ("kernel_size", "stride", "padding", "dilation") for d in (1, 2, 3)},
        **{f"AvgPool{d}d": ("kernel_size", "stride", "padding") for d in (1, 2, 3)},
        **{f"Adaptive{k}Pool{d}d": ("output_size",) for k in ("Avg", "Max") for d in (1, 2, 3)},
        "Upsample": ("size", "scale_factor", "mode"),
        "Flatten": ("start_dim", "end_dim"),
    }

    def layer_params(self, kind, args, kwargs) -> dict:
        if kind.startswith(("Conv", "LazyConv", "ConvTranspose")):
            names = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")
        elif "BatchNorm" in kind or "InstanceNorm" in kind:
            names = ("num_features", "eps", "momentum", "affine")
        else:
            names = self._POSITIONAL.get(kind, ())
        params = {}
        for name, value in zip(names, args):
            params[name] = value
        for k, v in kwargs.items():
            params[k] = v
        clean = {}
        for k, v in params.items():
            if isinstance(v, (int, float, str, bool)) or v is None:
                clean[k] = v
            elif isinstance(v, tuple) and all(isinstance(x, (int, float)) for x in v):
                clean[k] = v
            else:
                clean[k] = UNKNOWN
        return clean

    def fill_container(self, spec: SeqSpec, args, kwargs, node) -> None:
        items = []
        if spec.kind == "ModuleDict" or (len(args) == 1 and isinstance(args[0], dict)):
            src = args[0] if args else {}
            if isinstance(src, (list, tuple)):
                src = self.make_dict([src], {})
            if isinstance(src, dict):
                items = [[str(k), v] for k, v in src.items()]
            elif args:
                items = [["?", UnknownSpec(self.text(node)[:60], _span(node), "container contents not resolved")]]
        elif spec.kind == "ModuleList":
            if args:
                src = self.iterate(args[0])
                if src is None:
                    src = [args[0]] if isinstance(args[0], Spec) else [UnknownSpec(self.text(node.args[0])[:60] if node.args else "?", _span(node), "ModuleList contents not resolved")]
                items = [[str(i), v] for i, v in enumerate(src)]
        else:
            items = [[str(i), v] for i, v in enumerate(args)]
        for k, v in items:
            if isinstance(v, list):
                v = UnknownSpec("list", _span(node), "a plain list inside a container")
            elif not isinstance(v, Spec):
                v = UnknownSpec(repr(v)[:40] if v is not UNKNOWN else "?", _span(node), "container item is not a resolved module")
            spec.items.append([k, v])

    def make_parameter(self, args, kwargs, node):
        span = _span(node)
        data = args[0] if args else kwargs.get("data", UNKNOWN)
        spec = ParamSpec(span)
        spec.repeat = self.repeat_ctx
        if isinstance(data, _Factory):
            spec.shape = data.shape()
            spec.inits["weight"] = data.init(self.text(node))
        elif isinstance(data, _Scaled) and isinstance(data.base, _Factory):
            spec.shape = data.base.shape()
            spec.inits["weight"] = data.init(self.text(node))
        return spec

    # ------------------------------------------------------------ init
    def init_call(self, fname: str, args, kwargs, node):
        base = fname[:-1] if fname.endswith("_") else fname
        scheme = catalog.INIT_FUNCTIONS.get(base)
        if scheme is None or not args:
            return None
        target = args[0]
        init = self.make_init(scheme, args[1:], kwargs, node, via="inline")
        self.apply_init(target, init, node)
        return target

    def make_init(self, scheme, args, kwargs, node, via) -> Init:
        def num(v):
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        value = std = bound = gain = mode = mean = None
        if scheme == "constant":
            value = num(args[0] if args else kwargs.get("val"))
        elif scheme == "zeros":
            value = 0.0
        elif scheme == "ones":
            value = 1.0
        elif scheme in ("normal", "trunc_normal"):
            std = num(args[1] if len(args) > 1 else kwargs.get("std", 1.0))
            mean = num(args[0] if args else kwargs.get("mean", 0.0))
        elif scheme == "uniform":
            a = num(args[0] if args else kwargs.get("a", 0.0))
            b = num(args[1] if len(args) > 1 else kwargs.get("b", 1.0))
            if a is not None and b is not None:
                bound = max(abs(a), abs(b))
                mean = (a + b) / 2
        elif scheme.startswith("xavier") or scheme == "orthogonal":
            gain = num(args[0] if args else kwargs.get("gain", 1.0))
            if gain is None:
                gain = math.nan  # given, but not resolved: the scale is unknown, not 1
        elif scheme.startswith("kaiming"):
            kwargs = dict(kwargs)
            nl = args[2] if len(args) > 2 else kwargs.get("nonlinearity", "leaky_relu")
            a_given = args[0] if args else kwargs.get("a", 0.0)
            a = num(a_given)
            mode = args[1] if len(args) > 1 else kwargs.get("mode", "fan_in")
            mode = mode if mode in ("fan_in", "fan_out") else None
            if a is None or not isinstance(nl, str):
                gain = math.nan  # an ``a`` or nonlinearity given but not resolved: the scale is unknown
            elif nl == "leaky_relu":
                gain = catalog.calculate_gain("leaky_relu", a)
            else:
                gain = catalog.calculate_gain(nl)
                gain = math.nan if gain is None else gain
        text = self.text(node)
        callee = target = None
        if isinstance(node, ast.Call):
            if via == "tensor-method" and isinstance(node.func, ast.Attribute):
                target = self.text(node.func.value)
            else:
                callee = self.text(node.func)
                target = self.text(node.args[0]) if node.args else None
        return Init(scheme, text[:120], _span(node), via, value, std, bound, gain, mode, callee, target, mean)

    def scale_init(self, ref, factor: float, node) -> None:
        """``w.mul_(s)``, ``w *= s``, ``w.div_(s)`` after an initializer (or PyTorch's default)."""
        owner = ref.owner
        current = owner.inits.get(ref.name)
        if current is None:
            current = Init("default", f"PyTorch's default init of {ref.name}", None, "default")
        owner.inits[ref.name] = dataclasses.replace(current, scale=current.scale * factor,
                                                    text=f"{current.text} then {self.text(node)}"[:120] if current.span else self.text(node)[:120],
                                                    span=current.span or _span(node))

    def apply_init(self, target, init: Init, node) -> None:
        via = self.init_via
        if via:
            init = dataclasses.replace(init, via=via)
        if isinstance(target, ParamRef):
            target.owner.inits[target.name] = init
        elif isinstance(target, ParamSpec):
            target.inits["weight"] = init
        elif target is UNKNOWN:
            self.note_unknown(f"initializer target not resolved: `{init.text[:60]}`", _span(node))

    init_via: str | None = None

    # ------------------------------------------------------------ methods
    def call_method(self, bm, args, kwargs, node, frame):
        owner, name = bm.owner, bm.name
        if isinstance(owner, list):
            if name == "append" and args:
                owner.extend(self.tag_repeat([args[0]]))
            elif name == "extend" and args:
                items = self.iterate(args[0])
                owner.extend(self.tag_repeat(items) if items is not None else [UnknownSpec("?", _span(node), "list extended by an unresolved value")])
            elif name == "insert" and len(args) == 2 and isinstance(args[0], int):
                owner.insert(args[0], args[1])
            elif name == "pop":
                return owner.pop() if owner else UNKNOWN
            elif name in ("index", "count"):
                return UNKNOWN
            return None
        if isinstance(owner, dict):
            if name in ("items", "keys", "values"):
                return list(getattr(owner, name)())
            if name == "get" and args and _is_known(args[0]):
                try:
                    return owner.get(args[0], args[1] if len(args) > 1 else None)
                except TypeError:
                    return UNKNOWN
            if name == "update" and args and isinstance(args[0], dict):
                owner.update(args[0])
            if name == "pop" and args and _is_known(args[0]):
                try:
                    return owner.pop(args[0], args[1] if len(args) > 1 else None)
                except TypeError:
                    return UNKNOWN
            return UNKNOWN
        if isinstance(owner, str):
            if not all(_is_known(a) and isinstance(a, (str, int, tuple)) for a in args):
                return UNKNOWN
            try:
                return getattr(owner, name)(*args)
            except Exception:
                return UNKNOWN
        if isinstance(owner, SeqSpec):
            if name == "append" and args and isinstance(args[0], Spec):
                owner.items.append([str(len(owner.items)), self.tag_repeat([args[0]])[0]])
            elif name == "extend" and args:
                items = self.iterate(args[0])
                if items is None:
                    items = [UnknownSpec("?", _span(node), "a container extended by an unresolved value")]
                for it in self.tag_repeat(items):
                    if not isinstance(it, Spec):  # ``make_layer(cfg)`` gradlint cannot resolve
                        it = UnknownSpec("?", _span(node), "a container element gradlint could not resolve")
                    owner.items.append([str(len(owner.items)), it])
            elif name in ("add_module", "register_module", "update") and args:
                if name == "update" and isinstance(args[0], dict):
                    for k, v in args[0].items():
                        owner.items.append([str(k), v])
                elif len(args) == 2 and _is_known(args[0]) and isinstance(args[1], Spec):
                    owner.items.append([str(args[0]), args[1]])
            elif name in ("items", "keys", "values"):
                return Iterated(name, owner)
            elif name in _MODULE_METHODS:
                return self.module_method(owner, name, args, kwargs, node, frame)
            return None
        if isinstance(owner, (BlockSpec, LeafSpec)):
            return self.module_method(owner, name, args, kwargs, node, frame)
        if isinstance(owner, ParamRef):
            if name in ("mul_", "div_") and len(args) == 1 and _number(args[0]) and args[0] != 0:
                self.scale_init(owner, float(args[0]) if name == "mul_" else 1.0 / float(args[0]), node)
                return owner
            if name == "copy_" and args and isinstance(args[0], (_Factory, _Scaled)):
                self.apply_init(owner, args[0].init(self.text(node)), node)  # ``w.copy_(torch.randn(...))``
                return owner
            if name in catalog.INIT_METHODS:
                scheme = catalog.INIT_METHODS[name]
                if scheme == "copy":
                    self.apply_init(owner, Init("copy", self.text(node)[:120], _span(node), "tensor-method"), node)
                else:
                    self.apply_init(owner, self.make_init(scheme, args, kwargs, node, "tensor-method"), node)
                return owner
            if name in ("dim", "ndimension"):
                return owner.ndim if owner.ndim is not None else UNKNOWN
            if name in ("size",):
                return UNKNOWN
            if name in ("requires_grad_", "detach", "clone", "t"):
                return owner
            return UNKNOWN
        if isinstance(owner, Flow):
            if name in catalog.ACTIVATION_METHODS:
                return self.functional_activation(catalog.ACTIVATION_METHODS[name], f"Tensor.{name}", [owner], node)
            if name in ("add", "add_") and args and isinstance(args[0], Flow):
                return self.merge_flows("add", [owner, args[0]], node)
            if name in ("mul", "mul_") and args and isinstance(args[0], Flow):
                return self.merge_flows("mul", [owner, args[0]], node)
            if name in ("matmul", "mm") and args and isinstance(args[0], (ParamRef, ParamSpec)):
                return self.binop_flow(ast.MatMult(), owner, args[0], node)
            if name in ("size", "dim", "numel", "item", "tolist"):
                return UNKNOWN
            if name == "chunk" and args and _number(args[0]) and isinstance(args[0], int) and 1 < args[0] <= 64:
                return self.split_flow(owner, args[0], node)  # ``x1, x2 = x.chunk(2, dim=1)``: disjoint parts
            if name in ("chunk", "split", "unbind"):
                return _FlowSeq(owner)
            if name == "flatten" and (not args or args[0] == 1):
                return self.functional_shape("Flatten", {}, owner, node, "Tensor.flatten")
            if name in ("view", "reshape") and len(args) == 2 and args[1] == -1:
                return self.functional_shape("Flatten", {}, owner, node, f"Tensor.{name}")
            if name in ("mean", "amax") and args and _spatial_dims(args[0]):
                kind = "AdaptiveAvgPool2d" if name == "mean" else "AdaptiveMaxPool2d"
                return self.functional_shape(kind, {"output_size": 1}, owner, node, f"Tensor.{name}")
            extra = [a for a in args if isinstance(a, Flow)]
            if extra:
                return Flow(owner.producers.union(*(e.producers for e in extra)))
            return owner
        return UNKNOWN

    def module_method(self, owner, name, args, kwargs, node, frame):
        if name in ("modules", "named_modules", "children", "named_children", "parameters", "named_parameters"):
            return Iterated(name, owner)
        if name == "apply" and args:
            self.apply_to_modules(owner, lambda m, mname: self.call(args[0], [m], {}, node, frame))
            return owner
        if name in ("add_module", "register_module") and len(args) == 2 and isinstance(owner, BlockSpec):
            if _is_known(args[0]):
                self.set_attr(owner, str(args[0]), args[1], node)
            return None
        if name == "register_parameter" and len(args) == 2 and isinstance(owner, BlockSpec):
            if _is_known(args[0]) and isinstance(args[1], ParamSpec):
                self.set_attr(owner, str(args[0]), args[1], node)
            return None
        if name == "post_init" and isinstance(owner, BlockSpec):
            # Hugging Face convention: PreTrainedModel.post_init() applies the class's
            # _init_weights to every submodule.
            init_fn = self.index.method(owner.cls, "_init_weights")
            if init_fn is not None:
                return self.module_method(owner, "apply", [FuncRef(init_fn, bound=owner)], {}, node, frame)
            return None
        if name in ("to", "cuda", "cpu", "float", "double", "half", "train", "eval", "requires_grad_"):
            return owner
        return None

    def apply_to_modules(self, owner, call_one, by_name=False, include_root=True) -> None:
        """``module.apply(fn)``: call ``fn`` on every submodule, children before parents.

        An init function treats equal layers alike (it dispatches on their type and
        arguments), so its effect on the first ``nn.Linear(768, 768)`` is replayed on the others instead of interpreting it
        hundreds of times. Named calls are not replayed: they may dispatch on the name.
        """
        saved = self.init_via
        self.init_via = "apply"
        memo: dict = {}
        try:
            for mname, m in self.all_modules(owner, "", postorder=True):
                if m is owner and not include_root:
                    continue
                key = None if by_name else self._apply_key(m)
                if key is not None and key in memo:
                    m.inits.update(memo[key])
                    continue
                before = dict(m.inits) if key is not None else None
                call_one(m, mname)
                if key is not None:
                    memo[key] = {k: v for k, v in m.inits.items() if before.get(k) is not v}
        finally:
            self.init_via = saved

    def _apply_key(self, m):
        if isinstance(m, LeafSpec):
            key = (m.kind, tuple(sorted(m.params.items())))
        else:
            return None
        try:
            hash(key)
        except TypeError:
            return None
        return key

    # ------------------------------------------------------------ forward: applying modules
    def apply_spec(self, spec, args, kwargs, node, frame):
        flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
        if isinstance(spec, BlockSpec):
            return self.run_block(spec, args, kwargs, frame, node)
        if isinstance(spec, SeqSpec):
            if spec.kind == "Sequential":
                value = args[0] if args else (flows[0] if flows else UNKNOWN)
                for _, child in spec.items:
                    value = self.apply_spec(child, [value], {}, node, frame)
                return value
            return self.unknown_node(flows, node, f"calling an nn.{spec.kind}") if flows else UNKNOWN
        if not flows:
            return UNKNOWN
        producers = frozenset().union(*(f.producers for f in flows))
        if isinstance(spec, (LeafSpec, ParamSpec)):
            name = self.name_of(spec)
            n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node) if node is not None else None), producers)
            return Flow(frozenset({n.id}))
        if isinstance(spec, UnknownSpec):
            name = self.name_of(spec)
            n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node) if node is not None else None), producers)
            return Flow(frozenset({n.id}))
        return UNKNOWN

    def run_block(self, block: BlockSpec, args, kwargs, frame: Frame, span=None):
        forward = self.index.method(block.cls, "forward")
        if forward is None:
            if block.seq is not None and block.seq.kind == "Sequential":
                return self.apply_spec(block.seq, args, kwargs, span, frame)
            flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
            if flows:
                return self.unknown_node(flows, span or block.cls, f"`{block.cls.name}` has no forward() in this file")
            return UNKNOWN
        owner_cls = self._owner_class(forward) or block.cls
        return self.call_function(forward, [block, *args], kwargs, frame, self_block=block, cls=owner_cls)

    def functional_layer(self, q, category, args, node):
        flows = [a for a in args if isinstance(a, Flow)]
        if not flows:
            return UNKNOWN
        name = self._functional_name(q, node, category, None)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), flows[0].producers)
        return Flow(frozenset({n.id}))

    def functional_shape(self, kind, params, flow, node, q):
        """``F.max_pool2d(x, 2)``, ``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``,
        ``x.mean((2, 3))``: the module they do the work of (``MaxPool2d``, ``Flatten``,
        ``AdaptiveAvgPool2d``), as a functional layer of that kind, with its arguments."""
        clean = {k: v for k, v in params.items() if isinstance(v, (int, float, tuple)) and not isinstance(v, bool)}
        name = self._functional_name(q, node, "other", None, kind=kind, params=clean)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), flow.producers)
        return Flow(frozenset({n.id}))

    def _functional_name(self, q, node, category, activation, kind=None, params=None):
        """The layer a functional call stands for, one per call site (``F.gelu@12:9``)."""
        key = (node.lineno, node.col_offset, q)
        name = self.func_layers.get(key)
        if name is None:
            short = q.replace("torch.nn.functional.", "F.")
            name = f"{short}@{node.lineno}:{node.col_offset + 1}"
            self.func_layers[key] = name
            self.graph.add_layer(Layer(name, kind or short, category, _span(node), activation, dict(params or {}),
                                       functional=True, repeat=self.repeat_ctx))
        return name

    def functional_activation(self, act, q, args, node):
        flows = [a for a in args if isinstance(a, Flow)]
        if not flows:
            return UNKNOWN
        name = self._functional_name(q, node, "activation", act)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), flows[0].producers)
        return Flow(frozenset({n.id}))

    def functional_weighted(self, q, args, kwargs, node):
        flows = [a for a in args if isinstance(a, Flow)]
        weights = [a for a in [*args, *kwargs.values()] if isinstance(a, (ParamRef, ParamSpec))]
        if not flows:
            return UNKNOWN
        producers = frozenset().union(*(f.producers for f in flows))
        if weights:
            w = weights[0]
            owner = w.owner if isinstance(w, ParamRef) else w
            name = self.name_of(owner)
        else:
            name = self._functional_name(q, node, "other", None)
        n = self.graph.add_node(Node(self.next_node(), "layer", layer=name, span=_span(node)), producers)
        return Flow(frozenset({n.id}))

    def split_flow(self, flow, parts: int, node):
        """A tensor cut into ``parts`` disjoint pieces: one ``split`` node per piece, each
        carrying its share, so that the gradient each piece sends back covers only its part."""
        pieces = []
        for _ in range(parts):
            n = self.graph.add_node(Node(self.next_node(), "merge", merge="split", span=_span(node), factor=1.0 / parts),
                                    flow.producers)
            pieces.append(Flow(frozenset({n.id})))
        return _PieceSeq(pieces, flow)

    def merge_call(self, kind, args, kwargs, node):
        if kind is None:
            flows = [a for a in args if isinstance(a, Flow)]
            return flows[0] if flows else UNKNOWN
        if kind == "cat" and args:
            items = self.iterate(args[0]) if not isinstance(args[0], Flow) else [args[0]]
            flows = [a for a in (items or []) if isinstance(a, Flow)]
            if isinstance(args[0], _FlowSeq):
                flows = [args[0].flow]
        else:
            flows = [a for a in args if isinstance(a, Flow)]
        if not flows:
            return UNKNOWN
        return self.merge_flows(kind, flows, node)

    def merge_flows(self, kind, flows, node):
        if len(flows) == 1:
            return flows[0]
        producers = [f.producers for f in flows]
        if all(p == producers[0] for p in producers) and kind != "add":
            return flows[0]
        n = self.graph.add_node(Node(self.next_node(), "merge", merge=kind, span=_span(node)), frozenset().union(*producers))
        return Flow(frozenset({n.id}))

    def _merge_flows(self, values):
        flows = [v for v in values if isinstance(v, Flow)]
        if not flows:
            return UNKNOWN
        return Flow(frozenset().union(*(f.producers for f in flows)))

    def binop_flow(self, op, left, right, node):
        if isinstance(op, ast.MatMult):
            for w, x in ((right, left), (left, right)):
                if isinstance(w, (ParamSpec, ParamRef)) and isinstance(x, Flow):
                    owner = w.owner if isinstance(w, ParamRef) else w
                    n = self.graph.add_node(Node(self.next_node(), "layer", layer=self.name_of(owner), span=_span(node)), x.producers)
                    return Flow(frozenset({n.id}))
        lf, rf = isinstance(left, Flow), isinstance(right, Flow)
        if lf and isinstance(op, ast.Pow) and right == 2 and not isinstance(right, bool):
            return self.functional_activation("square", "pow2", [left], node)  # ``x ** 2``
        if lf and rf:
            if isinstance(op, (ast.Add, ast.Sub)):
                return self.merge_flows("add", [left, right], node)
            if isinstance(op, (ast.Mult, ast.MatMult, ast.Div)):
                return self.merge_flows("mul", [left, right], node)
            return Flow(left.producers | right.producers)
        if (lf or rf) and isinstance(op, (ast.Mult, ast.Div)):
            flow, factor = (left, right) if lf else (right, left)
            # ``gamma * f(x)`` (LayerScale), ``0.1 * f(x)``, ``f(x) / sqrt(n)``: a scaled branch
            if isinstance(factor, (ParamSpec, ParamRef)):
                owner = factor.owner if isinstance(factor, ParamRef) else factor
                n = self.graph.add_node(Node(self.next_node(), "scale", layer=self.name_of(owner), span=_span(node)), flow.producers)
                return Flow(frozenset({n.id}))
            if isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor != 1:
                value = float(factor)
                if isinstance(op, ast.Div):
                    value = (1.0 / value if lf else None) if value else None  # ``c / f(x)`` is no scale
                n = self.graph.add_node(Node(self.next_node(), "scale", span=_span(node), factor=value), flow.producers)
                return Flow(frozenset({n.id}))
            if not isinstance(factor, (int, float)) or isinstance(factor, bool):
                # ``x * mask``, ``x / math.sqrt(d)`` with ``d`` unknown: a scale of unknown size,
                # not the identity
                n = self.graph.add_node(Node(self.next_node(), "scale", span=_span(node), factor=None), flow.producers)
                return Flow(frozenset({n.id}))
        if lf and isinstance(op, ast.Pow) and not rf:
            return self.unknown_node([left], node, "a power other than 2 (`x ** p`)")
        if lf:
            return left
        if rf:
            return right
        return UNKNOWN


def _spatial_dims(v) -> bool:
    """``(2, 3)``, ``[2, 3]``, ``(-2, -1)``: the spatial axes of an (N, C, H, W) tensor."""
    return isinstance(v, (tuple, list)) and len(v) >= 2 and all(isinstance(d, int) for d in v) and 0 not in v and 1 not in v


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
        new = copy.copy(value)
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
    {"post_init", "modules", "named_modules", "children", "named_children", "parameters", "named_parameters",
     "apply", "add_module", "register_module", "register_parameter", "to", "cuda", "cpu",
     "float", "double", "half", "train", "eval", "requires_grad_"}
)


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


def _inherits(self, cls, base, depth=0):
    if depth > 10:
        return False
    for b in cls.bases:
        if isinstance(b, ast.Name) and b.id in self.index.classes:
            c = self.index.classes[b.id]
            if c is base or _inherits(self, c, base, depth + 1):
                return True
    return False


Builder._inherits = _inherits


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
            return args[1] in ("weight", "bias") and (args[1] != "bias" or owner.params.get("bias", True) is not False) and owner.category in ("weighted", "norm")
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


@_builtin
def _b_int(b, args, kwargs, node, frame):
    if args and isinstance(args[0], (int, float, str)):
        try:
            return int(args[0])
        except Exception:
            return UNKNOWN
    return UNKNOWN


@_builtin
def _b_float(b, args, kwargs, node, frame):
    if args and isinstance(args[0], (int, float, str)):
        try:
            return float(args[0])
        except Exception:
            return UNKNOWN
    return UNKNOWN


_BUILTINS = {
    "range": _b_range, "len": _b_len, "enumerate": _b_enumerate, "zip": _b_zip,
    "list": _b_list, "tuple": _b_tuple, "reversed": _b_reversed, "isinstance": _b_isinstance,
    "getattr": _b_getattr, "setattr": _b_setattr, "hasattr": _b_hasattr,
    "max": _numeric(max), "min": _numeric(min), "sum": _numeric(sum),
    "abs": _numeric(lambda v: abs(v[0])), "round": _numeric(lambda v: round(v[0])),
    "int": _b_int, "float": _b_float,
    "dict": ClassRef("dict"), "OrderedDict": None,
}
_BUILTINS = {k: v for k, v in _BUILTINS.items() if v is not None}


_EVAL_DISPATCH = {
    getattr(ast, name[5:]): fn for name, fn in vars(Builder).items() if name.startswith("eval_") and hasattr(ast, name[5:])
}


def _factories(index: FileIndex) -> list[ast.FunctionDef]:
    """Module-level functions that may return a model built with arguments of their own
    (torchvision's ``def vgg11(*, weights=None, **kwargs): return _vgg("A", False, ...)``):
    callable without arguments and calling a module class or another function of the file.
    Models whose classes take their structure as constructor arguments (``VGG(features)``,
    ``ResNet(block, layers)``) are only fully known through them."""
    out = []
    local = set(index.module_classes) | set(index.functions)
    for name, func in index.functions.items():
        if not isinstance(func, ast.FunctionDef):
            continue
        a = func.args
        if len(a.defaults) < len(a.posonlyargs) + len(a.args) or any(d is None for d in a.kw_defaults):
            continue
        returns = calls = False
        for node in ast.walk(func):
            if isinstance(node, ast.Return) and node.value is not None:
                returns = True
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in local and node.func.id != name:
                calls = True
        if returns and calls:
            out.append(func)
    return out


def _guarded(builder: "Builder", index: FileIndex, name: str) -> ModelGraph | None:
    """``builder.build()``; a builder bug loses that model only: it is recorded on
    ``index.build_errors`` as ``(name, span, message)`` and None is returned."""
    try:
        return builder.build()
    except Exception as exc:  # noqa: BLE001 - one model's bug must not cost the file's other findings
        index.build_errors.append((name, builder.graph.span, f"{type(exc).__name__}: {exc}"))
        return None


def build_graphs(tree: ast.Module, path: str, everything: bool = True, index: FileIndex | None = None) -> list[ModelGraph]:
    """One :class:`ModelGraph` per ``nn.Module`` subclass in ``tree``, outermost first.

    A class that another model of the file instantiates is expanded inside that model, with
    the arguments and initialization it gets there; such a graph is marked
    ``checked_in_context``. With ``everything=False`` (what ``check`` uses) those graphs are not
    built on their own at all: classes are built from the last defined (models usually come
    after their blocks) and a class some earlier build already expanded is skipped.
    """
    index = index or FileIndex(tree)
    built: dict[str, ModelGraph] = {}
    covered: set[str] = set()
    used: set[str] = set()
    index.build_errors = []
    for name in reversed(list(index.module_classes)):
        if not everything and name in covered:
            continue
        builder = Builder(index, path, index.classes[name])
        graph = _guarded(builder, index, name)
        if graph is None:
            continue
        graph.instantiates = frozenset(builder.instantiated)
        used |= builder.instantiated
        if name not in covered:
            covered |= builder.instantiated - {name}
        built[name] = graph
    factories = _factories(index)
    for func in factories:
        builder = Builder(index, path, None, factory=func)
        graph = _guarded(builder, index, f"{func.name}()")
        if graph is None or not graph.has_forward:
            continue
        graph.instantiates = frozenset(builder.instantiated)
        built[graph.name] = graph
    # the models as the script configures them (call-site arguments, inits applied from outside)
    configured: set[str] = set()
    for site in find_sites(tree, index, skip=frozenset(f.name for f in factories)):
        builder = Builder(index, path, None, factory=site.func)
        graph = _guarded(builder, index, site.name)
        if graph is None or not graph.has_forward:
            continue
        graph.name = site.name
        graph.site_span = _span(site.call)
        graph.instantiates = frozenset(builder.instantiated)
        built[graph.name] = graph
        if graph.factory_of:
            configured.add(graph.factory_of)
    graphs = list(built.values())
    # coverage from the true roots only: a class counts as checked in context when a class
    # nobody instantiates expands it, directly or through other blocks
    roots = [g for g in graphs if g.name not in used]
    in_context: set[str] = set()
    stack = [g.name for g in roots]
    while stack:
        for child in built[stack.pop()].instantiates:
            if child not in in_context and child in built:
                in_context.add(child)
                stack.append(child)
    for g in graphs:
        g.is_root = g.name not in used
        g.checked_in_context = g.name in in_context or (not everything and g.name in covered and g.name in used)
        if g.name in configured:
            # the class as the script builds and initializes it is what gets checked
            g.checked_in_context = True
    graphs.sort(key=lambda g: (not g.is_root, g.span.line))
    return graphs
