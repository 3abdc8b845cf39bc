"""Recurrences written by hand: a loop that feeds a state back through a layer.

``nn.RNN``/``LSTM``/``GRU`` are recurrent by their type. Tutorials and papers' code just as
often write the recurrence out, in a model's ``forward``::

    for t in range(x.size(0)):
        h = torch.tanh(self.W(x[t]) + self.U(h))

    combined = torch.cat((x[t], hidden), 1)     # the char-RNN of the PyTorch tutorials
    hidden = self.i2h(combined)

or in the training code, calling a one-step model in a loop::

    for i in range(line_tensor.size(0)):
        output, hidden = rnn(line_tensor[i], hidden)

Backpropagation through time then multiplies the recurrent Jacobian once per step, as for
the library cells. This module finds both shapes on the syntax tree.
"""

from __future__ import annotations

import ast


def _names(expr) -> set[str]:
    return {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}


def _names_and_layer(expr) -> tuple[set[str], bool]:
    """The names ``expr`` reads, and whether it applies a layer (``self.W(...)``): one walk."""
    names, layer = set(), False
    for n in ast.walk(expr):
        if isinstance(n, ast.Name):
            names.add(n.id)
        elif (
            not layer
            and isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name)
            and n.func.value.id == "self"
        ):
            layer = True
    return names, layer


def loop_feeds_back_through_a_layer(loop) -> bool:
    """In ``loop``'s body, a name assigned from a layer applied to something that depends on
    that same name at the start of the iteration."""
    deps: dict[str, set[str]] = {}  # name -> the names it depends on at the start of the iteration
    through: dict[str, bool] = {}  # name -> whether a layer lies on that dependency
    for stmt in _statements(loop.body):
        if not isinstance(stmt, ast.Assign):
            continue
        value_names, layered = _names_and_layer(stmt.value)
        closure = set()
        for v in value_names:
            if v in deps:
                closure |= deps[v]
                layered = layered or through[v]
            else:
                closure.add(v)
        for t in stmt.targets:
            for target in (
                [t] if isinstance(t, ast.Name) else [e for e in getattr(t, "elts", []) if isinstance(e, ast.Name)]
            ):
                name = target.id
                if name in closure and layered:
                    return True
                deps[name], through[name] = closure, layered
    return False


def state_layers(loop) -> set[str]:
    """The layers a hand-written recurrence passes its state through: ``U`` in
    ``h = torch.tanh(self.W(x[t]) + self.U(h))``, ``i2h`` in ``h = self.i2h(torch.cat((x[t], h), 1))``
    (``self.<attribute>`` calls whose arguments read a name the loop feeds back)."""
    fed = set()
    deps: dict[str, set[str]] = {}
    for stmt in _statements(loop.body):
        if not isinstance(stmt, ast.Assign):
            continue
        closure = set()
        for v in _names(stmt.value):
            closure |= deps.get(v, {v})
        for t in stmt.targets:
            for target in (
                [t] if isinstance(t, ast.Name) else [e for e in getattr(t, "elts", []) if isinstance(e, ast.Name)]
            ):
                if target.id in closure:
                    fed.add(target.id)
                deps[target.id] = closure
    out = set()
    for stmt in _statements(loop.body):
        for call in ast.walk(stmt):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id == "self"
            ):
                continue
            read = set()
            for a in [*call.args, *(k.value for k in call.keywords)]:
                for v in _names(a):
                    read |= deps.get(v, {v}) | {v}
            if read & fed:
                out.add(call.func.attr)
    return out


def forward_state_layers(cls: ast.ClassDef) -> frozenset[str]:
    """The attributes of ``cls`` its ``forward``'s hand-written recurrences pass the state through."""
    forward = next(
        (f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == "forward"), None
    )
    if forward is None:
        return frozenset()
    out: set[str] = set()
    for loop in _loops(forward.body):
        if loop_feeds_back_through_a_layer(loop):
            out |= state_layers(loop)
    return frozenset(out)


def _statements(body):
    """``body``'s statements in source order, nested blocks included (no expressions)."""
    for stmt in body:
        yield stmt
        for field in ("body", "orelse", "finalbody"):
            yield from _statements(s for s in getattr(stmt, field, ()) if isinstance(s, ast.stmt))
        for h in getattr(stmt, "handlers", ()):
            yield from _statements(h.body)


def forward_is_recurrent(cls: ast.ClassDef) -> bool:
    """The class's ``forward`` holds a loop with a hand-written recurrence."""
    forward = next(
        (f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == "forward"), None
    )
    if forward is None:
        return False
    return any(loop_feeds_back_through_a_layer(loop) for loop in _loops(forward.body))


_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_COMPOUND = (ast.If, ast.With, ast.AsyncWith, ast.Try, *_LOOPS)


def _loops(body):
    """The loops among ``body``'s statements, nested ones too (statements only: cheap)."""
    for stmt in body:
        if not isinstance(stmt, _COMPOUND):
            continue
        if isinstance(stmt, _LOOPS):
            yield stmt
        yield from _loops(stmt.body)
        yield from _loops(getattr(stmt, "orelse", ()))
        if isinstance(stmt, ast.Try):
            yield from _loops(stmt.finalbody)
            for h in stmt.handlers:
                yield from _loops(h.body)


def model_called_recurrently(node, model: str) -> bool:
    """Under ``node``, a loop calls ``model(...)`` with a state it assigns from that call:
    ``output, hidden = rnn(x[i], hidden)``."""
    for loop in ast.walk(node):
        if not isinstance(loop, (ast.For, ast.While)):
            continue
        for stmt in ast.walk(ast.Module(body=list(loop.body), type_ignores=[])):
            if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
                continue
            call = stmt.value
            if not (isinstance(call.func, ast.Name) and call.func.id == model):
                continue
            targets = set()
            for t in stmt.targets:
                targets |= _names(t)
            fed = set()
            for a in [*call.args, *(k.value for k in call.keywords)]:
                fed |= _names(a)
            if targets & fed:
                return True
    return False
