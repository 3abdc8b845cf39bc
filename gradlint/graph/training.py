"""Training loops: where gradients are computed, clipped and applied (behind GL401/GL402).

The graph builder describes models; this module describes the code that trains them. For every
loop that calls ``backward()`` and then updates the weights (``optimizer.step()``,
``scaler.step(opt)``, an LBFGS closure, a manual ``p.data.add_``), it records the order of
backward, clipping and update in one iteration, which parameters are clipped and optimized, and
which model is trained, resolved to a class of this file, an imported class (resolved across
the files of the run by the engine), or left unknown. Like the graph builder it never reports.
"""

from __future__ import annotations

import ast
import collections
import functools
import re

from gradlint.graph.frameworks import CLIP_NAMES, TRAINERS
from gradlint.graph.model import Span
from gradlint.graph.recurrence import model_called_recurrently
from gradlint.graph.seqlen import Ints, argparse_defaults, loop_length
from gradlint.graph.training_facts import Event, FrameworkFit, TrainingFacts, TrainingLoop
from gradlint.vocab import ModelKind

UPDATE_METHODS = ("add_", "sub_", "addcmul_", "addcdiv_", "copy_")


def _span(node) -> Span:
    return Span.of(node)


def _calls_in_order(node) -> list[ast.Call]:
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
    # inner calls finish first: order by end position, as they execute
    return sorted(calls, key=lambda c: (c.end_lineno or c.lineno, c.end_col_offset or c.col_offset))


def _params_owner(expr) -> str | None:
    """``model.parameters()`` -> ``model``; ``self.net.parameters()`` -> ``self.net``; parameters
    of several parts of one model (``list(model.rnn.parameters()) + list(model.fc.parameters())``)
    -> that model; of unrelated objects -> the first."""
    owners = _owners(expr)
    if not owners:
        return None
    common = owners[0].split(".")
    for other in owners[1:]:
        parts = other.split(".")
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    if common and common != ["self"]:
        return ".".join(common)
    return owners[0]


def _owners(expr) -> list[str]:
    """Every object whose ``parameters()`` the expression collects, in order."""
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr in ("parameters", "named_parameters")
    ):
        return [ast.unparse(expr.func.value)]
    out: list[str] = []
    if isinstance(expr, (ast.List, ast.Tuple)):
        # [p for p in ...], [{"params": model.fc.parameters(), "lr": 1e-3}, ...]
        for e in expr.elts:
            out += _owners(e)
    elif isinstance(expr, ast.Dict):
        for k, v in zip(expr.keys, expr.values):
            if isinstance(k, ast.Constant) and k.value == "params":
                out += _owners(v)
    elif isinstance(expr, ast.BinOp):  # list(enc.parameters()) + list(dec.parameters())
        out += _owners(expr.left) + _owners(expr.right)
    elif isinstance(expr, (ast.ListComp, ast.GeneratorExp)):  # [p for p in model.parameters() if ...]
        for g in expr.generators:
            out += _owners(g.iter)
    elif isinstance(expr, ast.Call) and isinstance(expr.func, (ast.Name, ast.Attribute)) and expr.args:
        # itertools.chain(a.parameters(), b.parameters()), list(model.parameters()),
        # filter(lambda p: p.requires_grad, model.parameters())
        for a in expr.args:
            out += _owners(a)
    return out


class _Scope:
    def __init__(self, index, body, name, params=(), file_clip_helpers=frozenset()):
        self.index = index
        self.name = name
        self.params = set(params)
        self.clip_helpers = file_clip_helpers
        self._body = body

    @functools.cached_property
    def _bindings(self) -> tuple[dict[str, ast.AST], dict[str, ast.AST]]:
        # read on first use: most scopes (each function, as a possible caller) are never asked
        assigned: dict[str, ast.AST] = {}
        local_defs: dict[str, ast.AST] = {}
        for node in ast.walk(ast.Module(body=list(self._body), type_ignores=[])):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, (ast.Name, ast.Attribute)):
                        assigned[ast.unparse(t)] = node.value
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local_defs[node.name] = node
        return assigned, local_defs

    @property
    def assigned(self) -> dict[str, ast.AST]:
        """Source text of each assigned name or attribute -> the value last assigned to it."""
        return self._bindings[0]

    @property
    def local_defs(self) -> dict[str, ast.AST]:
        """Functions defined in the scope, by name."""
        return self._bindings[1]

    def is_optimizer(self, receiver: ast.AST) -> bool:
        text = ast.unparse(receiver)
        value = self.assigned.get(text)
        if value is not None and isinstance(value, ast.Call):
            callee = ast.unparse(value.func)
            q = self.index.qualname(value.func) or callee
            if "lr_scheduler" in q or "Scheduler" in callee or "LR" in callee.split(".")[-1]:
                return False
            if "optim" in q.lower() or callee.split(".")[-1] in ("SGD", "Adam", "AdamW", "RMSprop", "LBFGS", "Adagrad"):
                return True
        low = text.lower()
        return ("opt" in low or low.endswith("optimizer")) and "sched" not in low

    def classify(self, call: ast.Call) -> Event | None:
        func = call.func
        q = self.index.qualname(func) or ""
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        text = ast.unparse(call)
        if name == "backward" or q == "torch.autograd.backward":
            return Event("backward", _span(call), text[:100])
        if name in CLIP_NAMES or q.endswith(CLIP_NAMES):
            owner = _params_owner(call.args[0]) if call.args else None
            return Event("clip", _span(call), text[:100], owner)
        if name in self.clip_helpers or name in self.local_clip_helpers():
            return Event("clip", _span(call), text[:100])
        if name == "step" and isinstance(func, ast.Attribute):
            receiver = func.value
            if call.args and self.is_optimizer(call.args[0]):  # scaler.step(optimizer)
                return Event("step", _span(call), text[:100])
            if self.is_optimizer(receiver):
                return Event("step", _span(call), text[:100])
        if name in UPDATE_METHODS and isinstance(func, ast.Attribute) and ".grad" in text:
            return Event("step", _span(call), text[:100])  # p.data.add_(p.grad, alpha=-lr)
        return None

    def local_clip_helpers(self):
        return {n for n, d in self.local_defs.items() if _contains_clip(d)}

    def events(self, loop) -> list[Event]:
        out: list[Event] = []
        for stmt in loop.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(stmt, ast.AugAssign) and ".grad" in ast.unparse(stmt.value):
                out.append(Event("step", _span(stmt), ast.unparse(stmt)[:100]))  # p -= lr * p.grad
                continue
            for call in _calls_in_order(stmt):
                ev = self.classify(call)
                if ev is None:
                    continue
                if ev.kind == "step" and call.args and isinstance(call.args[0], ast.Name):
                    closure = self.local_defs.get(call.args[0].id)
                    if closure is not None:  # LBFGS: step(closure) runs backward inside
                        for inner in _calls_in_order(closure):
                            inner_ev = self.classify(inner)
                            if inner_ev is not None and inner_ev.kind != "step":
                                out.append(inner_ev)
                out.append(ev)
        return out


def _contains_clip(func) -> bool:
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in CLIP_NAMES:
                return True
    return False


def _loops(body):
    """Loops in ``body``, outermost first, not entering nested functions or classes."""
    stack = list(body)
    while stack:
        node = stack.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                stack.append(child)


def _resolve_model(index, scope: _Scope, text: str | None, callers, depth=0):
    """The class a model expression was built from."""
    if text is None or depth > 3:
        return None
    value = scope.assigned.get(text)
    if value is None and text not in scope.params and text in index.constants:
        value = index.constants[text].value  # a module-level global (``rnn = RNN(...)``)
    if isinstance(value, ast.Call):
        func = value.func
        if isinstance(func, ast.Name) and func.id in index.classes:
            return (ModelKind.LOCAL, func.id)
        q = index.qualname(func)
        if q:
            kind = q.rsplit(".", 1)[-1]
            if q.startswith("torch.nn.") and kind in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"):
                return (ModelKind.TORCH, kind)
            if not q.startswith("torch."):
                return (ModelKind.IMPORT, q)
        if isinstance(func, ast.Attribute) and func.attr == "to":  # model = Model().to(device)
            inner = ast.unparse(func.value)
            scope.assigned.setdefault(inner, func.value)
            return _resolve_model(index, scope, inner, callers, depth + 1)
        return None
    if isinstance(value, ast.Name):
        return _resolve_model(index, scope, value.id, callers, depth + 1)
    if text in scope.params:
        # a parameter: look at the calls of this function in the file
        for caller_scope, call in callers.get(scope.name, ()):
            arg = _argument(call, scope, text)
            if arg is not None:
                if isinstance(arg, ast.Call):  # fit(Net(), data): the argument is the construction
                    caller_scope.assigned.setdefault(ast.unparse(arg), arg)
                found = _resolve_model(index, caller_scope, ast.unparse(arg), callers, depth + 1)
                if found is not None:
                    return found
    return None


def _argument(call: ast.Call, scope: _Scope, param: str):
    names = scope.param_order if hasattr(scope, "param_order") else []
    for kw in call.keywords:
        if kw.arg == param:
            return kw.value
    if param in names:
        i = names.index(param)
        if i < len(call.args):
            return call.args[i]
    return None


def _global_clipping(tree) -> str | None:
    """A gradient hook that clamps, which clips whatever loop trains the tensors it is on.
    (A trainer's own setting, Lightning's ``gradient_clip_val``, clips only the models that
    trainer fits: :func:`framework_fits`, not the file's hand-written loops.)"""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            if name == "register_hook" and node.args:
                text = ast.unparse(node.args[0])
                if "clamp" in text or "clip" in text:
                    return f"a gradient hook that clamps (line {node.lineno})"
    return None


#: a call of ``backward`` (``loss.backward()``, ``torch.autograd.backward(...)``,
#: ``accelerator.backward(loss)``); "backward compatibility" in a docstring is not one
_BACKWARD_CALL = re.compile(r"\bbackward\s*\(")


def _mentions_backward(lines: list[str], node) -> bool:
    return any("backward" in l and _BACKWARD_CALL.search(l) for l in lines[node.lineno - 1 : node.end_lineno])


def _off(value) -> bool:
    """A clipping setting that turns clipping off: ``0``, ``0.0``, ``None``, ``False``."""
    return isinstance(value, ast.Constant) and not value.value


def framework_fits(tree: ast.Module, index) -> list[FrameworkFit]:
    """Models handed to a framework's ``Trainer`` (:data:`gradlint.graph.frameworks.TRAINERS`),
    with what clips them: Lightning only with ``gradient_clip_val``; Hugging Face by default
    (``TrainingArguments.max_grad_norm`` = 1.0) unless it is set to 0 or None."""
    assigned: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            assigned.setdefault(node.targets[0].id, node.value)
    scope = _Scope(index, tree.body, "<module>")
    fits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        q = index.qualname(node.func) or ""
        quirk = next((t for t in TRAINERS if t.matches(q)), None)
        if quirk is None:
            continue
        kws = {k.arg: k.value for k in node.keywords if k.arg}
        holder = node
        if quirk.on_args:
            holder = kws.get("args")
            if isinstance(holder, ast.Name):
                holder = assigned.get(holder.id)
        clipping, off = quirk.clips_by_default, quirk.absent
        if isinstance(holder, ast.Call):
            value = {k.arg: k.value for k in holder.keywords if k.arg}.get(quirk.setting)
            if value is not None:
                clipping = None if _off(value) else f"{quirk.setting}={ast.unparse(value)}"
                where = f"TrainingArguments({quirk.setting}=" if quirk.on_args else f"{quirk.setting}="
                off = f"with `{where}{ast.unparse(value)}{')' if quirk.on_args else ''}` (clipping off)"
        elif holder is not None:
            clipping = f"its {ast.unparse(holder)[:40]} (not resolved)"
        if quirk.on_args:
            model = kws.get("model") or (node.args[0] if node.args else None)
            model_text = ast.unparse(model) if model is not None else None
        else:
            model_text = _fitted(tree, node, assigned)
        fits.append(FrameworkFit(_span(node), quirk.framework, model_text, None, clipping, quirk.how_to, off))
    for fit in fits:
        if fit.model_text:
            fit.model = _resolve_model(index, scope, fit.model_text, {})
            if fit.model is None and fit.model_text.endswith(")"):
                call = ast.parse(fit.model_text, mode="eval").body
                scope.assigned.setdefault(fit.model_text, call)
                fit.model = _resolve_model(index, scope, fit.model_text, {})
    return fits


def _fitted(tree, trainer: ast.Call, assigned) -> str | None:
    """The model of ``trainer.fit(model, ...)`` for this Trainer construction."""
    names = {n for n, v in assigned.items() if v is trainer}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fit":
            recv = node.func.value
            if recv is trainer or (isinstance(recv, ast.Name) and recv.id in names):
                model = node.args[0] if node.args else {k.arg: k.value for k in node.keywords}.get("model")
                return ast.unparse(model) if model is not None else None
    return None


def extract(tree: ast.Module, index, lines: list[str] | None = None) -> TrainingFacts:
    """Every training loop of a parsed file (``lines``: its source, for a cheap pre-filter)."""
    text = "\n".join(lines) if lines is not None else None  # one C-speed search, not one per line
    fits = framework_fits(tree, index) if text is None or "Trainer(" in text else []
    facts = _extract(tree, index, lines, text)
    facts.fits = fits
    return facts


def _extract(tree: ast.Module, index, lines: list[str] | None = None, text: str | None = None) -> TrainingFacts:
    if text is not None and ("backward" not in text or not _BACKWARD_CALL.search(text)):
        return TrainingFacts([], None)  # most model files: no training code at all
    scopes: list[tuple[_Scope, list]] = []
    clips = text is None or any(n in text for n in CLIP_NAMES)
    clip_helpers = frozenset(n for n, f in index.functions.items() if clips and _contains_clip(f))
    module_body = [s for s in tree.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    if lines is None or any(_mentions_backward(lines, s) for s in module_body):
        scopes.append((_Scope(index, module_body, "<module>", (), clip_helpers), module_body))
    funcs = list(index.functions.values())
    for cls in index.classes.values():
        funcs += [f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for f in funcs:
        if lines is not None and not _mentions_backward(lines, f):
            continue
        params = [a.arg for a in (*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs)]
        scope = _Scope(index, f.body, f.name, params, clip_helpers)
        scope.param_order = [a.arg for a in (*f.args.posonlyargs, *f.args.args)]
        scopes.append((scope, f.body))
    found: list[tuple[_Scope, object, list]] = []
    owner = {id(f.body): f for f in funcs}
    for scope, body in scopes:
        chosen = []
        # a function that is one training step itself (``def train(x, y): ... loss.backward();
        # optimizer.step()``, called from a loop elsewhere) counts as the loop
        containers = list(_loops(body)) + ([owner[id(body)]] if id(body) in owner else [])
        for loop in containers:
            events = scope.events(loop)
            kinds = [e.kind for e in events]
            if "backward" in kinds and "step" in kinds[kinds.index("backward") :]:
                chosen.append((loop, events))
        # keep the innermost loops (an epoch loop around a batch loop is one training loop)
        for loop, events in chosen:
            if not any(o is not loop and _within(o, loop) for o, _ in chosen):
                found.append((scope, loop, events))
    if not found:
        return TrainingFacts([], None)
    # who calls which module-level function, for resolving a model passed as an argument
    callers = _callers(index, tree, funcs, clip_helpers)
    loops: list[TrainingLoop] = []
    defaults = argparse_defaults(tree) if text is None or "add_argument" in text else {}
    for scope, loop, events in found:
        optimized = None
        # the optimizer of the loop's function, else a module-level one (``optimizer = ...`` at
        # the top of a script whose ``train()`` uses it as a global)
        module_values = [stmt.value for stmt in index.constants.values() if getattr(stmt, "value", None) is not None]
        for value in [*module_values, *scope.assigned.values()]:
            if isinstance(value, ast.Call) and value.args:
                callee = ast.unparse(value.func)
                q = index.qualname(value.func) or callee
                if "optim" in q.lower() or callee.split(".")[-1] in ("SGD", "Adam", "AdamW", "RMSprop", "LBFGS"):
                    optimized = _params_owner(value.args[0]) or optimized
        model_text = optimized
        if model_text is None:
            # ``def train(model, optimizer, ...)``: the optimizer is built by the caller
            model_text = _optimized_through_callers(index, scope, events, callers)
        if model_text is None:
            for ev in events:
                if ev.kind == "clip" and ev.params_of:
                    model_text = ev.params_of
        if model_text is None:
            # manual SGD: ``for p in model.parameters(): p.data.add_(p.grad, alpha=-lr)``
            for node in ast.walk(loop):
                if isinstance(node, (ast.For, ast.AsyncFor)) and _params_owner(node.iter):
                    model_text = _params_owner(node.iter)
                    break
        tl = TrainingLoop(_span(loop), scope.name, events, optimized, None, model_text)
        tl.model = _resolve_model(index, scope, model_text, callers)
        tl.feeds_back = bool(model_text) and model_called_recurrently(loop, model_text)
        tl.length = loop_length(loop, model_text, Ints(index.constants, scope.assigned, defaults), scope.assigned)
        loops.append(tl)
    return TrainingFacts(loops, _global_clipping(tree))


def _callers(index, tree: ast.Module, funcs, clip_helpers) -> dict[str, list]:
    """Each call of a module-level function: ``name -> [(scope, call), ...]``, first every
    call seen from the module's scope, then each call again from the scope of the function
    (or method) it is in, in ``funcs`` order. One breadth-first pass (the order of
    ``ast.walk``) that remembers which of ``funcs`` each node is in."""
    module = _Scope(index, tree.body, "<module>", (), clip_helpers)
    owners = {id(f): i for i, f in enumerate(funcs)}
    seen: dict[str, list] = {}
    inner: list[dict[str, list]] = [{} for _ in funcs]
    queue = collections.deque((stmt, None) for stmt in tree.body)
    while queue:
        node, owner = queue.popleft()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in index.functions:
            seen.setdefault(node.func.id, []).append((module, node))
            if owner is not None:
                inner[owner].setdefault(node.func.id, []).append(node)
        mine = owners.get(id(node))
        if mine is not None:  # one of funcs: only its body is its scope (not decorators, defaults)
            body = {id(stmt) for stmt in node.body}
            for child in ast.iter_child_nodes(node):
                queue.append((child, mine if id(child) in body else owner))
            continue
        for child in ast.iter_child_nodes(node):
            queue.append((child, owner))
    for f, calls in zip(funcs, inner):
        if calls:
            scope = _Scope(index, f.body, f.name, (), clip_helpers)
            for name, nodes in calls.items():
                seen[name].extend((scope, n) for n in nodes)
    return seen


def _optimized_through_callers(index, scope: _Scope, events, callers) -> str | None:
    """For a step function whose optimizer is a parameter: the parameter that receives the model
    that optimizer updates, at a call of the function in the file (``train(args, model, device,
    loader, optimizer)`` after ``optimizer = optim.Adadelta(model.parameters())``)."""
    step = next((e for e in events if e.kind == "step"), None)
    if step is None or not getattr(scope, "param_order", None):
        return None
    try:
        call = ast.parse(step.text, mode="eval").body
    except SyntaxError:
        return None
    if not (
        isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name)
    ):
        return None
    opt = call.func.value.id
    if opt not in scope.params:
        return None
    for caller_scope, site in callers.get(scope.name, ()):
        arg = _argument(site, scope, opt)
        if not isinstance(arg, ast.Name):
            continue
        value = caller_scope.assigned.get(arg.id)
        if value is None and arg.id in index.constants:
            value = getattr(index.constants[arg.id], "value", None)
        owner = _params_owner(value.args[0]) if isinstance(value, ast.Call) and value.args else None
        if owner is None:
            continue
        for param in scope.param_order:
            given = _argument(site, scope, param)
            if given is not None and ast.unparse(given) == owner:
                return param
    return None


def _within(inner, outer) -> bool:
    return inner is not outer and any(n is inner for n in ast.walk(outer))
