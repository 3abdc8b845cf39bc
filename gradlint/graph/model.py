"""The layer graph: typed records and the facade rules query.

A :class:`ModelGraph` describes one ``nn.Module`` subclass: the layers it owns
(:class:`Layer`), the forward dataflow between their applications (:class:`Node`,
edges in a networkx ``DiGraph``), and what the builder could not resolve
(:class:`Unknown`). Rules use the methods of :class:`ModelGraph`; they never read
networkx attributes directly.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterator

import networkx as nx

from gradlint.graph import catalog
from gradlint.vocab import WEIGHT_CARRYING, Category, Vocab


@dataclass(frozen=True)
class Span:
    """A source range: 1-based lines, 0-based UTF-8 byte columns (as ``ast`` gives them)."""

    line: int
    col: int
    end_line: int
    end_col: int

    @classmethod
    def of(cls, node) -> "Span":
        # kept on the node: the builder asks for the same nodes' spans again and again (a
        # frozen dataclass costs a microsecond to make); a syntax tree's locations never change
        span = node.__dict__.get("_gradlint_span")
        if span is None:
            span = node._gradlint_span = cls(
                node.lineno,
                node.col_offset,
                getattr(node, "end_lineno", None) or node.lineno,
                getattr(node, "end_col_offset", None) or node.col_offset,
            )
        return span


@dataclass(frozen=True)
class Provenance:
    """Where a resolved number came from: ``DEPTH = 8`` on line 4."""

    name: str
    value: object
    line: int

    def __str__(self) -> str:
        return f"{self.name} = {self.value!r}, line {self.line}"


@dataclass(frozen=True)
class Init:
    """An initializer applied to one parameter of a layer."""

    scheme: str  # xavier_uniform, kaiming_normal, normal, uniform, constant, zeros, ones, default, ...
    text: str  # the source text of the call, or a description for defaults
    span: Span | None
    via: str  # inline, apply, modules-loop, parameters-loop, tensor-method, parameter-factory, default
    value: float | None = None  # for constant schemes
    std: float | None = None  # for normal-like schemes, when known
    bound: float | None = None  # for uniform schemes, when known (symmetric bound)
    gain: float | None = None  # explicit ``gain=`` or nonlinearity gain, when given
    mode: str | None = None  # kaiming's ``fan_in`` / ``fan_out``
    callee: str | None = None  # source text of the called function (``nn.init.constant_``)
    target: str | None = None  # source text of the initialized tensor (``m.weight``)
    mean: float | None = None  # the distribution's mean, when known (``uniform_(0, 1)``: 0.5)
    #: a factor applied after initializing (``w.data.mul_(0.1)``, ``w *= 2``, ``w.div_(4)``)
    scale: float = 1.0

    @property
    def is_constant(self) -> bool:
        return self.scheme in catalog.CONSTANT_SCHEMES

    @property
    def is_default(self) -> bool:
        return self.scheme == "default"


@dataclass
class Layer:
    """One module (or raw parameter) owned by the model, by qualified name."""

    name: str  # qualified: "net.0", "blocks.3.fc"
    kind: str  # "Linear", "Sigmoid", "Parameter", or the unresolved callee text
    category: str  # weighted, recurrent, norm, activation, other, parameter, unknown
    span: Span
    activation: str | None = None
    params: dict = field(default_factory=dict)  # in_features, out_features, nonlinearity, ...
    inits: dict = field(default_factory=dict)  # parameter name -> Init
    repeat: tuple = ()  # Provenance of the loop counts that produced this layer
    functional: bool = False  # an activation/op written as a function call in forward

    @property
    def receptive_field(self) -> int:
        """Kernel elements of a convolution (1 for other layers); 0 when unknown."""
        if not self.kind.startswith(("Conv", "LazyConv")):
            return 1
        dims = 1 if "1d" in self.kind else 3 if "3d" in self.kind else 2
        k = self.params.get("kernel_size")
        if isinstance(k, int) and not isinstance(k, bool):
            return k**dims
        if isinstance(k, tuple) and all(isinstance(x, int) for x in k):
            out = 1
            for x in k:
                out *= x
            return out
        return 0

    @property
    def groups(self) -> int | None:
        """A convolution's groups (1 by default); None when given but not resolved."""
        groups = self.params.get("groups", 1)
        if isinstance(groups, int) and not isinstance(groups, bool) and groups > 0:
            return groups
        return None

    def _fan(self, keys, grouped: bool) -> int | None:
        for key in keys:
            value = self.params.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                groups = self.groups if grouped else 1
                rf = self.receptive_field
                return value * rf // groups if rf and groups else None
        return None

    @property
    def fan_in(self) -> int | None:
        """As ``torch.nn.init`` computes it: ``in / groups * kernel`` elements."""
        return self._fan(("in_features", "in_channels", "input_size", "embed_dim"), True)

    @property
    def fan_out(self) -> int | None:
        """As ``torch.nn.init`` computes it: ``out * kernel`` (not divided by groups)."""
        return self._fan(("out_features", "out_channels", "hidden_size", "embed_dim"), False)


class UnknownKind(Vocab):
    """What kind of thing the builder (or the flow model) could not resolve."""

    CONDITION = "condition"  # an ``if`` / conditional expression: both branches are kept
    LOOP = "loop"  # a loop or comprehension count: the body is run once
    ARGUMENT = "argument"  # a constructor argument with no value
    VALUE = "value"  # an attribute, call or module gradlint cannot see
    INIT = "init"  # the target of an initializer
    INHERITED = "inherited"  # a forward/__init__ from a base class gradlint cannot see
    BUDGET = "budget"  # the analysis stopped at a bound: the graph is truncated
    FLOW = "flow"  # the flow model could not follow the magnitudes


@dataclass(frozen=True)
class Unknown:
    """Something the builder could not resolve; rules lower their confidence."""

    reason: str
    span: Span | None
    kind: UnknownKind = UnknownKind.VALUE


@dataclass(frozen=True)
class Node:
    """One step of the forward dataflow."""

    id: int
    op: str  # input, layer, merge, scale, unknown, output
    layer: str | None = None  # qualified layer name for op == layer (and the factor of a scale)
    merge: str | None = None  # add, cat, mul for op == merge
    span: Span | None = None  # where it happens in forward
    #: for op == scale by a constant: the factor (``0.1 * f(x)``, ``f(x) / 4`` gives 0.25)
    factor: float | None = None


class ModelGraph:
    """Facade over the networkx graph of one model class."""

    def __init__(self, name: str, path: str, span: Span):
        self.name = name
        self.path = path
        self.span = span
        self._layers: dict[str, Layer] = {}
        self._g = nx.DiGraph()
        self._nodes: dict[int, Node] = {}
        self.unknowns: list[Unknown] = []
        self.has_forward = False
        self.is_root = True  # no other class of the file instantiates this one
        self.instantiates: frozenset[str] = frozenset()  # same-file classes built inside
        #: this class is expanded inside another model of the file, where rules see it in context
        self.checked_in_context = False
        #: for the graph of a factory function (``vgg11()``): the class of the model it returns
        self.factory_of: str | None = None
        #: for a model as a script configures it (``model = Net(...)`` and what follows): that line
        self.site_span: Span | None = None
        #: ... and the statements that build and configure it, as one synthetic ``def NAME():``
        #: returning the model (``gradlint.graph.sites``), which ``--dynamic`` runs to build it
        self.site_func = None
        #: the site is the configuration's (constructor kwargs of ``[tool.gradlint.dynamic.models]``)
        self.from_config = False
        #: the sequence length the file's training code runs this model over, when it says:
        #: ``(steps, gradlint.graph.seqlen.SeqLength)`` (set by ``training.attach_lengths``)
        self.sequence: tuple | None = None
        #: the layers (attributes of the model) a recurrence written out in its forward passes
        #: the state through: ``U`` in ``h = torch.tanh(self.W(x[t]) + self.U(h))``
        self.state_layers: frozenset[str] = frozenset()

    # ------------------------------------------------------------ building
    def add_layer(self, layer: Layer) -> None:
        self._layers[layer.name] = layer

    def add_node(self, node: Node, inputs=()) -> Node:
        self._order = None
        self._nodes[node.id] = node
        self._g.add_node(node.id)
        for src in sorted(inputs):
            if src != node.id:
                self._g.add_edge(src, node.id)
        return node

    def add_unknown(self, reason: str, span: Span | None, kind: UnknownKind = UnknownKind.VALUE) -> None:
        item = Unknown(reason, span, kind)
        seen = self.__dict__.setdefault("_unknown_set", set())
        if item not in seen:  # a set: a big model meets the same unknown many times
            seen.add(item)
            self.unknowns.append(item)

    # ------------------------------------------------------------ layers
    def layers(self, category: str | None = None) -> list[Layer]:
        return [l for l in self._layers.values() if category is None or l.category == category]

    def layer(self, name: str) -> Layer:
        return self._layers[name]

    def init_of(self, layer: Layer, param: str = "weight") -> Init | None:
        """The initializer of ``layer.param``: explicit, else PyTorch's default, else None."""
        init = layer.inits.get(param)
        if init is not None:
            return init
        if layer.category in (Category.WEIGHTED, Category.RECURRENT, Category.NORM):
            return Init("default", f"PyTorch's default init of nn.{layer.kind}", None, "default")
        return None

    # ------------------------------------------------------------ dataflow
    def nodes(self) -> list[Node]:
        """Forward nodes in forward (topological) order (a shared list: do not change it)."""
        order = self.__dict__.get("_order")
        if order is None:
            order = self._order = [self._nodes[i] for i in sorted(self._nodes)]
        return order

    def successors(self, node: Node) -> list[Node]:
        return [self._nodes[i] for i in sorted(self._g.successors(node.id))]

    def predecessors(self, node: Node) -> list[Node]:
        return [self._nodes[i] for i in sorted(self._g.predecessors(node.id))]

    def applications(self, layer: Layer) -> list[Node]:
        """The forward nodes that apply ``layer`` (a parameter used as a scale is not applied)."""
        return [n for n in self.nodes() if n.op == "layer" and n.layer == layer.name]

    def layer_of(self, node: Node) -> Layer | None:
        return self._layers.get(node.layer) if node.layer else None

    def category_of(self, node: Node) -> str:
        if node.op == "layer":
            layer = self.layer_of(node)
            return layer.category if layer else Category.UNKNOWN
        return node.op

    def activation_of(self, node: Node) -> str | None:
        layer = self.layer_of(node)
        return layer.activation if layer and layer.category == Category.ACTIVATION else None

    def is_skip_merge(self, node: Node) -> bool:
        """An add merge where one input also reaches the other: ``x + f(x)``, ``out += identity``.

        The identity (or shortcut) path carries the gradient past the branch.
        """
        if node.op != "merge" or node.merge != "add":
            return False
        preds = list(self._g.predecessors(node.id))
        if len(preds) < 2:
            return False
        # one input reaches another, or the first input shares an ancestor with another (a
        # shortcut with its own layers, such as a downsample: the branches fork from one point)
        first = 1  # the first input's bit
        for _, mask, pred_bit in self._walk_up(preds):
            if mask & ~pred_bit and pred_bit:  # an input reaching another input
                return True
            if mask & first and mask & ~first:
                return True
        return False

    def _walk_up(self, preds: list[int]):
        """The ancestors of ``preds`` (themselves included), latest first, each with the set of
        inputs it reaches (a bit mask, bit ``i`` for ``preds[i]``; complete when it is yielded:
        ids follow the forward order, so every successor comes first) and its own bit when it is
        one of ``preds`` (else 0). A caller that has its answer stops early, so a residual
        branch costs its own length, not the whole network's ancestry."""
        masks: dict[int, int] = {}
        own: dict[int, int] = {}
        for i, p in enumerate(preds):
            masks[p] = masks.get(p, 0) | (1 << i)
            own[p] = own.get(p, 0) | (1 << i)
        heap = [-p for p in masks]
        heapq.heapify(heap)
        pred = self._g.pred
        while heap:
            nid = -heapq.heappop(heap)
            mask = masks[nid]
            yield nid, mask, own.get(nid, 0)
            for up in pred[nid]:
                if up in masks:
                    masks[up] |= mask
                else:
                    masks[up] = mask
                    heapq.heappush(heap, -up)

    def branch_nodes(self, merge: Node) -> list[Node]:
        """The nodes between an add's fork and the add itself: its residual branch (and, for a
        shortcut with layers of its own, the shortcut's layers), in forward order. Empty when
        the add's inputs share no ancestor."""
        cache = self.__dict__.setdefault("_branch_cache", {})
        found = cache.get(merge.id)
        if found is None:
            preds = list(self._g.predecessors(merge.id))
            found = []
            if len(preds) >= 2:
                full = (1 << len(preds)) - 1
                above: set[int] = set()  # ancestors of the merge later than the fork
                fork = None
                for nid, mask, _ in self._walk_up(preds):
                    if mask == full:  # the latest common ancestor: the fork
                        fork = nid
                        break
                    above.add(nid)
                if fork is not None:
                    # of those, the ones the fork reaches (every path from the fork to an
                    # ancestor of the merge stays among the merge's ancestors)
                    members, stack, succ = set(), [fork], self._g.succ
                    while stack:
                        for nxt in succ[stack.pop()]:
                            if nxt in above and nxt not in members:
                                members.add(nxt)
                                stack.append(nxt)
                    found = [self._nodes[i] for i in sorted(members)]
            cache[merge.id] = found
        return found

    def is_gate(self, node: Node) -> bool:
        """A saturating activation whose output only scales another tensor (``x * sigmoid(g)``)."""
        succ = self.successors(node)
        return bool(succ) and all(s.op == "merge" and s.merge == "mul" for s in succ)

    def downstream(self, node: Node) -> set[int]:
        return nx.descendants(self._g, node.id)

    def feeds_weighted(self, layer: Layer) -> bool | None:
        """Whether an application of ``layer`` flows into another weighted layer.

        None when the forward pass is not known (no ``forward`` resolved).
        """
        apps = self.applications(layer)
        if not apps:
            return None
        for app in apps:
            for d in self.downstream(app):
                n = self._nodes[d]
                if n.op == "layer" and n.layer != layer.name and self.category_of(n) in WEIGHT_CARRYING:
                    return True
        return False

    def ends_in_skip(self, layer: Layer) -> bool:
        """Whether ``layer``'s output reaches a skip merge before any other weighted layer.

        That is the last layer of a residual branch (zero-init-residual, ReZero, Fixup).
        """
        for app in self.applications(layer):
            frontier, seen = [app], set()
            while frontier:
                cur = frontier.pop()
                for s in self.successors(cur):
                    if s.id in seen:
                        continue
                    seen.add(s.id)
                    if self.is_skip_merge(s):
                        return True
                    if s.op == "layer" and self.category_of(s) in WEIGHT_CARRYING:
                        continue
                    frontier.append(s)
        return False

    def next_activation(self, layer: Layer) -> str | None:
        """The first activation applied downstream of ``layer`` (breadth-first), if any."""
        for app in self.applications(layer):
            frontier, seen = [app], {app.id}
            while frontier:
                nxt = []
                for cur in frontier:
                    for s in self.successors(cur):
                        act = self.activation_of(s)
                        if act:
                            return act
                        if s.id not in seen:
                            seen.add(s.id)
                            nxt.append(s)
                frontier = nxt
        return None

    def nearest_weighted_before(self, node: Node) -> Node | None:
        """The closest weighted/parameter node upstream of ``node`` through single-input steps."""
        cur = node
        for _ in range(64):
            preds = self.predecessors(cur)
            if len(preds) != 1:
                return None
            cur = preds[0]
            if cur.op == "layer" and self.category_of(cur) in WEIGHT_CARRYING:
                return cur
            if cur.op != "layer":
                return None
        return None

    def steps_known(self, layer: Layer) -> bool:
        """Whether every application of ``layer`` comes from a loop whose count was resolved."""
        apps = self.applications(layer)
        loops = [u for u in self.unknowns if u.kind is UnknownKind.LOOP]
        if not apps:
            return False
        for app in apps:
            if app.span and any(u.span and u.span.line <= app.span.line <= u.span.end_line for u in loops):
                return False
        return True

    def deepest_plain_path(self):
        """The deepest chain of weighted layers with no skip connection around it."""
        from gradlint.graph.stacks import deepest_plain_path

        return deepest_plain_path(self)

    # ------------------------------------------------------------ summaries
    def chain_graph(self, chain: list[Node]) -> "ModelGraph":
        """A graph of its own for one chain of nodes: an input, the chain, an output."""
        sub = ModelGraph(self.name, self.path, self.span)
        for n in chain:
            layer = self.layer_of(n)
            if layer is not None:
                sub.add_layer(layer)
        first = min(n.id for n in chain)
        prev = first - 1 if first > 0 else -1
        sub.add_node(Node(prev, "input"))
        for n in chain:
            sub.add_node(n, [prev])
            prev = n.id
        sub.add_node(Node(chain[-1].id + 1, "output"), [prev])
        return sub

    def summary(self) -> dict:
        """A style-independent description: what tests compare across coding styles."""
        weighted = []
        for node in self.nodes():
            layer = self.layer_of(node)
            if layer and layer.category in WEIGHT_CARRYING:
                w = self.init_of(layer, "weight")
                b = (
                    self.init_of(layer, "bias")
                    if "bias" in layer.inits or layer.category != Category.PARAMETER
                    else None
                )
                weighted.append(
                    (
                        layer.kind,
                        layer.params.get("in_features", layer.params.get("in_channels")),
                        layer.params.get("out_features", layer.params.get("out_channels")),
                        w.scheme if w else None,
                        b.scheme if b else None,
                    )
                )
        activations = [self.activation_of(n) for n in self.nodes() if self.activation_of(n)]
        return {"weighted": weighted, "activations": activations}

    def __repr__(self) -> str:
        return f"<ModelGraph {self.name} {len(self._layers)} layers {len(self._nodes)} nodes>"

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers.values())
