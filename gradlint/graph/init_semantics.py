"""Initializer semantics: nn.init calls and in-place initialization, recorded on the parameters they reach."""

from __future__ import annotations

import ast
import dataclasses
import math

from gradlint.graph import catalog
from gradlint.graph.interp_common import _span
from gradlint.graph.model import Init, UnknownKind
from gradlint.graph.values import UNKNOWN, BlockSpec, FuncRef, LeafSpec, ParamRef, ParamSpec, SeqSpec, Spec, UnknownSpec

#: attributes through which a function can read a layer's arguments without naming them
_OPAQUE_ATTRS = frozenset(
    ("__dict__", "shape", "size", "dim", "ndim", "numel", "nelement", "extra_repr", "state_dict", "_parameters")
)
#: builtins that read attributes by computed names
_OPAQUE_NAMES = frozenset(("getattr", "hasattr", "vars", "setattr", "dir", "super", "eval", "exec", "locals"))


def _method_names(index) -> frozenset:
    """Names of the methods the file's classes define (memoized on the index)."""
    found = index.__dict__.get("_method_names")
    if found is None:
        found = index._method_names = frozenset(
            f.name for c in index.classes.values() for f in c.body if isinstance(f, ast.FunctionDef)
        )
    return found


def _self_reads(func, index) -> frozenset | None:
    """The attributes a method reads of its first parameter, all as ``self.name``; None when
    it can see more of it: ``self`` used otherwise (``isinstance(self, ...)``, passed on), a
    method of the file called through it, or ``super()`` with a base in the file (memoized
    on the index)."""
    cache = index.__dict__.setdefault("_self_reads", {})
    if id(func) not in cache:
        cache[id(func)] = _read_of_self(func, index)
    return cache[id(func)]


def _read_of_self(func, index) -> frozenset | None:
    params = [*func.args.posonlyargs, *func.args.args]
    if not params:
        return None
    me = params[0].arg
    methods = _method_names(index)
    owner = index.owner_of.get(id(func))
    local_base = owner is not None and any(isinstance(b, ast.Name) and b.id in index.classes for b in owner.bases)
    named = through = 0
    reads: set[str] = set()
    for n in ast.walk(func):  # one pass: walking is most of the cost
        if isinstance(n, ast.Name):
            if n.id == me:
                named += 1
            elif n.id == "super" and local_base:
                return None
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == me:
            if n.attr in methods:
                return None
            through += 1
            reads.add(n.attr)
    return frozenset(reads) if named == through else None


class InitMixin:
    """Initializer semantics: nn.init calls and in-place initialization, recorded on the parameters they reach.

    A part of :class:`gradlint.graph.builder.Builder`."""

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
        self.set_init(
            owner,
            ref.name,
            dataclasses.replace(
                current,
                scale=current.scale * factor,
                text=f"{current.text} then {self.text(node)}"[:120] if current.span else self.text(node)[:120],
                span=current.span or _span(node),
            ),
        )

    def set_init(self, owner, name: str, init) -> None:
        """The one place a parameter's initializer is recorded (and logged, see ``effect_logs``)."""
        owner.inits[name] = init
        for log in self.effect_logs:
            log.append((owner, name, init))

    def apply_init(self, target, init: Init, node) -> None:
        via = self.init_via
        if via:
            init = dataclasses.replace(init, via=via)
        if isinstance(target, ParamRef):
            self.set_init(target.owner, target.name, init)
        elif isinstance(target, ParamSpec):
            self.set_init(target, "weight", init)
        elif target is UNKNOWN:
            self.note_unknown(f"initializer target not resolved: `{init.text[:60]}`", _span(node), UnknownKind.INIT)

    # ------------------------------------------------------------ model.apply(init)
    def apply_to_modules(self, owner, call_one, by_name=False, include_root=True, applied=None, mentioned=None) -> None:
        """``module.apply(fn)``: call ``fn`` on every submodule, children before parents.

        An init function sees a module only through its type and attributes, so its effect on
        the first of several equal modules (an ``nn.Linear(768, 768)``; blocks of one class with
        equal attributes and equal submodules) is replayed on the others instead of interpreting
        it hundreds of times. The effect is the initializers the call set in the module's
        subtree (``effect_logs``), replayed by relative path; a call that changes anything else,
        or anything outside the subtree, is not replayed. Named calls are not replayed: they may
        dispatch on the name.

        ``mentioned``: the names the function spells out (see :meth:`mentioned_names`; None:
        every argument of a layer counts). ``applied`` names the function applied, as far as it
        can tell modules apart (see :meth:`applied_key`); with it, effects are shared by every
        model of the file the same function is applied to, with the unknowns the call noted.
        """
        saved = self.init_via
        self.init_via = "apply"
        memo: dict = {}
        if applied is not None:
            memo = self.index.apply_effects.setdefault(applied, memo)
        keys: dict = {}
        try:
            for mname, m in self.all_modules(owner, "", postorder=True):
                if m is owner and not include_root:
                    continue
                key = None if by_name else self._apply_key(m, keys, mentioned)
                if key is not None and key in memo:
                    effect, unknowns = memo[key]
                    if effect:
                        where = dict(self.all_modules(m, "", params=True))
                        for rel, name, init in effect:
                            self.set_init(where[rel], name, init)
                    for reason, span, kind in unknowns:
                        self.note_unknown(reason, span, kind)
                    continue
                log: list = []
                noted: dict = {}
                self.effect_logs.append(log)
                self.unknown_logs.append(noted)
                try:
                    call_one(m, mname)
                finally:
                    self.effect_logs.pop()
                    self.unknown_logs.pop()
                if key is None or None in log:
                    continue
                paths = {id(spec): rel for rel, spec in self.all_modules(m, "", params=True)} if log else {}
                if all(id(spec) in paths for spec, _, _ in log):
                    memo[key] = ([(paths[id(spec)], name, init) for spec, name, init in log], tuple(noted))
        finally:
            self.init_via = saved

    def applied_key(self, fn, frame):
        """What a function applied to every module (``model.apply(fn)``) is, as far as its effect
        on one module can differ: the function and the depth it is called at, and for a method
        what it can read of the model it is bound to: the plain attributes, submodule names and
        class attributes it names (``self.config...``, ``if self.pooler is not None``), and the
        class itself when ``self`` is used other than through an attribute (``isinstance(self,
        ...)``), and every attribute then (see ``_self_reads``). None for anything else."""
        if not isinstance(fn, FuncRef) or fn.qualname is not None or not isinstance(fn.node, ast.AST):
            return None
        bound = fn.bound
        if bound is None:
            owner = None
        elif isinstance(bound, BlockSpec):
            names = _self_reads(fn.node, self.index)
            try:
                values = tuple(
                    sorted((k, type(v).__name__, v) for k, v in bound.values.items() if names is None or k in names)
                )
                hash(values)
            except TypeError:
                return None
            attrs = tuple((k, type(v).__name__) for k, v in bound.attrs.items() if names is None or k in names)
            if names is None:
                cls = id(bound.cls)
            else:
                found = ((n, self.index.class_attr(bound.cls, n)) for n in sorted(names))
                cls = tuple((n, id(stmt)) for n, stmt in found if stmt is not None)
            owner = (cls, bound.torch_base, values, attrs)
        else:
            return None
        return (id(fn.node), owner, frame.depth)

    def mentioned_names(self, fn) -> frozenset | None:
        """The attribute names and strings a function applied to modules spells out: a torch
        layer's arguments (``in_features``, ``padding_idx``) are read only by name, so one it
        never names cannot change its effect. None when it could read them unseen: it calls a
        function or method of the file (``super()`` with a base in the file), ``getattr``/
        ``vars``, or asks a shape. The file's classes it names are only compared with."""
        node = getattr(fn, "node", None) if isinstance(fn, FuncRef) else None
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return None
        cache = self.index.__dict__.setdefault("_mentioned", {})
        if id(node) in cache:
            return cache[id(node)]
        methods = _method_names(self.index)
        owner = self.index.owner_of.get(id(node))
        local_base = owner is not None and any(
            isinstance(b, ast.Name) and b.id in self.index.classes for b in owner.bases
        )
        names: set[str] | None = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute):
                on_library_base = (
                    not local_base
                    and isinstance(sub.value, ast.Call)
                    and isinstance(sub.value.func, ast.Name)
                    and sub.value.func.id == "super"
                )
                if sub.attr in _OPAQUE_ATTRS or (sub.attr in methods and not on_library_base):
                    names = None
                    break
                names.add(sub.attr)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                names.add(sub.value)
            elif isinstance(sub, ast.Name) and (sub.id in _OPAQUE_NAMES or sub.id in self.index.functions):
                if sub.id == "super" and not local_base:
                    continue  # the base is a library's (transformers' PreTrainedModel): not interpreted
                names = None
                break
        found = cache[id(node)] = frozenset(names) if names is not None else None
        return found

    def _apply_key(self, m, keys: dict, mentioned: frozenset | None = None):
        """What an init function can tell of ``m`` (equal keys, equal effects); None when it
        cannot be told: a module whose attributes or submodules are not all known and hashable.
        With ``mentioned`` (see :meth:`mentioned_names`), a layer's arguments the function
        never names are left out: ``nn.Linear(768, 768)`` and ``nn.Linear(768, 3072)`` are one
        key to an init function that only asks ``isinstance(m, nn.Linear)``."""
        found = keys.get(id(m), False)
        if found is not False:
            return found
        key = None
        if isinstance(m, LeafSpec):
            params = m.params.items() if mentioned is None else [(k, v) for k, v in m.params.items() if k in mentioned]
            key = ("leaf", m.kind, tuple(sorted(params)))
        elif isinstance(m, ParamSpec):
            key = ("param", m.shape)
        elif isinstance(m, UnknownSpec):
            key = ("unknown", m.text, m.reason)
        elif isinstance(m, SeqSpec):
            parts = [(k, self._apply_key(v, keys, mentioned)) for k, v in m.items]
            if all(part is not None for _, part in parts):
                key = ("seq", m.kind, tuple(parts))
        elif isinstance(m, BlockSpec):
            seq = self._apply_key(m.seq, keys, mentioned) if m.seq is not None else ()
            parts = [
                (k, self._apply_key(v, keys, mentioned) if isinstance(v, Spec) else None) for k, v in m.attrs.items()
            ]
            if seq is not None and all(part is not None for _, part in parts):
                key = ("block", id(m.cls), m.torch_base, tuple(sorted(m.values.items())), seq, tuple(parts))
        if key is not None:
            try:
                hash(key)
            except TypeError:
                key = None
        keys[id(m)] = key
        return key

    # ------------------------------------------------------------ forward: applying modules
