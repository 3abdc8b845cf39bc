"""torch.nn semantics: calling torch and the file's objects, constructing layers and containers, their methods."""

from __future__ import annotations

import ast

from gradlint.graph import catalog
from gradlint.graph.frameworks import INIT_HOOKS
from gradlint.graph.interp_common import (
    _MODULE_METHODS,
    MAX_NODES,
    Frame,
    _BoundMethod,
    _Budget,
    _Factory,
    _FlowSeq,
    _is_known,
    _number,
    _Scaled,
    _span,
    _spatial_dims,
    _torch_kind,
)
from gradlint.graph.model import Init, Node, UnknownKind
from gradlint.graph.values import (
    UNKNOWN,
    BlockSpec,
    ClassRef,
    Flow,
    FuncRef,
    Iterated,
    LeafSpec,
    ParamRef,
    ParamSpec,
    PartialRef,
    SeqSpec,
    Spec,
    UnknownSpec,
)
from gradlint.vocab import Category


class TorchMixin:
    """torch.nn semantics: calling torch and the file's objects, constructing layers and containers, their methods.

    A part of :class:`gradlint.graph.builder.Builder`."""

    def call(self, callee, args, kwargs, node, frame):
        if isinstance(callee, ClassRef):
            return self.call_qualname(callee, args, kwargs, node, frame)
        if isinstance(callee, FuncRef):
            if callee.qualname:
                return self.call_qualname(ClassRef(callee.qualname), args, kwargs, node, frame)
            owner = callee.bound
            fn = callee.node
            if owner is not None and isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                cls = self._owner_class(fn)
                decorators = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
                if "staticmethod" in decorators:
                    return self.call_function(fn, args, kwargs, frame)
                if "classmethod" in decorators:
                    return self.call_function(fn, [UNKNOWN, *args], kwargs, frame)
                return self.call_function(fn, [owner, *args], kwargs, frame, self_block=owner, cls=cls)
            return self.call_function(
                fn, args, kwargs, frame, self_block=frame.self_block if isinstance(fn, ast.Lambda) else None
            )
        if isinstance(callee, PartialRef):
            return self.call(callee.target, [*callee.args, *args], {**dict(callee.kwargs), **kwargs}, node, frame)
        if isinstance(callee, _BoundMethod):
            return self.call_method(callee, args, kwargs, node, frame)
        if isinstance(callee, Spec):
            return self.apply_spec(callee, args, kwargs, node, frame)
        if callable(callee) and getattr(callee, "_gradlint_builtin", False):
            return callee(self, args, kwargs, node, frame)
        # an unresolved callee: tensors flow through, modules stay unknown
        flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
        if flows:
            return self.unknown_node(flows, node, f"call to unresolved `{self.text(node.func)[:60]}` in forward")
        if (
            callee is UNKNOWN
            and frame.func is not None
            and frame.self_block is not None
            and isinstance(node.func, (ast.Name, ast.Attribute))
        ):
            text = self.text(node.func)[:60]
            return UnknownSpec(text, _span(node), f"`{text}(...)` not resolved")
        return UNKNOWN

    def unknown_node(self, flows, node, reason):
        producers = frozenset().union(*(f.producers for f in flows))
        g = self.graph
        n = g.add_node(Node(self.next_node(), "unknown", span=_span(node)), producers)
        self.note_unknown(reason, _span(node))
        return Flow(frozenset({n.id}))

    def next_node(self) -> int:
        nid = next(self.node_ids)
        if nid > MAX_NODES:
            raise _Budget
        return nid

    def call_qualname(self, ref: ClassRef, args, kwargs, node, frame):
        q = ref.qualname
        if ref.local is not None:
            if ref.local.name in self.index.module_classes:
                return self.instantiate(ref.local, args, kwargs, _span(node), frame)
            return UNKNOWN
        kind = _torch_kind(q)
        if kind is not None:
            return self.construct(kind, args, kwargs, node, frame)
        if q in catalog.ACTIVATION_FUNCTIONS:
            return self.functional_activation(catalog.ACTIVATION_FUNCTIONS[q], q, args, node)
        if q in ("collections.OrderedDict", "OrderedDict", "dict"):
            return self.make_dict(args, kwargs)
        if q in catalog.MERGE_FUNCTIONS:
            return self.merge_call(catalog.MERGE_FUNCTIONS[q], args, kwargs, node)
        shape_op = catalog.FUNCTIONAL_SHAPE.get(q)
        if shape_op is not None and args and isinstance(args[0], Flow):
            kind, names = shape_op
            params = dict(zip(names, args[1:]))
            params.update({k: v for k, v in kwargs.items() if k in names})
            return self.functional_shape(kind, params, args[0], node, q)
        if q in catalog.FUNCTIONAL_NORMS:
            return self.functional_layer(q, Category.NORM, args, node)
        if q in catalog.FUNCTIONAL_WEIGHTED:
            return self.functional_weighted(q, args, kwargs, node)
        if q == "torch.nn.init.calculate_gain":
            return catalog.calculate_gain(*args[:2], **kwargs) if args and isinstance(args[0], str) else UNKNOWN
        if q.startswith(("torch.nn.init.",)):
            return self.init_call(q.rsplit(".", 1)[-1], args, kwargs, node)
        if q in catalog.TENSOR_FACTORIES:
            return _Factory(catalog.TENSOR_FACTORIES[q], args, kwargs, node)
        if q == "typing.cast" and len(args) == 2:
            return args[1]
        if q == "torch.no_grad" or q == "torch.enable_grad":
            return None
        if q.endswith(".named_apply") and len(args) >= 2 and isinstance(args[1], Spec):
            # timm: named_apply(fn, module, name="", depth_first=True, include_root=False)
            include_root = kwargs.get("include_root", args[3] if len(args) > 3 else False) is True
            self.apply_to_modules(
                args[1],
                lambda m, mname: self.call(args[0], [], {"module": m, "name": mname}, node, frame),
                by_name=True,
                include_root=include_root,
            )
            return None
        if q in ("functools.partial",) and args:
            return PartialRef(args[0], tuple(args[1:]), tuple(kwargs.items()))
        if q == "torch.nn.functional" or q.startswith("torch.nn.utils."):
            return UNKNOWN
        flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
        if flows:
            # torch.flatten, torch.transpose, x.view, ...: shape-only ops let the value through
            if q.startswith("torch.") and not q.startswith("torch.nn."):
                return Flow(frozenset().union(*(f.producers for f in flows)))
            return self.unknown_node(flows, node, f"call to unresolved `{q}` in forward")
        last = q.rsplit(".", 1)[-1]
        if frame.self_block is not None and last[:1].isupper() and not q.startswith("torch."):
            # a class imported from another module (``from .layers import Mystery``)
            return UnknownSpec(last, _span(node), f"`{last}` is defined in another module ({q.lstrip('.')})")
        return UNKNOWN

    def make_dict(self, args, kwargs):
        out = {}
        if args:
            src = args[0]
            if isinstance(src, dict):
                out.update(src)
            elif isinstance(src, (list, tuple)):
                for pair in src:
                    if isinstance(pair, (list, tuple)) and len(pair) == 2 and _is_known(pair[0]):
                        out[pair[0]] = pair[1]
        out.update(kwargs)
        return out

    # ------------------------------------------------------------ constructing layers
    def construct(self, kind: str, args, kwargs, node, frame):
        span = _span(node)
        if kind in ("Sequential", "ModuleList", "ModuleDict"):
            spec = SeqSpec(kind, span)
            self.fill_container(spec, args, kwargs, node)
            return spec
        if kind == "Parameter":
            return self.make_parameter(args, kwargs, node)
        if kind in ("ParameterList", "ParameterDict"):
            return UnknownSpec(kind, span, f"nn.{kind} contents not modelled")
        if kind == "Module":
            return UnknownSpec(kind, span, "bare nn.Module()")
        category = catalog.layer_category(kind)
        params = self.layer_params(kind, args, kwargs)
        for name in [n for n in params if n in catalog.SIZE_PARAMS]:  # in order: deterministic notes
            value = params[name]
            sizes = value if isinstance(value, tuple) else (value,)
            bound = catalog.MAX_COUNT if name in catalog.COUNT_PARAMS else catalog.MAX_SIZE
            if any(isinstance(v, (int, float)) and (isinstance(v, bool) or not 0 < v <= bound) for v in sizes):
                # nn.Linear(8, -1) raises in PyTorch; a size of 2 ** 4096 cannot be allocated
                self.note_unknown(
                    f"nn.{kind} `{name}` = {str(value)[:40]} is not a usable size", span, UnknownKind.VALUE
                )
                params[name] = UNKNOWN
        activation = catalog.ACTIVATION_MODULES.get(kind)
        if kind in ("RNN", "RNNCell"):
            nl = params.get("nonlinearity", "tanh")
            params["nonlinearity"] = nl if _is_known(nl) else "unknown"
        spec = LeafSpec(kind, category, span, activation, params)
        spec.repeat = self.repeat_ctx
        return spec

    _POSITIONAL = {
        "Linear": ("in_features", "out_features", "bias"),
        "Bilinear": ("in1_features", "in2_features", "out_features", "bias"),
        "Embedding": ("num_embeddings", "embedding_dim", "padding_idx"),
        "EmbeddingBag": ("num_embeddings", "embedding_dim"),
        "RNN": ("input_size", "hidden_size", "num_layers"),
        "LSTM": ("input_size", "hidden_size", "num_layers"),
        "GRU": ("input_size", "hidden_size", "num_layers"),
        "RNNCell": ("input_size", "hidden_size", "bias", "nonlinearity"),
        "LSTMCell": ("input_size", "hidden_size", "bias"),
        "GRUCell": ("input_size", "hidden_size", "bias"),
        "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
        "GroupNorm": ("num_groups", "num_channels", "eps", "affine"),
        "MultiheadAttention": ("embed_dim", "num_heads", "dropout", "bias"),
        "LeakyReLU": ("negative_slope",),
        "ELU": ("alpha",),
        "Hardtanh": ("min_val", "max_val"),
        "Softmax": ("dim",),
        "Dropout": ("p",),
        "Dropout1d": ("p",),
        "Dropout2d": ("p",),
        "Dropout3d": ("p",),
        "AlphaDropout": ("p",),
        **{f"MaxPool{d}d": ("kernel_size", "stride", "padding", "dilation") for d in (1, 2, 3)},
        **{f"AvgPool{d}d": ("kernel_size", "stride", "padding") for d in (1, 2, 3)},
        **{f"Adaptive{k}Pool{d}d": ("output_size",) for k in ("Avg", "Max") for d in (1, 2, 3)},
        "Upsample": ("size", "scale_factor", "mode"),
        "Flatten": ("start_dim", "end_dim"),
    }

    def layer_params(self, kind, args, kwargs) -> dict:
        if kind.startswith(("Conv", "LazyConv", "ConvTranspose")):
            names = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")
        elif "BatchNorm" in kind or "InstanceNorm" in kind:
            names = ("num_features", "eps", "momentum", "affine")
        else:
            names = self._POSITIONAL.get(kind, ())
        params = {}
        for name, value in zip(names, args):
            params[name] = value
        for k, v in kwargs.items():
            params[k] = v
        clean = {}
        for k, v in params.items():
            if isinstance(v, (int, float, str, bool)) or v is None:
                clean[k] = v
            elif isinstance(v, tuple) and all(isinstance(x, (int, float)) for x in v):
                clean[k] = v
            else:
                clean[k] = UNKNOWN
        return clean

    def fill_container(self, spec: SeqSpec, args, kwargs, node) -> None:
        items = []
        if spec.kind == "ModuleDict" or (len(args) == 1 and isinstance(args[0], dict)):
            src = args[0] if args else {}
            if isinstance(src, (list, tuple)):
                src = self.make_dict([src], {})
            if isinstance(src, dict):
                items = [[str(k), v] for k, v in src.items()]
            elif args:
                items = [["?", UnknownSpec(self.text(node)[:60], _span(node), "container contents not resolved")]]
        elif spec.kind == "ModuleList":
            if args:
                src = self.iterate(args[0])
                if src is None:
                    src = (
                        [args[0]]
                        if isinstance(args[0], Spec)
                        else [
                            UnknownSpec(
                                self.text(node.args[0])[:60] if node.args else "?",
                                _span(node),
                                "ModuleList contents not resolved",
                            )
                        ]
                    )
                items = [[str(i), v] for i, v in enumerate(src)]
        else:
            items = [[str(i), v] for i, v in enumerate(args)]
        for k, v in items:
            if isinstance(v, list):
                v = UnknownSpec("list", _span(node), "a plain list inside a container")
            elif not isinstance(v, Spec):
                v = UnknownSpec(
                    repr(v)[:40] if v is not UNKNOWN else "?", _span(node), "container item is not a resolved module"
                )
            spec.items.append([k, v])

    def make_parameter(self, args, kwargs, node):
        span = _span(node)
        data = args[0] if args else kwargs.get("data", UNKNOWN)
        spec = ParamSpec(span)
        spec.repeat = self.repeat_ctx
        if isinstance(data, _Factory):
            spec.shape = data.shape()
            spec.inits["weight"] = data.init(self.text(node))
        elif isinstance(data, _Scaled) and isinstance(data.base, _Factory):
            spec.shape = data.base.shape()
            spec.inits["weight"] = data.init(self.text(node))
        return spec

    init_via: str | None = None

    # ------------------------------------------------------------ methods
    def call_method(self, bm, args, kwargs, node, frame):
        owner, name = bm.owner, bm.name
        if isinstance(owner, list):
            if name == "append" and args:
                owner.extend(self.tag_repeat([args[0]]))
            elif name == "extend" and args:
                items = self.iterate(args[0])
                owner.extend(
                    self.tag_repeat(items)
                    if items is not None
                    else [UnknownSpec("?", _span(node), "list extended by an unresolved value")]
                )
            elif name == "insert" and len(args) == 2 and isinstance(args[0], int):
                owner.insert(args[0], args[1])
            elif name == "pop":
                return owner.pop() if owner else UNKNOWN
            elif name in ("index", "count"):
                return UNKNOWN
            return None
        if isinstance(owner, dict):
            if name in ("items", "keys", "values"):
                return list(getattr(owner, name)())
            if name == "get" and args and _is_known(args[0]):
                try:
                    return owner.get(args[0], args[1] if len(args) > 1 else None)
                except TypeError:
                    return UNKNOWN
            if name == "update" and args and isinstance(args[0], dict):
                owner.update(args[0])
            if name == "pop" and args and _is_known(args[0]):
                try:
                    return owner.pop(args[0], args[1] if len(args) > 1 else None)
                except TypeError:
                    return UNKNOWN
            return UNKNOWN
        if isinstance(owner, str):
            if not all(_is_known(a) and isinstance(a, (str, int, tuple)) for a in args):
                return UNKNOWN
            try:
                return getattr(owner, name)(*args)
            except Exception:
                return UNKNOWN
        if isinstance(owner, SeqSpec):
            if name == "append" and args and isinstance(args[0], Spec):
                owner.items.append([str(len(owner.items)), self.tag_repeat([args[0]])[0]])
            elif name == "extend" and args:
                items = self.iterate(args[0])
                if items is None:
                    items = [UnknownSpec("?", _span(node), "a container extended by an unresolved value")]
                for it in self.tag_repeat(items):
                    if not isinstance(it, Spec):  # ``make_layer(cfg)`` gradlint cannot resolve
                        it = UnknownSpec("?", _span(node), "a container element gradlint could not resolve")
                    owner.items.append([str(len(owner.items)), it])
            elif name in ("add_module", "register_module", "update") and args:
                if name == "update" and isinstance(args[0], dict):
                    for k, v in args[0].items():
                        owner.items.append([str(k), v])
                elif len(args) == 2 and _is_known(args[0]) and isinstance(args[1], Spec):
                    owner.items.append([str(args[0]), args[1]])
            elif name in ("items", "keys", "values"):
                return Iterated(name, owner)
            elif name in _MODULE_METHODS:
                return self.module_method(owner, name, args, kwargs, node, frame)
            return None
        if isinstance(owner, (BlockSpec, LeafSpec)):
            return self.module_method(owner, name, args, kwargs, node, frame)
        if isinstance(owner, ParamRef):
            if name in ("mul_", "div_") and len(args) == 1 and _number(args[0]) and args[0] != 0:
                self.scale_init(owner, float(args[0]) if name == "mul_" else 1.0 / float(args[0]), node)
                return owner
            if name == "copy_" and args and isinstance(args[0], (_Factory, _Scaled)):
                self.apply_init(owner, args[0].init(self.text(node)), node)  # ``w.copy_(torch.randn(...))``
                return owner
            if name in catalog.INIT_METHODS:
                scheme = catalog.INIT_METHODS[name]
                if scheme == "copy":
                    self.apply_init(owner, Init("copy", self.text(node)[:120], _span(node), "tensor-method"), node)
                else:
                    self.apply_init(owner, self.make_init(scheme, args, kwargs, node, "tensor-method"), node)
                return owner
            if name in ("dim", "ndimension"):
                return owner.ndim if owner.ndim is not None else UNKNOWN
            if name in ("size",):
                return UNKNOWN
            if name in ("requires_grad_", "detach", "clone", "t"):
                return owner
            return UNKNOWN
        if isinstance(owner, Flow):
            if name in catalog.ACTIVATION_METHODS:
                return self.functional_activation(catalog.ACTIVATION_METHODS[name], f"Tensor.{name}", [owner], node)
            if name in ("add", "add_") and args and isinstance(args[0], Flow):
                return self.merge_flows("add", [owner, args[0]], node)
            if name in ("mul", "mul_") and args and isinstance(args[0], Flow):
                return self.merge_flows("mul", [owner, args[0]], node)
            if name in ("matmul", "mm") and args and isinstance(args[0], (ParamRef, ParamSpec)):
                return self.binop_flow(ast.MatMult(), owner, args[0], node)
            if name in ("size", "dim", "numel", "item", "tolist"):
                return UNKNOWN
            if name == "chunk" and args and _number(args[0]) and isinstance(args[0], int) and 1 < args[0] <= 64:
                return self.split_flow(owner, args[0], node)  # ``x1, x2 = x.chunk(2, dim=1)``: disjoint parts
            if name in ("chunk", "split", "unbind"):
                return _FlowSeq(owner)
            if name == "flatten" and (not args or args[0] == 1):
                return self.functional_shape("Flatten", {}, owner, node, "Tensor.flatten")
            if name in ("view", "reshape") and len(args) == 2 and args[1] == -1:
                return self.functional_shape("Flatten", {}, owner, node, f"Tensor.{name}")
            if name in ("mean", "amax") and args and _spatial_dims(args[0]):
                kind = "AdaptiveAvgPool2d" if name == "mean" else "AdaptiveMaxPool2d"
                return self.functional_shape(kind, {"output_size": 1}, owner, node, f"Tensor.{name}")
            extra = [a for a in args if isinstance(a, Flow)]
            if extra:
                return Flow(owner.producers.union(*(e.producers for e in extra)))
            return owner
        return UNKNOWN

    def module_method(self, owner, name, args, kwargs, node, frame):
        if name in ("modules", "named_modules", "children", "named_children", "parameters", "named_parameters"):
            return Iterated(name, owner)
        if name == "apply" and args:
            applied, mentioned = self.applied_key(args[0], frame), self.mentioned_names(args[0])
            self.apply_to_modules(
                owner,
                lambda m, mname: self.call(args[0], [m], {}, node, frame),
                applied=applied if applied is None or mentioned is None else (applied, mentioned),
                mentioned=mentioned,
            )
            return owner
        if name in ("add_module", "register_module") and len(args) == 2 and isinstance(owner, BlockSpec):
            if _is_known(args[0]):
                self.set_attr(owner, str(args[0]), args[1], node)
            return None
        if name == "register_parameter" and len(args) == 2 and isinstance(owner, BlockSpec):
            if _is_known(args[0]) and isinstance(args[1], ParamSpec):
                self.set_attr(owner, str(args[0]), args[1], node)
            return None
        if name in INIT_HOOKS and isinstance(owner, BlockSpec):
            # a framework base class's hook that applies one of the model's own methods to every
            # submodule (Hugging Face: PreTrainedModel.post_init() applies _init_weights)
            init_fn = self.index.method(owner.cls, INIT_HOOKS[name])
            if init_fn is not None:
                return self.module_method(owner, "apply", [FuncRef(init_fn, bound=owner)], {}, node, frame)
            return None
        if name in ("to", "cuda", "cpu", "float", "double", "half", "train", "eval", "requires_grad_"):
            return owner
        return None

    def apply_spec(self, spec, args, kwargs, node, frame):
        flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
        if isinstance(spec, BlockSpec):
            return self.run_block(spec, args, kwargs, frame, node)
        if isinstance(spec, SeqSpec):
            if spec.kind == "Sequential":
                value = args[0] if args else (flows[0] if flows else UNKNOWN)
                for _, child in spec.items:
                    value = self.apply_spec(child, [value], {}, node, frame)
                return value
            return self.unknown_node(flows, node, f"calling an nn.{spec.kind}") if flows else UNKNOWN
        if not flows:
            return UNKNOWN
        producers = frozenset().union(*(f.producers for f in flows))
        if isinstance(spec, (LeafSpec, ParamSpec)):
            name = self.name_of(spec)
            n = self.graph.add_node(
                Node(self.next_node(), "layer", layer=name, span=_span(node) if node is not None else None), producers
            )
            return Flow(frozenset({n.id}))
        if isinstance(spec, UnknownSpec):
            name = self.name_of(spec)
            n = self.graph.add_node(
                Node(self.next_node(), "layer", layer=name, span=_span(node) if node is not None else None), producers
            )
            return Flow(frozenset({n.id}))
        return UNKNOWN

    def run_block(self, block: BlockSpec, args, kwargs, frame: Frame, span=None):
        forward = self.index.method(block.cls, "forward")
        if forward is None:
            if block.seq is not None and block.seq.kind == "Sequential":
                return self.apply_spec(block.seq, args, kwargs, span, frame)
            flows = [a for a in [*args, *kwargs.values()] if isinstance(a, Flow)]
            if flows:
                return self.unknown_node(flows, span or block.cls, f"`{block.cls.name}` has no forward() in this file")
            return UNKNOWN
        owner_cls = self._owner_class(forward) or block.cls
        return self.call_function(forward, [block, *args], kwargs, frame, self_block=block, cls=owner_cls)
