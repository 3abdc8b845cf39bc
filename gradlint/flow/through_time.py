"""How far the gradient through time can grow in a recurrent model, at initialization.

Backpropagation through time multiplies the gradient once per step by the state-to-state
Jacobian, so over ``T`` steps the gradient reaching the first step is about ``gain ** (T - 1)``
times the last step's (Pascanu, Mikolov & Bengio, ICML 2013), ``gain`` being the per-step
factor of the gradient norm. Two kinds of recurrence are followed:

- ``nn.RNN``/``nn.LSTM``/``nn.GRU`` layers: ``gain`` from the same mean-field unrolling the flow
  profile uses (:mod:`gradlint.flow.recurrent`), each layer with its own init;
- a recurrence written out in ``forward`` (``h = torch.tanh(self.W(x[t]) + self.U(h))``): the
  state passes once per step through the layer that reads it (``U``) and the activations
  after it, so ``gain^2 = Var(U) * fan_out * E[f'(z)^2]``, ``z`` the pre-activation;
- a one-step model the training code feeds its own state (``out, h = rnn(x[i], h)``, the
  char-RNN's ``i2h(cat(x, h))``): the same, for a weighted layer that reads the model's input.
  Every such layer is taken to carry the state (the model does not say which output is fed
  back), so the largest is used: an upper bound.

The sequence length is the one the training code uses (``graph.sequence``) when it says, else
:data:`gradlint.flow.recurrent.STEPS`, and ``known`` says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gradlint.flow import activations as A
from gradlint.flow import recurrent as R
from gradlint.flow.moments import bias_moments, layer_fans, weight_moments
from gradlint.graph import catalog
from gradlint.vocab import Category

_BIG = 1e300


@dataclass(frozen=True)
class TimeGain:
    gain: float  # per-step factor of the gradient norm through time, at init
    steps: int
    known: bool  # the steps are the training code's (else the assumed recurrent.STEPS)
    layer: str  # the layer carrying the state

    @property
    def growth(self) -> float:
        """The largest factor the gradient grows by, back through the steps (1: it never grows)."""
        if self.gain <= 1.0 or self.steps <= 1:
            return 1.0
        log = (self.steps - 1) * math.log(self.gain)
        return _BIG if log > math.log(_BIG) else math.exp(log)


def _steps(graph) -> tuple[int, bool]:
    seq = graph.sequence
    return (seq[0], True) if seq else (R.STEPS, False)


def recurrent_layers_gain(graph, profile) -> TimeGain | None:
    """The fastest-growing ``nn.RNN``/``LSTM``/``GRU`` layer of the graph (None: none modelled)."""
    best = None
    for node_id, (spec, layers, inputs, steps) in profile.rnn.items():
        kind, nl = spec[0], spec[1]
        for (fan_in, v_ih, v_hh, b, ident), q in zip(layers, inputs):
            u = R.unroll(kind, nl, fan_in, spec[3], v_ih, v_hh, b, q, None, steps, identity=ident)
            gain = R.gain_per_step(u)
            if best is None or gain > best[0]:
                best = (gain, steps, node_id)
    if best is None:
        return None
    node = next(n for n in graph.nodes() if n.id == best[2])
    known = bool(profile.rnn_steps_known.get(best[2], False))
    return TimeGain(best[0], best[1], known, graph.layer_of(node).name)


def _reads_input(graph, node) -> bool:
    """The node reads the model's input, directly or through shape-only steps and joins (cat)."""
    seen = set()
    stack = list(graph.predecessors(node))
    while stack:
        cur = stack.pop()
        if cur.id in seen:
            continue
        seen.add(cur.id)
        if cur.op == "input":
            return True
        if cur.op == "layer":
            layer = graph.layer_of(cur)
            if layer is None or layer.kind not in catalog.SHAPE_ONLY:
                continue  # another layer first: it is not the one the state enters
        stack.extend(graph.predecessors(cur))
    return False


def _layer_gain(graph, profile, node) -> float | None:
    """``sqrt(Var(W) * fan_out * E[f'(z)^2])`` of a weighted layer and the activations after it
    (through an add that joins the input's term: ``tanh(W x + U h)``)."""
    layer = graph.layer_of(node)
    fans = layer_fans(layer)
    wm = weight_moments(graph, layer)
    if fans is None or wm is None or not fans[1]:
        return None
    chi = (wm[0] + wm[1] ** 2) * fans[1]
    cur = node
    while True:  # the activations right after it
        nxt = graph.successors(cur)
        if len(nxt) != 1 or nxt[0].op == "output":
            break
        step = nxt[0]
        if step.op == "merge" and step.merge == "add":
            cur = step  # the pre-activation is the sum
            continue
        if step.op != "layer" or graph.category_of(step) != Category.ACTIVATION:
            break
        st = profile.stats.get(cur.id)
        act = graph.activation_of(step)
        if st is None or not A.known(act):
            break  # not an elementwise function the flow model knows (log_softmax): stop there
        chi *= A.moments(act, st.m, max(st.q - st.m * st.m, 0.0)).d2
        cur = step
    return math.sqrt(max(chi, 0.0))


def _written_rnn_gain(graph, profile, name: str) -> float | None:
    """A state layer the forward pass did not reach with a tensor (the state starts as
    ``torch.zeros``, and a loop of unknown count is run once): the recurrence is
    ``h = f(W x + U h + b)`` with ``W`` the layer before the first activation, unrolled by the
    vanilla-RNN mean-field pass (``f`` tanh or ReLU; None otherwise)."""
    try:
        u = graph.layer(name)
    except KeyError:
        return None
    fans_u, wm_u, bu = layer_fans(u), weight_moments(graph, u), bias_moments(graph, u)
    if fans_u is None or wm_u is None or bu is None or not fans_u[1] or fans_u[0] != fans_u[1]:
        return None
    act_node = next((n for n in graph.nodes() if n.op == "layer" and graph.category_of(n) == Category.ACTIVATION), None)
    act = graph.activation_of(act_node) if act_node is not None else None
    if act not in ("tanh", "relu"):
        return None
    w_node = next(
        (p for p in graph.predecessors(act_node) if p.op == "layer" and graph.category_of(p) == Category.WEIGHTED), None
    )
    var_ih, fan_in, bias_var = 0.0, 1, bu[0] + bu[1] ** 2
    if w_node is not None:
        w = graph.layer_of(w_node)
        fw, wm_w, bw = layer_fans(w), weight_moments(graph, w), bias_moments(graph, w)
        if fw is None or wm_w is None or bw is None:
            return None
        var_ih, fan_in = wm_w[0] + wm_w[1] ** 2, fw[0] or 1
        bias_var += bw[0] + bw[1] ** 2
    steps, _ = _steps(graph)
    unrolled = R.unroll("RNN", act, fan_in, fans_u[1], var_ih, wm_u[0] + wm_u[1] ** 2, bias_var, 1.0, None, steps)
    return R.gain_per_step(unrolled)


def _cell_gain(graph, layer) -> float | None:
    """An ``nn.RNNCell``/``LSTMCell``/``GRUCell`` stepped by a forward loop: its per-step gain,
    unrolled like the full layer (one layer, the cell's own init)."""
    p = layer.params
    inp, hid = p.get("input_size"), p.get("hidden_size")
    if not (isinstance(inp, int) and isinstance(hid, int) and inp > 0 and hid > 0):
        return None
    nl = p.get("nonlinearity", "tanh") if layer.kind == "RNNCell" else "tanh"
    if nl not in ("tanh", "relu"):
        return None
    moments = [weight_moments(graph, layer, name) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if any(m is None for m in moments):
        return None
    (vi, mi), (vh, mh), (bi, mbi), (bh, mbh) = moments
    if p.get("bias", True) is False:
        bi = mbi = bh = mbh = 0.0
    steps, _ = _steps(graph)
    u = R.unroll(
        layer.kind[: -len("Cell")],
        nl,
        inp,
        hid,
        vi + mi * mi,
        vh + mh * mh,
        bi + mbi * mbi + bh + mbh * mbh,
        1.0,
        None,
        steps,
    )
    return R.gain_per_step(u)


def one_step_gain(graph, profile, names=None) -> TimeGain | None:
    """The largest per-step gain of a layer carrying the state: one of ``names`` (the layers a
    forward loop passes its state through), else, for a model called once per step with its own
    state fed back, any weighted layer that reads the input."""
    steps, known = _steps(graph)
    best = None
    reached = set()
    for node in graph.nodes():
        if node.op != "layer" or graph.category_of(node) != Category.WEIGHTED or node.id not in profile.stats:
            continue
        layer = graph.layer_of(node)
        reached.add(layer.name)
        if names is not None:
            if layer.name not in names:
                continue
        elif not _reads_input(graph, node):
            continue
        gain = _layer_gain(graph, profile, node)
        if gain is not None and (best is None or gain > best.gain):
            best = TimeGain(gain, steps, known, layer.name)
    for name in sorted(names or ()):
        try:
            layer = graph.layer(name)
        except KeyError:
            continue
        if layer.kind in ("RNNCell", "LSTMCell", "GRUCell"):
            gain = _cell_gain(graph, layer)
        elif name not in reached:
            gain = _written_rnn_gain(graph, profile, name)
        else:
            continue
        if gain is not None and (best is None or gain > best.gain):
            best = TimeGain(gain, steps, known, name)
    return best


def time_gain(graph, profile, fed_back: bool = False) -> TimeGain | None:
    """The per-step gain of the gradient through time (None: the graph has no modelled
    recurrence). ``fed_back``: the training code calls the model once per step with its state."""
    gain = recurrent_layers_gain(graph, profile)
    if gain is None and graph.state_layers:
        gain = one_step_gain(graph, profile, graph.state_layers)
    if gain is None and fed_back:
        gain = one_step_gain(graph, profile)
    return gain
