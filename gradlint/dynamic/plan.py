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

from gradlint.flow.recurrent import STEPS as RECURRENT_STEPS
from gradlint.graph.builder import build_graphs

BATCH = 8
SPATIAL = {1: 64, 2: 64, 3: 16}
TOKENS = 32
SHORT_SEQUENCE = 32


@dataclass
class ModelJob:
    path: str  # absolute path of the file that defines the model
    name: str  # class name, or ``factory()``
    config_key: str
    kwargs: dict = field(default_factory=dict)
    input: dict | None = None
    input_note: str | None = None
    probes: list = field(default_factory=list)  # (diagnostic index, expect, layers, clip, length)


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
    """An input for the model, from the first layer its forward applies to the input."""
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
            if layer is not None and layer.category in ("weighted", "recurrent", "norm", "embedding"):
                return _spec_for(layer, recurrent)
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
    seq = 200 if recurrent else (RECURRENT_STEPS if layer.category == "recurrent" else SHORT_SEQUENCE)
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
        return {"shape": [seq, BATCH, n], "dtype": "float", "time_axis": 0}, None
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
        return ({"shape": [BATCH, n, SPATIAL[2], SPATIAL[2]], "dtype": "float"}, None) if n else (None, f"{what} has no known size")
    return None, f"gradlint cannot synthesize an input for {what}"


def plan(diagnostics, models_config: dict) -> tuple[dict[str, list[ModelJob]], dict[int, str]]:
    """Jobs per file, and a note for each finding that cannot be measured at all."""
    jobs: dict[tuple, ModelJob] = {}
    notes: dict[int, str] = {}
    graphs_cache: dict[str, dict] = {}
    for i, d in enumerate(diagnostics):
        target = target_of(d)
        if not target:
            continue
        expect = target.get("expect")
        path = model_path(d, target)
        if path is None:
            notes[i] = f"the model `{target.get('model')}` comes from `{target.get('module')}`, which is not a file gradlint can find"
            continue
        name = target["model"]
        key = (path, name)
        if key not in jobs:
            rel = os.path.relpath(path)
            job = ModelJob(path=path, name=name, config_key=f"{rel}::{name}")
            conf = models_config.get(key, {})
            job.kwargs = dict(conf.get("kwargs", {}))
            if path not in graphs_cache:
                try:
                    data = Path(path).read_bytes()
                    if path.endswith(".ipynb"):
                        from gradlint.notebook import NotebookError, load

                        try:
                            data = load(data).virtual
                        except NotebookError as exc:
                            raise ValueError(str(exc)) from None
                    tree = ast.parse(data, filename=path)
                    graphs_cache[path] = {g.name: g for g in build_graphs(tree, path)}
                except (OSError, SyntaxError, ValueError) as exc:
                    graphs_cache[path] = {}
                    notes[i] = f"cannot read `{path}`: {exc}"
            graph = graphs_cache[path].get(name)
            recurrent = expect.startswith("recurrent")
            if "input-shape" in conf:
                dtype = conf.get("input-dtype", "float32")
                job.input = {"shape": list(conf["input-shape"]), "dtype": "long" if dtype in ("long", "int64") else "float",
                             "high": int(conf.get("input-high", 2))}
                auto, _ = input_spec(graph, recurrent)
                if auto and "time_axis" in auto and len(auto["shape"]) == len(job.input["shape"]):
                    job.input["time_axis"] = auto["time_axis"]
            else:
                job.input, job.input_note = input_spec(graph, recurrent)
            jobs[key] = job
        jobs[key].probes.append((i, expect, tuple(target.get("layers", ())), target.get("clip"), target.get("length")))
    by_file: dict[str, list[ModelJob]] = {}
    for job in jobs.values():
        by_file.setdefault(job.path, []).append(job)
    return by_file, notes
