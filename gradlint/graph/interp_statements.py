"""Statements: calls of the file's functions, binding, and the statements of their bodies."""

from __future__ import annotations

import ast

from gradlint.graph.interp_common import (
    MAX_DEPTH,
    MAX_STEPS,
    MAX_UNROLL,
    Frame,
    _Budget,
    _is_known,
    _number,
    _Return,
    _span,
)
from gradlint.graph.model import Provenance, Span, UnknownKind
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
from gradlint.vocab import Category


class StatementsMixin:
    """Statements: calls of the file's functions, binding, and the statements of their bodies.

    A part of :class:`gradlint.graph.builder.Builder`."""

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
        except _Budget as exc:
            if exc.where is None:
                exc.where = func.name
            raise
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
                value = self._default(d, frame)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    frame.prov[p.arg] = (Provenance(p.arg, value, d.lineno),)
                frame.locals[p.arg] = value
            else:
                frame.locals[p.arg] = UNKNOWN
                if root and i > 0:
                    self.note_unknown(
                        f"constructor argument `{p.arg}` has no default", Span.of(p), UnknownKind.ARGUMENT
                    )
        for p, d in zip(a.kwonlyargs, a.kw_defaults):
            if p.arg in kwargs:
                frame.locals[p.arg] = kwargs[p.arg]
            elif d is not None:
                frame.locals[p.arg] = self._default(d, frame)
            else:
                frame.locals[p.arg] = UNKNOWN
        if a.vararg:
            frame.locals[a.vararg.arg] = tuple(args[len(params) :])
        if a.kwarg:
            frame.locals[a.kwarg.arg] = {k: v for k, v in kwargs.items() if k not in frame.locals}

    def _default(self, d, frame: Frame):
        """A parameter's default, evaluated in a frame of its own (most are constants: no frame)."""
        if type(d) is ast.Constant:
            self.tick()
            return d.value
        return self.eval(d, Frame(depth=frame.depth))

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
            # Either branch may run: explore both, in order, and keep what each defines, and say
            # so (the graph then holds what either branch builds)
            self.note_unknown(
                self.condition_reason(stmt.test, "both branches kept"), _span(stmt), UnknownKind.CONDITION
            )
            self.exec_body(stmt.body, frame)
            self.exec_body(stmt.orelse, frame)

    def condition_reason(self, test, outcome: str) -> str:
        """``condition not resolved: `USE_NORM` (imported from config): both branches kept``
        (once per condition of the file: a block built many times meets it many times)."""
        cache = self.index.__dict__.setdefault("_condition_reasons", {})
        key = (id(test), outcome)
        if key not in cache:
            cache[key] = self._condition_reason(test, outcome)
        return cache[key]

    def _condition_reason(self, test, outcome: str) -> str:
        names = sorted({n.id for n in ast.walk(test) if isinstance(n, ast.Name)})
        imported = [
            f"`{n}` is imported from {self.index.imports[n].rpartition('.')[0] or self.index.imports[n]}"
            for n in names
            if n in self.index.imports and not self.index.imports[n].startswith("torch")
        ]
        why = f" ({'; '.join(imported)})" if imported else ""
        return f"condition not resolved: `{self.text(test)[:60]}`{why}: {outcome}"

    def truth(self, value):
        if value is UNKNOWN:
            return None
        if isinstance(value, ClassRef) and value.local is None and not value.qualname.startswith("torch"):
            return None  # an imported name: a flag from a config module is not known to be true
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
            self.note_unknown(f"loop count not resolved: `{self.text(stmt.iter)[:60]}`", _span(stmt), UnknownKind.LOOP)
            self.assign(stmt.target, UNKNOWN if not isinstance(iterable, Flow) else iterable, frame, stmt)
            self.exec_body(stmt.body, frame)
            return
        if len(items) > MAX_UNROLL:
            self.note_unknown(
                f"loop of {len(items)} iterations unrolled only {MAX_UNROLL} times", _span(stmt), UnknownKind.BUDGET
            )
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
            try:
                return list(value) if len(value) <= 100_000 else None
            except OverflowError:  # range(10 ** 30): len() does not fit in a C ssize_t
                return None
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
            if spec.category in (Category.WEIGHTED, Category.NORM):
                names = ["weight"]
                if spec.params.get("bias", True) is not False:
                    names.append("bias")
                return names
            if spec.category == Category.RECURRENT:
                return ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        return []

    def exec_augassign(self, stmt: ast.AugAssign, frame: Frame) -> None:
        target = stmt.target
        current = self.eval(target, frame)
        value = self.eval(stmt.value, frame)
        if isinstance(current, list) and isinstance(stmt.op, ast.Add):
            items = self.iterate(value)
            if items is None:
                current.append(
                    UnknownSpec(self.text(stmt.value)[:60], _span(stmt.value), "list extended by an unresolved value")
                )
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
        result = self.fold(stmt.op, current, value, stmt)
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
                self.set_init(owner, target.attr, value.inits.get("weight"))
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
            if (
                isinstance(value, (tuple, list))
                and len(value) == len(elts)
                and not any(isinstance(e, ast.Starred) for e in elts)
            ):
                for e, v in zip(elts, value):
                    self.assign(e, v, frame, stmt)
            else:
                spread = value if isinstance(value, Flow) else UNKNOWN
                for e in elts:
                    self.assign(e.value if isinstance(e, ast.Starred) else e, spread, frame, stmt)
        elif t is ast.Starred:
            self.assign(target.value, value, frame, stmt)

    def set_attr(self, block: BlockSpec, name: str, value, stmt) -> None:
        for log in self.effect_logs:
            log.append(None)  # a change an init function's replay would not repeat
        if isinstance(value, list) and value and all(isinstance(v, Spec) for v in value):
            value = list(value)  # a plain list of modules is not registered by nn.Module
        if isinstance(value, Spec):
            self.tag_repeat([value])
            block.attrs.pop(name, None)
            block.attrs[name] = value
        else:
            block.values[name] = value

    # ------------------------------------------------------------ calls, arguments, constants
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
                    return self.call_function(
                        method, [block, *args], kwargs, frame, self_block=block, cls=self.index.classes[base.id]
                    )
                return None
        if attr == "__init__" and block.seq is not None:
            self.fill_container(block.seq, args, kwargs, node)
            return None
        if attr == "forward" and block.seq is not None:
            return self.apply_spec(block.seq, args, kwargs, node, frame)
        return None

    def eval_args(self, node, frame):
        args = self.eval_elts(node.args, frame, "unresolved *args")
        kwargs = {}
        for k in node.keywords:
            v = self.eval(k.value, frame)
            if k.arg is None:
                if isinstance(v, dict):
                    kwargs.update({str(kk): vv for kk, vv in v.items()})
            else:
                kwargs[k.arg] = v
        return args, kwargs

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
