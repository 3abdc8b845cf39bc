"""The libcst view of one file that rule fixers edit (:class:`CstSource`): the module, its
positions and parents, and helpers that locate nodes by position, insert statements and spell
names through the file's own imports. Built by :mod:`gradlint.fixes` for the file being fixed.

libcst is imported inside functions only, so importing this module stays cheap.
"""

from __future__ import annotations

from functools import lru_cache

from gradlint.diagnostics import Diagnostic


@lru_cache(maxsize=1)
def _replacer_class():
    import libcst

    class _Replacer(libcst.CSTTransformer):
        """Rebuilds a tree, replacing the nodes (of the original tree) named in ``table``."""

        def __init__(self, table):
            super().__init__()
            self.table = table

        def on_leave(self, original_node, updated_node):
            change = self.table.get(id(original_node))
            return updated_node if change is None else change(updated_node)

    return _Replacer


class CstSource:
    """One file parsed by libcst, with what fixers need to locate and rewrite nodes.

    Nodes are located by ``PositionProvider`` ranges (1-based lines, 0-based character
    columns, end exclusive; parentheses around an expression excluded, as in ``ast``).
    """

    def __init__(self, text: str):
        import libcst
        from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

        self.text = text
        wrapper = MetadataWrapper(libcst.parse_module(text))
        self.module = wrapper.module
        if self.module.code != text:  # libcst is lossless; anything else is not ours to edit
            raise ValueError("libcst does not round-trip this file")
        self.positions = wrapper.resolve(PositionProvider)
        self.parents = wrapper.resolve(ParentNodeProvider)

    # ------------------------------------------------------------ reading
    def code(self, node) -> str:
        return self.module.code_for_node(node)

    def node_at(self, where, kinds=None):
        """The innermost node of one of ``kinds`` whose range contains ``where``
        (``(line, column, end_line, end_column)``, 1-based characters, end exclusive): the
        node with exactly that range when there is one. None when there is none."""
        import libcst

        kinds = kinds or (libcst.CSTNode,)
        line, column, end_line, end_column = where
        want_start, want_end = (line, column - 1), (end_line, end_column - 1)
        best = best_range = None
        for node, r in self.positions.items():
            if not isinstance(node, kinds):
                continue
            start, end = (r.start.line, r.start.column), (r.end.line, r.end.column)
            if not (start <= want_start and want_end <= end):
                continue
            # the nodes that contain ``where`` are nested: keep the innermost (a call
            # rather than the expression statement of the same range)
            if best is None or (
                best_range[0] <= start
                and end <= best_range[1]
                and ((start, end) != best_range or self.contains(best, node))
            ):
                best, best_range = node, (start, end)
        return best

    def node_for(self, diagnostic: Diagnostic, kinds=None):
        """The node a diagnostic's own span points at."""
        return self.node_at((diagnostic.line, diagnostic.column, diagnostic.end_line, diagnostic.end_column), kinds)

    def parent(self, node):
        return self.parents.get(node)

    def ancestors(self, node):
        node = self.parents.get(node)
        while node is not None:
            yield node
            node = self.parents.get(node)

    def enclosing(self, node, kinds):
        for a in self.ancestors(node):
            if isinstance(a, kinds):
                return a
        return None

    def before(self, a, b) -> bool:
        """``a`` ends at or before the start of ``b``."""
        ra, rb = self.positions[a], self.positions[b]
        return (ra.end.line, ra.end.column) <= (rb.start.line, rb.start.column)

    def contains(self, outer, inner) -> bool:
        return any(x is outer for x in self.ancestors(inner))

    def statement_of(self, node):
        """``(small_statement, container)`` holding ``node``: the simple statement it is part
        of, and the ``SimpleStatementLine``/``SimpleStatementSuite`` around it. None when the
        node sits in a compound statement's header (``if x.backward():``)."""
        import libcst

        small = node if isinstance(node, libcst.BaseSmallStatement) else None
        if small is None:
            for a in self.ancestors(node):
                if isinstance(a, libcst.BaseSmallStatement):
                    small = a
                    break
                if isinstance(a, (libcst.BaseCompoundStatement, libcst.Lambda)):
                    return None
        if small is None:
            return None
        container = self.parent(small)
        if not isinstance(container, (libcst.SimpleStatementLine, libcst.SimpleStatementSuite)):
            return None
        return small, container

    def calls_in(self, node, attr: str) -> list:
        """Calls of a method or function named ``attr`` inside ``node``."""
        import libcst

        found = []
        for n in self.positions:
            if isinstance(n, libcst.Call) and self._callee_name(n) == attr and (n is node or self.contains(node, n)):
                found.append(n)
        return found

    @staticmethod
    def _callee_name(call) -> str | None:
        import libcst

        if isinstance(call.func, libcst.Attribute):
            return call.func.attr.value
        if isinstance(call.func, libcst.Name):
            return call.func.value
        return None

    # ------------------------------------------------------------ names and imports
    def bindings(self, near) -> list[tuple[str, str]]:
        """``(name, qualified name)`` for the imports visible from ``near``, in source order:
        ``import torch as T`` -> ``("T", "torch")``, ``import torch.nn`` -> ``("torch", "torch")``,
        ``from torch.nn.utils import clip_grad_norm_ as clip`` ->
        ``("clip", "torch.nn.utils.clip_grad_norm_")``."""
        import libcst
        from libcst.helpers import get_full_name_for_node

        scopes = (libcst.FunctionDef, libcst.ClassDef, libcst.Lambda)
        near_scope = self.enclosing(near, scopes)
        found = []
        for node in self.positions:
            if not isinstance(node, (libcst.Import, libcst.ImportFrom)):
                continue
            scope = self.enclosing(node, scopes)
            if scope is not None:
                # a function's own imports (before the use); a class body's only in that body
                if scope is not near_scope and not (
                    isinstance(scope, libcst.FunctionDef) and self.contains(scope, near)
                ):
                    continue
            if (scope is not None or near_scope is None) and not self.before(node, near):
                continue
            pairs = []
            if isinstance(node, libcst.Import):
                for alias in node.names:
                    full = get_full_name_for_node(alias.name)
                    if not full:
                        continue
                    if alias.asname is not None and isinstance(alias.asname.name, libcst.Name):
                        pairs.append((alias.asname.name.value, full))
                    else:
                        head = full.split(".")[0]
                        pairs.append((head, head))
            else:
                if node.relative or node.module is None or isinstance(node.names, libcst.ImportStar):
                    continue
                module = get_full_name_for_node(node.module)
                for alias in node.names:
                    if not isinstance(alias.name, libcst.Name):
                        continue
                    obj = alias.name.value
                    name = (
                        alias.asname.name.value
                        if alias.asname is not None and isinstance(alias.asname.name, libcst.Name)
                        else obj
                    )
                    pairs.append((name, f"{module}.{obj}"))
            r = self.positions[node]
            found.extend(((r.start.line, r.start.column), p) for p in pairs)
        found.sort(key=lambda x: x[0])
        return [p for _, p in found]

    def spell(self, qualified: str, near, prefer=None, same_as=(), fallback=None):
        """How to write ``qualified`` (``torch.nn.utils.clip_grad_norm_``) at ``near`` through
        the file's own imports: returns ``(text, import_to_add)`` where ``import_to_add`` is
        None or ``(module, obj)`` for :meth:`add_import`.

        ``prefer``: qualified prefixes to try, in order (default: longest first);
        ``same_as``: other qualified names of the same object; ``fallback``: the import to add
        when nothing fits (default ``import <top package>``)."""
        parts = qualified.split(".")
        prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        order = list(prefer) if prefer else prefixes
        bindings = self.bindings(near)
        for exact in (qualified, *same_as):
            for name, q in bindings:
                if q == exact:
                    return name, None
        for prefix in order:
            if prefix not in prefixes:
                continue
            for name, q in bindings:
                if q == prefix:
                    return name + qualified[len(prefix) :], None
        if fallback is None:
            return qualified, (parts[0], None)
        module, obj = fallback
        if obj is None:
            return qualified, (module, None)
        return obj + qualified[len(f"{module}.{obj}") :], (module, obj)

    @staticmethod
    def add_import(module, item):
        """``module`` with ``import <mod>`` / ``from <mod> import <obj>`` added after the
        file's first import block (after a docstring and ``__future__`` imports), unless it
        is there already (libcst's ``AddImportsVisitor``)."""
        if item is None:
            return module
        from libcst.codemod import CodemodContext
        from libcst.codemod.visitors import AddImportsVisitor, ImportItem

        name, obj = item
        return module.visit(AddImportsVisitor(CodemodContext(), [ImportItem(name, obj)]))

    # ------------------------------------------------------------ building and rewriting
    def statement(self, code: str):
        """One statement in this file's conventions (line endings)."""
        import libcst

        return libcst.parse_statement(code, config=self.module.config_for_parsing)

    def expression(self, code: str):
        import libcst

        return libcst.parse_expression(code, config=self.module.config_for_parsing)

    def insert_after(self, anchor, statements, table=None) -> dict | None:
        """Schedule ``statements`` (``SimpleStatementLine`` nodes) right after the simple
        statement holding ``anchor``, in the same block; returns the replacement table for
        :meth:`rewrite` (``table`` extended), or None where they cannot go (the statement
        returns or raises, or sits in a compound statement's header)."""
        import libcst

        found = self.statement_of(anchor)
        if found is None:
            return None
        small, container = found
        if isinstance(small, (libcst.Return, libcst.Raise, libcst.Continue, libcst.Break)):
            return None
        table = {} if table is None else table
        if isinstance(container, libcst.SimpleStatementLine) and container.body[-1] is small:
            previous = table.get(id(container))

            def add_lines(updated):
                updated = updated if previous is None else previous(updated)
                if isinstance(updated, libcst.FlattenSentinel):
                    return libcst.FlattenSentinel([*updated.nodes, *statements])
                return libcst.FlattenSentinel([updated, *statements])

            table[id(container)] = add_lines
        else:  # ``a.backward(); opt.step()`` or ``if c: a.backward()``: stay on the line
            smalls = [s.with_changes(semicolon=libcst.MaybeSentinel.DEFAULT) for line in statements for s in line.body]
            table[id(small)] = lambda updated: libcst.FlattenSentinel([updated, *smalls])
        return table

    def rewrite(self, table: dict):
        """The module with each original node ``n`` replaced by ``table[id(n)](updated_n)``
        (a node, ``libcst.RemovalSentinel.REMOVE`` or a ``libcst.FlattenSentinel``)."""
        if not table:
            return self.module
        return self.module.visit(_replacer_class()(table))
