"""What to measure: findings grouped by the model they are about, and each model's input.

Pure Python: reads the findings' targets and the layer graphs (rebuilt for the files that
have findings to confirm); nothing here imports torch or the user's code.
"""

from __future__ import annotations

import ast
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from gradlint.config_resolve import configured_models
from gradlint.flow.convention import BATCH, SPATIAL
from gradlint.flow.recurrent import STEPS as RECURRENT_STEPS
from gradlint.graph.builder import build_graphs
from gradlint.graph.seqlen import recurrent_batch_first
from gradlint.rule import rule_by_code
from gradlint.vocab import Category, Probe

SHORT_SEQUENCE = 32
#: the BPTT length of a recurrent training finding when the code does not say (as GL401 assumes)
TRAINING_SEQUENCE = 100


@dataclass
class ModelJob:
    path: str  # absolute path of the file that defines the model
    name: str  # class name, ``factory()``, or ``var = Cls(...)`` for a model a script configures
    config_key: str
    kwargs: dict = field(default_factory=dict)
    #: ``{"args": [tensor], "kwargs": {name: tensor}, "fn": "module:function" | None}``; a tensor
    #: is ``{"shape", "dtype", "high", "fill", "time_axis"}`` (see ``worker.make_tensor``)
    input: dict | None = None
    input_note: str | None = None
    probes: list = field(default_factory=list)  # (diagnostic index, expect, layers, clip, length)
    #: for a configured model: the statements that build it (``def var(): ...; return var``)
    source: str | None = None
    entry: str | None = None
    lines: list = field(default_factory=list)  # the file's line of each of its statements
    #: where a finding of this model's own goes (the class, or the configuring call): (line, col, end_line, end_col)
    span: tuple | None = None

    def spec(self, key: str) -> dict:
        """What the worker needs to build, feed and probe this model."""
        out = {
            "id": key,
            "name": self.name,
            "kwargs": self.kwargs,
            "input": self.input,
            "config_key": self.config_key,
            "probes": [
                {"id": i, "expect": e, "layers": list(l), "clip": c, "length": n} for i, e, l, c, n in self.probes
            ],
        }
        if self.source:
            out["source"], out["entry"], out["lines"] = self.source, self.entry, self.lines
        return out


def target_of(diag) -> dict:
    return dict(diag.target) if diag.target else {}


def model_path(diag, target: dict) -> str | None:
    """The file that defines the target model: the finding's own, or for a training loop
    that imports its model, the module it imports from (relative to the finding's file)."""
    here = Path(diag.path).resolve()
    module = target.get("module")
    if not module:
        return str(here)
    dots = len(module) - len(module.lstrip("."))
    parts = [p for p in module.lstrip(".").split(".") if p]
    if dots:
        base = here.parent
        for _ in range(dots - 1):
            base = base.parent
        bases = [base]
    else:
        # an absolute import: the importing file's folder first (as ``python file.py`` puts it
        # on sys.path), then the working directory
        bases = [here.parent, Path.cwd()]
    for base in bases:
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if parts and candidate.is_file():
                return str(candidate)
    return None


def input_spec(graph, recurrent: bool) -> tuple[dict | None, str | None]:
    """The main input tensor of the model, from the first layer its forward applies to it."""
    if graph is None:
        return None, "the model's layer graph was not found"
    nodes = {n.id: n for n in graph.nodes()}
    start = nodes.get(0)
    if start is None:
        return None, "the model has no forward() to feed"
    seen, queue = {0}, deque([start])
    while queue:
        node = queue.popleft()
        if node.op == "layer":
            layer = graph.layer_of(node)
            if layer is not None and layer.category in (Category.WEIGHTED, Category.RECURRENT, Category.NORM):
                spec, note = _spec_for(layer, recurrent)
                if (
                    spec is not None
                    and layer.kind in ("Embedding", "EmbeddingBag")
                    and recurrent_batch_first(graph) is False
                ):
                    # token ids embedded, then a time-first recurrent layer: (time, batch)
                    spec = {**spec, "shape": spec["shape"][::-1], "time_axis": 0, "batch_axis": 1}
                return spec, note
        for nxt in sorted(graph.successors(node), key=lambda n: n.id):
            if nxt.id not in seen:
                seen.add(nxt.id)
                queue.append(nxt)
    return None, "no layer of the model reads its input directly"


def _int(*values):
    """The first of ``values`` that is an int (a parameter may be an unresolved value, which
    has no truth value: never ``a or b`` on them)."""
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def _spec_for(layer, recurrent: bool):
    kind, p = layer.kind, layer.params
    # recurrent findings about training loops measure long BPTT runs; a recurrent layer judged by
    # the flow model is unrolled over the flow model's own assumed length
    seq = (
        TRAINING_SEQUENCE
        if recurrent
        else (RECURRENT_STEPS if layer.category == Category.RECURRENT else SHORT_SEQUENCE)
    )
    what = f"its first layer `{layer.name}` (nn.{kind})"
    if kind == "Linear" or kind == "Bilinear":
        n = _int(p.get("in_features"), p.get("in1_features"))
        return ({"shape": [BATCH, n], "dtype": "float"}, None) if n else (None, f"{what} has no known in_features")
    if kind.startswith(("Conv", "LazyConv")) and kind[-2:] in ("1d", "2d", "3d"):
        dims = int(kind[-2])
        c = _int(p.get("in_channels"))
        if not c:
            return None, f"{what} has no known in_channels"
        return {"shape": [BATCH, c] + [SPATIAL[dims]] * dims, "dtype": "float"}, None
    if kind in ("Embedding", "EmbeddingBag"):
        n = _int(p.get("num_embeddings"))
        if not n:
            return None, f"{what} has no known num_embeddings"
        return {"shape": [BATCH, seq], "dtype": "long", "high": n, "time_axis": 1}, None
    if kind in ("RNN", "LSTM", "GRU"):
        n = _int(p.get("input_size"))
        if not n:
            return None, f"{what} has no known input_size"
        if p.get("batch_first") is True:
            return {"shape": [BATCH, seq, n], "dtype": "float", "time_axis": 1}, None
        return {"shape": [seq, BATCH, n], "dtype": "float", "time_axis": 0, "batch_axis": 1}, None
    if kind in ("RNNCell", "LSTMCell", "GRUCell"):
        n = _int(p.get("input_size"))
        if not n:
            return None, f"{what} has no known input_size"
        # a cell is stepped by the model's own loop: most such models take (batch, time, features)
        return {"shape": [BATCH, seq, n], "dtype": "float", "time_axis": 1}, None
    if kind in ("BatchNorm1d", "LayerNorm"):
        n = _int(p.get("num_features"), p.get("normalized_shape"))
        return ({"shape": [BATCH, n], "dtype": "float"}, None) if n else (None, f"{what} has no known size")
    if kind in ("BatchNorm2d", "GroupNorm"):
        n = _int(p.get("num_features"), p.get("num_channels"))
        return (
            ({"shape": [BATCH, n, SPATIAL[2], SPATIAL[2]], "dtype": "float"}, None)
            if n
            else (None, f"{what} has no known size")
        )
    return None, f"gradlint cannot synthesize an input for {what}"


def _read_graphs(path: str, configured: tuple = ()) -> dict:
    """The file's model graphs, by name, as ``check`` builds them (configured sites included,
    and the models the configuration builds with constructor kwargs)."""
    data = Path(path).read_bytes()
    if path.endswith(".ipynb"):
        from gradlint.notebook import NotebookError, load

        try:
            data = load(data).virtual
        except NotebookError as exc:
            raise ValueError(str(exc)) from None
    tree = ast.parse(data, filename=path)
    mine = tuple((name, kwargs) for file, name, kwargs in configured if file == path)
    graphs = {g.name: g for g in build_graphs(tree, path, everything=False, configured_kwargs=mine)}
    required = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    a = item.args
                    positional = [x.arg for x in (a.posonlyargs + a.args)[1:]]
                    needed = positional[: len(positional) - len(a.defaults)]
                    needed += [x.arg for x, d in zip(a.kwonlyargs, a.kw_defaults) if d is None]
                    required[node.name] = needed
    for g in graphs.values():
        g.required_args = required.get(g.name, [])
    return graphs


def _model_input(conf: dict, graph, recurrent: bool) -> tuple[dict | None, str | None]:
    """The worker's ``input`` for one model: the configuration's, else synthesized."""
    auto, note = input_spec(graph, recurrent)
    if conf.get("input-fn"):
        return {"args": [], "kwargs": {}, "fn": conf["input-fn"], "batch": BATCH}, None
    if "inputs" in conf or "kwargs-inputs" in conf:
        args = [dict(t) for t in conf.get("inputs", ())]
        kwargs = {k: dict(t) for k, t in conf.get("kwargs-inputs", {}).items()}
        if args and auto and "time_axis" in auto and len(auto["shape"]) == len(args[0]["shape"]):
            args[0]["time_axis"] = auto["time_axis"]
        return {"args": args, "kwargs": kwargs, "fn": None, "complete": False}, None
    if "input-shape" in conf:
        dtype = conf.get("input-dtype", "float32")
        main = {
            "shape": list(conf["input-shape"]),
            "dtype": "long" if dtype in ("long", "int64") else "float",
            "high": int(conf.get("input-high", 2)),
        }
        if auto and "time_axis" in auto and len(auto["shape"]) == len(main["shape"]):
            main["time_axis"] = auto["time_axis"]
        return {"args": [main], "kwargs": {}, "fn": None}, None
    if auto is None:
        return None, note
    if "input-high" in conf and auto.get("dtype") == "long":
        auto = {**auto, "high": int(conf["input-high"])}
    return {"args": [auto], "kwargs": {}, "fn": None}, None


def _span_of(graph) -> tuple | None:
    span = graph.site_span or graph.span if graph is not None else None
    if span is None:
        return None
    return (span.line, span.col, span.end_line, span.end_col)  # ast's: 0-based UTF-8 byte columns


def _new_job(path: str, name: str, graph, conf: dict, recurrent: bool) -> ModelJob:
    rel = os.path.relpath(path)
    job = ModelJob(path=path, name=name, config_key=f"{rel}::{name}", span=_span_of(graph))
    job.kwargs = dict(conf.get("kwargs", {}))
    if graph is not None and graph.site_func is not None:
        job.source, job.entry = ast.unparse(ast.Module(body=[graph.site_func], type_ignores=[])), graph.site_func.name
        job.lines = [stmt.lineno for stmt in graph.site_func.body]
    job.input, job.input_note = _model_input(conf, graph, recurrent)
    return job


def measurable(graph) -> bool:
    """A model of its own: it has a forward, no other model of the file expands it, and it is
    not only the default of a class a script configures (the configured model is measured)."""
    if graph is None or not graph.has_forward or not graph.is_root:
        return False
    return graph.site_span is not None or not graph.checked_in_context


def plan(diagnostics, models_config: dict, files=(), scope: str = "findings"):
    """``(jobs per file, a note per finding that cannot be measured, notes on models without
    findings that cannot be measured)``. With ``scope="all"``, every model of ``files`` is
    measured, the models with findings and the others."""
    jobs: dict[tuple, ModelJob] = {}
    notes: dict[int, str] = {}
    quiet: list[str] = []
    graphs_cache: dict[str, dict] = {}
    configured = configured_models(models_config)

    def graphs_of(path, i=None):
        if path not in graphs_cache:
            try:
                graphs_cache[path] = _read_graphs(path, configured)
            except (OSError, SyntaxError, ValueError, RecursionError) as exc:
                graphs_cache[path] = {}
                if i is not None:
                    notes[i] = f"cannot read `{path}`: {exc}"
        return graphs_cache[path]

    for i, d in enumerate(diagnostics):
        target = target_of(d)
        if not target:
            rule = rule_by_code(d.code)
            if rule is not None and rule.confirmable and not d.evidence:
                notes[i] = (
                    "the finding names no model gradlint can build: the model it is about is not "
                    "resolved to a class or factory of the checked files"
                )
            continue
        expect = target.get("expect")
        path = model_path(d, target)
        if path is None:
            notes[i] = (
                f"the model `{target.get('model')}` comes from `{target.get('module')}`, which is not a file gradlint"
                f" can find"
            )
            continue
        name = target["model"]
        key = (path, name)
        if key not in jobs:
            graph = graphs_of(path, i).get(name)
            jobs[key] = _new_job(path, name, graph, models_config.get(key, {}), Probe(expect).recurrent)
        jobs[key].probes.append((i, expect, tuple(target.get("layers", ())), target.get("clip"), target.get("length")))
    if scope == "all":
        for path in files:
            path = str(Path(path).resolve())
            if not path.endswith((".py", ".pyi", ".ipynb")) or path.endswith(".pyi"):
                continue
            for name, graph in graphs_of(path).items():
                key = (path, name)
                if key in jobs or not measurable(graph):
                    continue
                conf = models_config.get(key, {})
                needs = [a for a in getattr(graph, "required_args", ()) if a not in conf.get("kwargs", {})]
                if needs and graph.site_func is None and not graph.factory_of:
                    quiet.append(
                        f"{os.path.relpath(path)}::{name}: not measured: its constructor needs "
                        f"{', '.join(f'`{a}`' for a in needs)} (set kwargs under "
                        f'[tool.gradlint.dynamic.models."{os.path.relpath(path)}::{name}"])'
                    )
                    continue
                job = _new_job(path, name, graph, conf, False)
                if job.input is None:
                    quiet.append(
                        f"{os.path.relpath(path)}::{name}: not measured: cannot synthesize an input: {job.input_note}"
                    )
                    continue
                jobs[key] = job
    by_file: dict[str, list[ModelJob]] = {}
    for job in sorted(jobs.values(), key=lambda j: (j.span or (0,))[0]):
        by_file.setdefault(job.path, []).append(job)
    return by_file, notes, quiet
