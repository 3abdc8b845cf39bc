"""The symbol table of one file: its imports, constants, functions and classes, and which classes are modules."""

from __future__ import annotations

import ast
import builtins

from gradlint.graph.interp_common import _torch_kind
from gradlint.graph.recurrence import forward_is_recurrent


class FileIndex:
    """Names defined and imported at module level of one file."""

    def __init__(self, tree: ast.Module):
        self.text_cache: dict[int, str] = {}
        #: id(expression node) -> the activation it spells out, or None (see formulas)
        self.formula_cache: dict[int, tuple | None] = {}
        #: classes of this file whose instances contain nn.RNN/LSTM/GRU or their cells
        self.recurrent_classes: set[str] = set()
        #: (class, arguments, loop context) -> (interpreted BlockSpec, classes it built, unknowns)
        self.instances: dict = {}
        #: (function applied, module key) -> its effect (see InitMixin.apply_to_modules)
        self.apply_effects: dict = {}
        #: models whose build failed (a builder bug): (name, span, message), for GL002
        self.build_errors: list = []
        self._qualname_cache: dict[int, str | None] = {}
        #: name or qualified name -> its ClassRef/FuncRef (frozen values: one object serves every use)
        self.refs: dict[str, object] = {}
        self._mro_cache: dict[int, tuple[ast.ClassDef, ...]] = {}
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
        self.owner_of = {
            id(f): c
            for c in self.classes.values()
            for f in c.body
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        }

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
            if (
                len(self.star_imports) == 1
                and expr.id not in self.classes
                and expr.id not in self.functions
                and expr.id not in self.constants
                and not hasattr(builtins, expr.id)
            ):
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
            if name not in result and any(isinstance(s, ast.FunctionDef) and s.name == "forward" for s in cls.body):
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

    def same_file_mro(self, cls: ast.ClassDef) -> tuple[ast.ClassDef, ...]:
        """``cls`` and its base classes defined in this file, nearest first (depth-first, as
        single inheritance resolves; each class once; at most 10 levels). Computed once per
        class, without a recursive closure (one would make a reference cycle that keeps the
        whole file's index alive until the cyclic collector runs)."""
        found = self._mro_cache.get(id(cls))
        if found is not None:
            return found
        out: list[ast.ClassDef] = []
        seen: set[int] = set()
        stack = [(cls, 0)]
        while stack:
            c, depth = stack.pop()
            if id(c) in seen or depth > 10:
                continue
            seen.add(id(c))
            out.append(c)
            bases = [self.classes[b.id] for b in c.bases if isinstance(b, ast.Name) and b.id in self.classes]
            stack.extend((b, depth + 1) for b in reversed(bases))
        found = self._mro_cache[id(cls)] = tuple(out)
        return found

    def method(self, cls: ast.ClassDef, name: str):
        """The method ``name`` of ``cls`` or of its nearest same-file base that defines it."""
        for c in self.same_file_mro(cls):
            for stmt in c.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                    return stmt
        return None

    def class_attr(self, cls: ast.ClassDef, name: str):
        """The assignment of class attribute ``name`` in ``cls`` or its nearest same-file base."""
        for c in self.same_file_mro(cls):
            for stmt in c.body:
                if isinstance(stmt, ast.Assign):
                    if any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                        return stmt
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    if stmt.target.id == name and stmt.value is not None:
                        return stmt
        return None
