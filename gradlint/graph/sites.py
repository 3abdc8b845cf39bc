"""Models as a script configures them: instantiation sites outside the class body.

Real code often builds a model with arguments and initializes it from outside its class::

    model = Net(n_layers=50, constant_weight=0)
    model.apply(init_weights)
    with torch.no_grad():
        model.fc.weight.fill_(0.0)

A *site* is one such ``NAME = Cls(...)`` (or a same-file factory call) at module level or in
a module-level function (``main()``, ``train()``), with the statements after it in the same
scope that configure ``NAME``: ``NAME.apply(fn)``, ``fn(NAME)`` for a same-file ``fn``,
``nn.init.*(NAME...)``, in-place initializers on its parameters, assignments to them, and
loops over ``NAME.modules()`` / ``named_parameters()`` / ``parameters()``. The constants the
site reads from the same scope come along. Everything else (training loops, ``.to(device)``,
optimizers) is left out: it does not change the model at initialization. A
``load_state_dict`` ends the site: the weights then come from a checkpoint.

Each site becomes a small synthetic function (the original statements, unchanged, so every
span points at the user's lines) that the builder runs as a factory. Sites whose call has no
arguments and that configure nothing are the class's own defaults and are not built again.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

#: methods of a model that do not change it at initialization
_INERT = frozenset(
    {
        "to",
        "cuda",
        "cpu",
        "half",
        "float",
        "double",
        "bfloat16",
        "train",
        "eval",
        "zero_grad",
        "parameters",
        "named_parameters",
        "modules",
        "named_modules",
        "children",
        "named_children",
        "state_dict",
        "forward",
        "register_forward_hook",
        "register_backward_hook",
        "register_full_backward_hook",
        "requires_grad_",
        "share_memory",
        "type",
        "compile",
    }
)
#: iterating these walks the model's layers or parameters: an init loop
_WALKS = frozenset({"modules", "named_modules", "parameters", "named_parameters", "children", "named_children"})
#: a site is at most this many statements (a script is not interpreted whole)
MAX_CONFIG = 64
#: the name a site's model gets when it is an ``nn.Sequential`` built in place
SEQUENTIAL = "nn.Sequential"
_SEQUENTIAL = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential"})


@dataclass(frozen=True)
class Site:
    var: str
    cls: str  # the class (or factory function) called
    line: int
    func: ast.FunctionDef  # the synthetic factory: constants, the call, the configuration, return
    call: ast.stmt  # the ``NAME = Cls(...)`` statement
    #: the model's name when it is not ``NAME = Cls(...)`` (a configuration's ``Cls(depth=40)``)
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or f"{self.var} = {self.cls}(...)"


def _root(expr) -> str | None:
    """The name an attribute/subscript/call chain starts from: ``model`` in ``model.fc.weight``."""
    while True:
        if isinstance(expr, ast.Attribute):
            expr = expr.value
        elif isinstance(expr, ast.Subscript):
            expr = expr.value
        elif isinstance(expr, ast.Call):
            expr = expr.func
        elif isinstance(expr, ast.Name):
            return expr.id
        else:
            return None


def _walks(it, var: str) -> bool:
    """``it`` iterates part of the model ``var``: its layers, modules or parameters."""
    if _root(it) != var:
        return False
    if isinstance(it, ast.Call):
        return isinstance(it.func, ast.Attribute) and it.func.attr in _WALKS
    return isinstance(it, (ast.Attribute, ast.Subscript))


def _mentions(node, var: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == var for n in ast.walk(node))


def _pure(expr) -> bool:
    """A value a scope may compute without effects: literals, names and arithmetic on them."""
    return all(
        isinstance(
            n,
            (
                ast.Constant,
                ast.Name,
                ast.Load,
                ast.BinOp,
                ast.UnaryOp,
                ast.operator,
                ast.unaryop,
                ast.Tuple,
                ast.List,
                ast.Attribute,
            ),
        )
        for n in ast.walk(expr)
    )


def _flatten(body):
    """Statements of a scope in source order, through ``if``/``with``/``try`` (not loops, not
    nested functions)."""
    for stmt in body:
        if isinstance(stmt, (ast.If,)):
            yield from _flatten(stmt.body)
            yield from _flatten(stmt.orelse)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            yield from _flatten(stmt.body)
        elif isinstance(stmt, ast.Try):
            yield from _flatten(stmt.body)
            for h in stmt.handlers:
                yield from _flatten(h.body)
            yield from _flatten(stmt.orelse)
            yield from _flatten(stmt.finalbody)
        else:
            yield stmt


class _Scope:
    def __init__(self, index, models: set[str], functions: set[str]):
        self.index = index
        self.models = models  # the file's module classes
        self.functions = functions  # same-file functions (init helpers, factories)
        self._factory: dict[str, bool] = {}

    def model_call(self, value) -> str | None:
        """The class or same-file factory ``value`` calls to get a model, or None. An
        ``nn.Sequential(...)`` with layers is a model too (:data:`SEQUENTIAL`)."""
        if isinstance(value, ast.Call) and value.args and self.index.qualname(value.func) in _SEQUENTIAL:
            return SEQUENTIAL
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)):
            return None
        name = value.func.id
        if name in self.models:
            return name
        if name in self.functions:
            if name not in self._factory:
                self._factory[name] = _returns_model(self.index.functions[name], self.models)
            return name if self._factory[name] else None
        return None

    def configures(self, stmt, var: str) -> bool | None:
        """True: the statement configures ``var``; False: unrelated; None: it ends the site."""
        if not _mentions(stmt, var):
            return False
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            f = call.func
            if isinstance(f, ast.Attribute) and _root(f) == var:
                if f.attr == "load_state_dict":
                    return None  # weights from a checkpoint: the init no longer matters
                return f.attr not in _INERT
            if isinstance(f, ast.Name) and f.id in self.functions:
                return any(_root(a) == var for a in [*call.args, *(k.value for k in call.keywords)])
            q = self.index.qualname(f)
            if q and q.startswith("torch.nn.init."):
                return bool(call.args) and _root(call.args[0]) == var
            return False
        if isinstance(stmt, (ast.For, ast.AsyncFor)):
            # over the model's layers or parameters (``model.modules()``, ``model.layers``,
            # ``zip(model.layers, stds)``): an init loop; a loop over data or epochs is not
            it = stmt.iter
            if (
                isinstance(it, ast.Call)
                and isinstance(it.func, ast.Name)
                and it.func.id in ("zip", "enumerate", "reversed", "list")
            ):
                return any(_walks(a, var) for a in it.args)
            return _walks(it, var)
        if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == var for t in targets):
                return None  # rebound (``model = model.to(device)``, another model): the site ends
            return any(not isinstance(t, ast.Name) and _root(t) == var for t in targets)
        return False


def find_sites(tree: ast.Module, index, skip=frozenset()) -> list[Site]:
    """The configured instantiation sites of ``tree`` (see the module docstring), deduplicated.
    Functions named in ``skip`` (factories the builder runs whole) are not searched."""
    models = set(index.module_classes)
    if not models and not any(q.startswith("torch") for q in index.imports.values()):
        return []
    functions = {n for n, f in index.functions.items() if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    scope = _Scope(index, models, functions)
    # functions callable without arguments (``main()``, ``train()``): one with required
    # parameters is configured by its callers, which the factories of the file follow
    bodies = [tree.body] + [
        f.body
        for n, f in index.functions.items()
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and n not in skip and _no_required(f.args)
    ]
    sites, seen = [], set()
    for body in bodies:
        stmts = list(_flatten(body))
        for i, stmt in enumerate(stmts):
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
                continue
            cls = scope.model_call(stmt.value)
            if cls is None:
                continue
            var = stmt.targets[0].id
            config = []
            for later in stmts[i + 1 :]:
                verdict = scope.configures(later, var)
                if verdict is None:
                    break
                if verdict:
                    config.append(later)
                    if len(config) >= MAX_CONFIG:
                        break
            call = stmt.value
            if not call.args and not call.keywords and not config:
                continue  # the class's own defaults: built on its own already
            used = {n.id for s in (stmt, *config) for n in ast.walk(s) if isinstance(n, ast.Name)}
            prelude = [
                s
                for s in stmts[:i]
                if isinstance(s, ast.Assign)
                and len(s.targets) == 1
                and isinstance(s.targets[0], ast.Name)
                and s.targets[0].id in used
                and s.targets[0].id != var
                and _pure(s.value)
            ]
            key = (cls, ast.dump(call), tuple(ast.dump(c) for c in config), tuple(ast.dump(p) for p in prelude))
            if key in seen:
                continue
            seen.add(key)
            ret = ast.Return(value=ast.Name(id=var, ctx=ast.Load()))
            ast.copy_location(ret, stmt)
            args = ast.arguments(
                posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
            )
            func = ast.FunctionDef(
                name=var, args=args, body=[*prelude, stmt, *config, ret], decorator_list=[], returns=None
            )
            ast.copy_location(func, stmt)
            func.end_lineno, func.end_col_offset = stmt.end_lineno, stmt.end_col_offset
            sites.append(Site(var, cls, stmt.lineno, func, stmt))
    return sites


def _no_required(a: ast.arguments) -> bool:
    return len(a.defaults) >= len(a.posonlyargs) + len(a.args) and all(d is not None for d in a.kw_defaults)


def _returns_model(func, models: set[str]) -> bool:
    """A same-file function returning one of the file's models (``def build(): return Net(50)``)."""
    for node in ast.walk(func):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name):
            if node.value.func.id in models:
                return True
    return False


def _literal(value) -> ast.expr:
    """A configuration value (TOML: numbers, strings, booleans, arrays, tables) as an expression."""
    if isinstance(value, (list, tuple)):
        return ast.List(elts=[_literal(v) for v in value], ctx=ast.Load())
    if isinstance(value, dict):
        return ast.Dict(keys=[ast.Constant(str(k)) for k in value], values=[_literal(v) for v in value.values()])
    return ast.Constant(value)


def config_site(cls_node: ast.ClassDef, kwargs: tuple) -> Site:
    """The model a configuration builds (``[tool.gradlint.dynamic.models."f.py::Cls"] kwargs``)
    as a site: ``Cls(**kwargs)``, located at the class (there is no call in the file)."""
    var = "configured"
    call = ast.Call(
        func=ast.Name(id=cls_node.name, ctx=ast.Load()),
        args=[],
        keywords=[ast.keyword(arg=k, value=_literal(v)) for k, v in kwargs],
    )
    stmt = ast.Assign(targets=[ast.Name(id=var, ctx=ast.Store())], value=call)
    ret = ast.Return(value=ast.Name(id=var, ctx=ast.Load()))
    args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    func = ast.FunctionDef(name=var, args=args, body=[stmt, ret], decorator_list=[], returns=None)
    for node in ast.walk(func):  # every span points at the class line
        node.lineno, node.col_offset = cls_node.lineno, cls_node.col_offset
        node.end_lineno, node.end_col_offset = cls_node.lineno, cls_node.col_offset + len("class")
    label = f"{cls_node.name}({', '.join(f'{k}={v!r}' for k, v in kwargs)})"
    return Site(var, cls_node.name, cls_node.lineno, func, stmt, label=label)
