"""Abstract values the graph builder's interpreter works with.

The builder evaluates ``__init__`` and ``forward`` symbolically: numbers and strings
stay Python values, constructed layers become *specs*, tensors flowing through
``forward`` become :class:`Flow` (the set of graph nodes that produced them), and
anything else is :data:`UNKNOWN`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from gradlint.graph.model import Span
from gradlint.vocab import Category


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:  # pragma: no cover - guards accidental truth tests
        raise TypeError("UNKNOWN has no truth value")


UNKNOWN = _Unknown()


class Spec:
    """Something that is (or holds) an nn.Module."""

    span: Span
    inits: dict

    def children(self) -> list[tuple[str, "Spec"]]:
        return []


@dataclass(eq=False)
class LeafSpec(Spec):
    kind: str
    category: str
    span: Span
    activation: str | None = None
    params: dict = field(default_factory=dict)
    inits: dict = field(default_factory=dict)
    repeat: tuple = ()


@dataclass(eq=False)
class ParamSpec(Spec):
    """A raw ``nn.Parameter`` owned by a module."""

    span: Span
    shape: tuple = ()
    inits: dict = field(default_factory=dict)
    repeat: tuple = ()


@dataclass(eq=False)
class UnknownSpec(Spec):
    text: str
    span: Span
    reason: str
    inits: dict = field(default_factory=dict)
    repeat: tuple = ()


@dataclass(eq=False)
class SeqSpec(Spec):
    """nn.Sequential, nn.ModuleList or nn.ModuleDict: ordered, named children."""

    kind: str  # Sequential, ModuleList, ModuleDict
    span: Span
    items: list = field(default_factory=list)  # list of [name, spec]
    inits: dict = field(default_factory=dict)

    def children(self):
        return [(k, v) for k, v in self.items]

    def get(self, key):
        for k, v in self.items:
            if k == str(key):
                return v
        return None


@dataclass(eq=False)
class BlockSpec(Spec):
    """An instance of a module class defined in the analysed file."""

    cls: ast.ClassDef
    span: Span
    attrs: dict = field(default_factory=dict)  # registered submodules / parameters, in order
    values: dict = field(default_factory=dict)  # other attributes (constants, flags)
    prov: dict = field(default_factory=dict)  # attribute -> Provenance of its number
    seq: SeqSpec | None = None  # when the class extends nn.Sequential / nn.ModuleList
    torch_base: str | None = None
    inits: dict = field(default_factory=dict)
    repeat: tuple = ()

    def children(self):
        items = [(k, v) for k, v in self.attrs.items() if isinstance(v, Spec)]
        if self.seq is not None:
            items = self.seq.children() + items
        return items


@dataclass(frozen=True)
class ParamRef:
    owner: Spec
    name: str  # weight, bias, weight_ih_l0, ...

    @property
    def ndim(self) -> int | None:
        owner = self.owner
        if isinstance(owner, ParamSpec):
            return len(owner.shape) if owner.shape else None
        if isinstance(owner, LeafSpec):
            if self.name.startswith("bias"):
                return 1
            if owner.category == Category.NORM:
                return 1
            if owner.category in (Category.WEIGHTED, Category.RECURRENT):
                return 2
        return None


@dataclass(frozen=True)
class ClassRef:
    """A class object: ``torch.nn.Linear`` or a class of the analysed file."""

    qualname: str
    local: ast.ClassDef | None = None


@dataclass(frozen=True)
class FuncRef:
    node: ast.AST  # FunctionDef or Lambda
    bound: object = None  # the BlockSpec for methods called through self
    qualname: str | None = None  # for torch functions passed around (F.relu)


@dataclass(frozen=True)
class PartialRef:
    target: object
    args: tuple
    kwargs: tuple


@dataclass(frozen=True)
class Flow:
    """A tensor in forward: the set of graph node ids that produced it."""

    producers: frozenset


@dataclass(frozen=True)
class Iterated:
    """A lazily described iterable we can unroll: modules(), named_parameters(), ..."""

    kind: str
    owner: object
