"""Build :class:`ModelGraph` objects from one parsed file (stdlib ``ast``).

The builder interprets ``__init__`` and ``forward`` of every ``nn.Module`` subclass
symbolically: constants are folded (module constants, class attributes, default
arguments, arithmetic), loops with a known count are unrolled, helper functions and
classes of the same file are called, layers become specs, and tensors in ``forward``
become sets of producing graph nodes. What it cannot resolve becomes an explicit
:class:`~gradlint.graph.model.Unknown` on the graph. It never reports findings.

This module is the driver (:func:`build_graphs`, :class:`Builder`); the work is done by its
parts, each a module that imports only downward:

- ``symbols``: the file's symbol table (:class:`FileIndex`);
- ``interp_common``: limits, control-flow signals, frames, small interpreter values;
- ``pybuiltins``: Python builtins as evaluated here;
- ``interp_statements`` / ``interp_expressions``: the interpreter core;
- ``torch_semantics``: torch.nn modules, containers, parameters and their methods;
- ``init_semantics``: initializers;
- ``forward_emission``: the forward dataflow as graph nodes (``formulas``: activations
  written out);
- ``sites``: models as scripts configure them; ``recurrence``: hand-written recurrences.
"""

from __future__ import annotations

import ast
import builtins
from itertools import count

from gradlint.graph.forward_emission import ForwardMixin
from gradlint.graph.init_semantics import InitMixin
from gradlint.graph.interp_common import MAX_DEPTH, Frame, _Budget, _clone, _instance_key, _span
from gradlint.graph.interp_expressions import ExpressionsMixin
from gradlint.graph.interp_statements import StatementsMixin
from gradlint.graph.model import Layer, ModelGraph, Node, Provenance, Span, UnknownKind
from gradlint.graph.pybuiltins import _inherits
from gradlint.graph.recurrence import forward_state_layers
from gradlint.graph.sites import SEQUENTIAL, config_site, find_sites
from gradlint.graph.symbols import FileIndex
from gradlint.graph.torch_semantics import TorchMixin
from gradlint.graph.values import BlockSpec, Flow, LeafSpec, ParamSpec, SeqSpec, Spec, UnknownSpec
from gradlint.vocab import Category

__all__ = ["Builder", "FileIndex", "build_graphs"]


class Builder(StatementsMixin, ExpressionsMixin, TorchMixin, InitMixin, ForwardMixin):
    """Builds the graph of one model class: the driver of its parts (statements, expressions,
    torch.nn semantics, initializers, forward emission), a module each."""

    _inherits = _inherits  # the file's class hierarchy, for isinstance() (see pybuiltins)

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
        self.unknown_logs: list[dict] = []  # unknowns seen while instantiating (for the cache)
        #: writes seen while an init function runs on one module (for replaying it, see
        #: apply_to_modules): (spec, parameter, Init), or None for any other change to a module
        self.effect_logs: list[list] = []
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
                if isinstance(root, SeqSpec) and root.kind == "Sequential" and root.items:
                    root = _sequential_block(root, self.factory)  # ``model = nn.Sequential(...)``
                if not isinstance(root, BlockSpec) or (
                    root.cls.name not in self.index.module_classes and root.cls.name != SEQUENTIAL
                ):
                    return None
                self.cls = root.cls
                g.factory_of = root.cls.name
            else:
                root = self.instantiate(self.cls, [], {}, _span(self.cls), Frame(depth=0), root=True)
            # a Sequential built in place is named by its variable (``tower.0``, ``tower.2``)
            self.name_specs(root, self.factory.name if root.cls.name == SEQUENTIAL and self.factory else "")
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
                    f"forward() is inherited from `{bases[0]}`, which gradlint cannot see"
                    if bases
                    else "no forward() in this class or its same-file bases",
                    _span(self.cls),
                    UnknownKind.INHERITED,
                )
        except _Budget as exc:
            where = f" in `{exc.where}`" if exc.where else ""
            self.note_unknown(
                f"analysis budget reached{where}: graph truncated", _span(self.cls or self.factory), UnknownKind.BUDGET
            )
        except RecursionError:
            self.note_unknown(
                "nesting too deep to analyse: graph truncated", _span(self.cls or self.factory), UnknownKind.BUDGET
            )
        return g

    # ================================================================ naming
    def name_specs(self, spec: Spec, prefix: str) -> None:
        if id(spec) in self.names:
            return
        if prefix:
            self.names[id(spec)] = prefix
        if isinstance(spec, LeafSpec):
            self.graph.add_layer(
                Layer(
                    prefix,
                    spec.kind,
                    spec.category,
                    spec.span,
                    spec.activation,
                    dict(spec.params),
                    dict(spec.inits),
                    spec.repeat,
                )
            )
        elif isinstance(spec, ParamSpec):
            self.graph.add_layer(
                Layer(
                    prefix,
                    "Parameter",
                    Category.PARAMETER,
                    spec.span,
                    None,
                    {"shape": spec.shape},
                    dict(spec.inits),
                    spec.repeat,
                )
            )
        elif isinstance(spec, UnknownSpec):
            self.graph.add_layer(Layer(prefix, spec.text, Category.UNKNOWN, spec.span, repeat=spec.repeat))
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
    def note_unknown(self, reason: str, span, kind: UnknownKind = UnknownKind.VALUE) -> None:
        """Record an unknown on the graph, and in every instantiation being captured."""
        self.graph.add_unknown(reason, span, kind)
        for log in self.unknown_logs:
            log[(reason, span, kind)] = None  # a dict: ordered, each unknown once

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
            for reason, where, kind in unknowns:
                self.note_unknown(reason, where, kind)
            return _clone(template, {})
        if not root:
            self.instantiated.add(cls.name)
        before = set(self.instantiated)
        log: dict = {}
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
            cache[key] = (_clone(block, {}), frozenset(self.instantiated - before) | {cls.name}, tuple(log))  # keys
        if _has_recurrent_leaf(block):
            self.index.recurrent_classes.add(cls.name)
        return block

    def _owner_class(self, func) -> ast.ClassDef | None:
        return self.index.owner_of.get(id(func))


def _factories(index: FileIndex) -> list[ast.FunctionDef]:
    """Module-level functions that may return a model built with arguments of their own
    (torchvision's ``def vgg11(*, weights=None, **kwargs): return _vgg("A", False, ...)``):
    callable without arguments and calling a module class or another function of the file.
    Models whose classes take their structure as constructor arguments (``VGG(features)``,
    ``ResNet(block, layers)``) are only fully known through them."""
    out = []
    memo: dict = {}
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
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in local
                and node.func.id != name
            ):
                calls = True
        if returns and calls and _may_construct(index, name, memo):
            out.append(func)
    return out


def _may_construct(index: FileIndex, name: str, memo: dict, depth: int = 0) -> bool:
    """Whether calling the function may construct one of the file's module classes: it (or a
    same-file function it calls) calls a module class, or calls a local name (``cls(...)``,
    a class passed in). timm's ``vit_base_patch16_224()`` only hands its class to an imported
    ``build_model_with_cfg``: its result is unknowable, so it is not built at all."""
    if name in memo:
        return memo[name]
    memo[name] = False  # guards recursion
    func = index.functions.get(name)
    found = False
    if func is not None and depth < 8:
        for node in ast.walk(func):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            callee = node.func.id
            if callee in index.module_classes:
                found = True
            elif callee in index.functions:
                found = callee != name and _may_construct(index, callee, memo, depth + 1)
            elif callee not in index.imports and callee not in index.classes and not hasattr(builtins, callee):
                found = True  # a local name: a class alias or an argument
            if found:
                break
    memo[name] = found
    return found


def _sequential_block(seq: SeqSpec, where) -> BlockSpec:
    """An ``nn.Sequential`` built in place, as a model: a block of no class of the file whose
    forward is the sequence."""
    cls = ast.ClassDef(name=SEQUENTIAL, bases=[], keywords=[], body=[], decorator_list=[])
    ast.copy_location(cls, where)
    cls.end_lineno, cls.end_col_offset = where.end_lineno, where.end_col_offset
    block = BlockSpec(cls, seq.span, torch_base="Sequential")
    block.seq = seq
    return block


def _has_recurrent_leaf(spec) -> bool:
    """Some module under ``spec`` is a recurrent layer (nn.RNN, nn.LSTMCell ...): one walk, no
    names built, stopping at the first."""
    stack, seen = [spec], set()
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, LeafSpec):
            if cur.category == Category.RECURRENT:
                return True
            continue
        if isinstance(cur, Spec) and not isinstance(cur, ParamSpec):
            stack.extend(child for _, child in cur.children())
    return False


def _guarded(builder: "Builder", index: FileIndex, name: str) -> ModelGraph | None:
    """``builder.build()``; a builder bug loses that model only: it is recorded on
    ``index.build_errors`` as ``(name, span, message)`` and None is returned."""
    try:
        graph = builder.build()
        if graph is not None and builder.cls is not None and builder.cls.name in index.recurrent_classes:
            # the layers its forward's hand-written recurrence passes the state through
            graph.state_layers = forward_state_layers(builder.cls)
        return graph
    except Exception as exc:  # noqa: BLE001 - one model's bug must not cost the file's other findings
        index.build_errors.append((name, builder.graph.span, f"{type(exc).__name__}: {exc}"))
        return None


def build_graphs(
    tree: ast.Module, path: str, everything: bool = True, index: FileIndex | None = None, configured_kwargs: tuple = ()
) -> list[ModelGraph]:
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
    sites = find_sites(tree, index, skip=frozenset(f.name for f in factories))
    # the models a configuration builds with constructor kwargs ([tool.gradlint.dynamic.models])
    sites += [
        config_site(index.classes[name], kwargs)
        for name, kwargs in configured_kwargs
        if name in index.classes and name in index.module_classes
    ]
    for site in sites:
        builder = Builder(index, path, None, factory=site.func)
        graph = _guarded(builder, index, site.name)
        if graph is None or not graph.has_forward:
            continue
        graph.name = site.name
        graph.site_span = _span(site.call)
        graph.site_func = site.func
        graph.from_config = site.label is not None
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
