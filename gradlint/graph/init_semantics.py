"""Initializer semantics: nn.init calls and in-place initialization, recorded on the parameters they reach."""

from __future__ import annotations

import ast
import dataclasses
import math

from gradlint.graph import catalog
from gradlint.graph.interp_common import _span
from gradlint.graph.model import Init, UnknownKind
from gradlint.graph.values import UNKNOWN, BlockSpec, LeafSpec, ParamRef, ParamSpec, SeqSpec, Spec


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
    def apply_to_modules(self, owner, call_one, by_name=False, include_root=True) -> None:
        """``module.apply(fn)``: call ``fn`` on every submodule, children before parents.

        An init function sees a module only through its type and attributes, so its effect on
        the first of several equal modules (an ``nn.Linear(768, 768)``; blocks of one class with
        equal attributes and equal submodules) is replayed on the others instead of interpreting
        it hundreds of times. The effect is the initializers the call set in the module's
        subtree (``effect_logs``), replayed by relative path; a call that changes anything else,
        or anything outside the subtree, is not replayed. Named calls are not replayed: they may
        dispatch on the name.
        """
        saved = self.init_via
        self.init_via = "apply"
        memo: dict = {}
        keys: dict = {}
        try:
            for mname, m in self.all_modules(owner, "", postorder=True):
                if m is owner and not include_root:
                    continue
                key = None if by_name else self._apply_key(m, keys)
                if key is not None and key in memo:
                    effect = memo[key]
                    if effect:
                        where = dict(self.all_modules(m, "", params=True))
                        for rel, name, init in effect:
                            self.set_init(where[rel], name, init)
                    continue
                log: list = []
                self.effect_logs.append(log)
                try:
                    call_one(m, mname)
                finally:
                    self.effect_logs.pop()
                if key is None or None in log:
                    continue
                paths = {id(spec): rel for rel, spec in self.all_modules(m, "", params=True)} if log else {}
                if all(id(spec) in paths for spec, _, _ in log):
                    memo[key] = [(paths[id(spec)], name, init) for spec, name, init in log]
        finally:
            self.init_via = saved

    def _apply_key(self, m, keys: dict):
        """What an init function can tell of ``m`` (equal keys, equal effects); None when it
        cannot be told: a module whose attributes or submodules are not all known and hashable."""
        found = keys.get(id(m), False)
        if found is not False:
            return found
        key = None
        if isinstance(m, LeafSpec):
            key = ("leaf", m.kind, tuple(sorted(m.params.items())))
        elif isinstance(m, ParamSpec):
            key = ("param", m.shape)
        elif isinstance(m, SeqSpec):
            parts = [(k, self._apply_key(v, keys)) for k, v in m.items]
            if all(part is not None for _, part in parts):
                key = ("seq", m.kind, tuple(parts))
        elif isinstance(m, BlockSpec):
            seq = self._apply_key(m.seq, keys) if m.seq is not None else ()
            parts = [(k, self._apply_key(v, keys) if isinstance(v, Spec) else None) for k, v in m.attrs.items()]
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
