"""The recurrent layers: SimpleRNN, GRU (``reset_after`` true or false) and LSTM, and the two wrappers Bidirectional
(over any of them) and TimeDistributed (over a Dense).

A recurrent layer reads ``(batch, time steps, features)``. NumPy has no scan, so :data:`HELPERS` loops over the
time steps in Python (``_scan``): that loop *is* the NumPy way of running an RNN, and its cost per step is part of
what the benchmark measures. The input projection of every step is one matmul before the loop (``x @ kernel``,
plus the input bias); each step then does the recurrent matmul and the gates. Keras' gate layouts: GRU's kernel
columns are ``[z | r | h]`` (update, reset, candidate), LSTM's ``[i | f | c | o]``; a GRU with ``reset_after`` has
a bias of two rows (input, recurrent) and applies the reset gate to the recurrent projection, without it to the
state before its matmul. ``go_backwards`` reads the steps last to first and, with ``return_sequences``, returns the
outputs in that processed (reversed) order, as Keras does. The state starts at zeros.

Refused (no twin): ``return_state`` (several outputs), ``stateful`` (state kept between calls), an activation
:data:`kbench.model.twins.dense.ACTIVATIONS` lacks, an input that is not ``(time steps, features)``. Dropout is
inactive at inference; ``unroll`` and ``implementation`` change how Keras computes, not what. **Masks are
ignored**: a twin cannot see a mask, so an ``Embedding(mask_zero=True)`` upstream (which Keras' RNN honours) is not
detected here; parity against Keras then fails on any padded row.

Bidirectional runs its layer forwards and a copy backwards (the saved ``backward_layer``), flips the backward
sequence back to time order when it returns sequences, and merges the two (``concat``, ``sum``, ``mul``, ``ave``;
``merge_mode=None`` returns two tensors: refused). Its weights are keyed ``"<layer>/forward/<variable>"`` and
``"<layer>/backward/<variable>"``: Keras gives both directions the same variable names. TimeDistributed(Dense) is
the Dense on the last axis (a matmul broadcasts over the time axis); any other wrapped layer is refused.

FLOPs per row: the input projection (``2 * features * gates * units`` per step, plus the bias), the recurrent
matmul (``2 * units * gates * units`` per step, plus a GRU's recurrent bias) and the gates' elementwise work per
step (:class:`Cell`). Reduction length: ``features + units``, the longest sum behind one gate's pre-activation at
one step (the input and recurrent dot products). Rounding carried from step to step is not a longer sum: it is
what the measured error scale M (:mod:`kbench.model.autotwin`) follows, through the jittered weights. M does not
follow the rounding *inside* a step, though: a GRU whose update gate z saturates (within ~1e-3 of 1) loses digits
in ``1 - z``, in Keras as in the twin, by more than the parity rule then allows (a known limit, tested as such).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kbench.model.keras_file import Node
from kbench.model.twins.base import Call, Emitted, Emitter, Shape, Unsupported, single_input
from kbench.model.twins.base import BadConfig, flag, ints, shown
from kbench.model.twins.dense import ACTIVATIONS, activation_name, dense

HELPERS = '''
def _scan(step, xs, state, backwards, sequences):
    """Run step(x_t, *state) -> state over the time axis of xs (the inputs, already projected), last step first
    when backwards; every step's output (the state's first item) in the order processed, or the last one."""
    outputs = []
    for t in range(xs.shape[1] - 1, -1, -1) if backwards else range(xs.shape[1]):
        state = step(xs[:, t], *state)
        outputs.append(state[0])
    return np.stack(outputs, axis=1) if sequences else outputs[-1]


def _simple_rnn(x, kernel, recurrent, bias, act, backwards, sequences):
    xs = x @ kernel if bias is None else x @ kernel + bias  # every step's input projection in one matmul
    h = np.zeros((len(xs), recurrent.shape[0]), xs.dtype)
    return _scan(lambda xt, h: (act(xt + h @ recurrent),), xs, (h,), backwards, sequences)


def _gru(x, kernel, recurrent, bias, act, gate, reset_after, backwards, sequences):
    """Keras' GRU; with reset_after, bias is (input bias, recurrent bias) and the reset gate scales the recurrent
    projection, else it scales the state before its matmul."""
    u = recurrent.shape[0]
    xs = x @ kernel
    xs = xs if bias is None else xs + (bias[0] if reset_after else bias)
    recurrent_bias = bias[1] if bias is not None and reset_after else None

    def step(xt, h):
        inner = h @ (recurrent if reset_after else recurrent[:, :2 * u])
        inner = inner if recurrent_bias is None else inner + recurrent_bias
        z, r = gate(xt[:, :u] + inner[:, :u]), gate(xt[:, u:2 * u] + inner[:, u:2 * u])
        candidate = act(xt[:, 2 * u:] + (r * inner[:, 2 * u:] if reset_after else (r * h) @ recurrent[:, 2 * u:]))
        # z * h + (1 - z) * candidate, written so that no 1 - z loses digits when the gate saturates (z near 1)
        return (candidate + z * (h - candidate),)

    return _scan(step, xs, (np.zeros((len(xs), u), xs.dtype),), backwards, sequences)


def _lstm(x, kernel, recurrent, bias, act, gate, backwards, sequences):
    """Keras' LSTM, gates [i | f | c | o]; the state is (output h, carry c)."""
    u = recurrent.shape[0]
    xs = x @ kernel if bias is None else x @ kernel + bias

    def step(xt, h, c):
        z = xt + h @ recurrent
        c = gate(z[:, u:2 * u]) * c + gate(z[:, :u]) * act(z[:, 2 * u:3 * u])
        return gate(z[:, 3 * u:]) * act(c), c

    zeros = np.zeros((len(xs), u), xs.dtype)
    return _scan(step, xs, (zeros, zeros), backwards, sequences)
'''


@dataclass(frozen=True)
class Cell:
    helper: str  # the helper function that runs the layer
    gates: int  # the kernel's column blocks: units x gates
    step_flops: int  # elementwise operations per unit per step (the adds, the activations, the gating)


# SimpleRNN: add, activation. GRU: 3 adds, 3 activations, the reset product, z*h + (1-z)*hh (4). LSTM: 4 activations
# of the gates and 1 of the carry, f*c + i*g (3), o*act(c) (1), and the adds folded into the 4 pre-activations (4).
CELLS: dict[str, Cell] = {
    "SimpleRNN": Cell("_simple_rnn", 1, 2),
    "GRU": Cell("_gru", 3, 11),
    "LSTM": Cell("_lstm", 4, 13),
}


def _units(call: Call) -> int:
    (units,) = ints(call, "units", 1)
    return units


def _sequence(call: Call) -> Shape:
    shape = single_input(call)
    if len(shape) != 2 or min(shape) < 1:
        raise BadConfig(call.node, f"{call.node.cls} reads (time steps, features) inputs, not {shape}")
    return shape


def _function(call: Call, field: str, default: str) -> str:
    """An activation field as the code of a NumPy lambda; :class:`Unsupported` naming the field."""
    try:
        name = activation_name(call.node, call.cfg.get(field, default))
    except Unsupported as exc:
        raise Unsupported(call.node, f"{field}: {exc.why}") from None
    return f"lambda z: {ACTIVATIONS[name].code.format('z')}"


def recurrent(call: Call) -> Emitted:
    """SimpleRNN, GRU and LSTM: units, activation, recurrent_activation, use_bias, return_sequences, go_backwards,
    and a GRU's reset_after."""
    cell = CELLS[call.node.cls]
    (steps, features), units = _sequence(call), _units(call)
    for field, why in (("return_state", "returns its states too (several outputs)"),
                       ("stateful", "keeps its state from one call to the next")):  # fmt: skip
        if flag(call, field, False):
            raise Unsupported(call.node, f"{field}=True: the layer {why}, which a twin does not")
    use_bias, sequences = flag(call, "use_bias", True), flag(call, "return_sequences", False)
    backwards = flag(call, "go_backwards", False)
    reset_after = cell.helper == "_gru" and flag(call, "reset_after", True)
    width = units * cell.gates
    weights = [("kernel", (features, width)), ("recurrent_kernel", (units, width))]
    if use_bias:
        weights.append(("bias", (2, width) if reset_after else (width,)))
    args = [call.args[0], call.w("kernel"), call.w("recurrent_kernel"), call.w("bias") if use_bias else "None"]
    args.append(_function(call, "activation", "tanh"))
    if cell.gates > 1:
        args.append(_function(call, "recurrent_activation", "sigmoid"))
    if cell.helper == "_gru":
        args.append(f"reset_after={reset_after}")
    args += [f"backwards={backwards}", f"sequences={sequences}"]
    biases = (1 + reset_after) * width if use_bias else 0  # the input bias, and a reset_after GRU's recurrent one
    flops = steps * (2 * features * width + 2 * units * width + cell.step_flops * units + biases)
    out = (steps, units) if sequences else (units,)
    return Emitted(f"{cell.helper}({', '.join(args)})", out, tuple(weights), flops, features + units)


# -- the wrappers --------------------------------------------------------------------------------------------------


def _wrapped(call: Call, field: str, allowed: tuple[str, ...], name: str) -> Call:
    """The layer a wrapper holds in its config ``field``, as a call of its own on the wrapper's inputs, its weights
    keyed under ``name``; :class:`Unsupported` when it is missing or not one of ``allowed``."""
    inner = call.cfg.get(field)
    cls = inner.get("class_name") if isinstance(inner, dict) else None
    if not isinstance(cls, str) or not isinstance(inner.get("config"), dict):  # Keras cannot build it either
        raise BadConfig(call.node, f"{field}={shown(inner)}: expected a layer (its class_name and config)")
    if cls not in allowed:
        raise Unsupported(call.node, f"{field}: a {cls}, and {call.node.cls} has a NumPy twin over "
                          f"{', '.join(allowed)} only")  # fmt: skip
    return Call(Node(name, cls, inner["config"], call.node.inputs), call.args, call.shapes)


def _inside(call: Call, inner: Call, emitter: Emitter) -> Emitted:
    """The wrapped layer's emitted code; its refusal is the wrapper's, naming the wrapped class."""
    try:
        return emitter(inner)
    except Unsupported as exc:  # a broken config stays broken (BadConfig), naming the wrapped class
        raise type(exc)(call.node, f"its {inner.node.cls}: {exc.why}") from None


MERGE_MODES = {"concat": "np.concatenate([{f}, {b}], axis=-1)", "sum": "{f} + {b}", "mul": "{f} * {b}",
               "ave": "({f} + {b}) / 2"}  # fmt: skip


def _backward(call: Call, forward: Call) -> Call:
    """A Bidirectional's backward layer: its saved ``backward_layer``, else (as Keras builds it) the forward
    layer's config reading backwards."""
    if call.cfg.get("backward_layer") is None:
        node = Node(f"{call.node.name}/backward", forward.node.cls, {**forward.cfg, "go_backwards": True},
                    call.node.inputs)  # fmt: skip
        return Call(node, call.args, call.shapes)
    return _wrapped(call, "backward_layer", tuple(CELLS), f"{call.node.name}/backward")


def bidirectional(call: Call) -> Emitted:
    """The wrapped layer forwards and backwards, the backward outputs flipped to time order when they are
    sequences, merged by ``merge_mode``."""
    mode = call.cfg.get("merge_mode", "concat")
    if mode not in MERGE_MODES:
        raise Unsupported(call.node, f"merge_mode={mode!r}: the twin supports {', '.join(MERGE_MODES)}"
                          + (" (None returns two tensors)" if mode is None else ""))  # fmt: skip
    forward = _wrapped(call, "layer", tuple(CELLS), f"{call.node.name}/forward")
    f, b = _inside(call, forward, recurrent), _inside(call, _backward(call, forward), recurrent)
    if f.shape != b.shape:
        raise Unsupported(call.node, f"its two directions give different outputs, {f.shape} and {b.shape}")
    sequences = len(f.shape) == 2
    code = MERGE_MODES[mode].format(f=f.code, b=f"{b.code}[:, ::-1]" if sequences else b.code)
    out = (*f.shape[:-1], 2 * f.shape[-1]) if mode == "concat" else f.shape
    merge_flops = {"concat": 0, "sum": 1, "mul": 1, "ave": 2}[mode] * math.prod(f.shape)
    weights = tuple((f"forward/{n}", s) for n, s in f.weights) + tuple((f"backward/{n}", s) for n, s in b.weights)
    return Emitted(code, out, weights, f.flops + b.flops + merge_flops, max(f.reduction, b.reduction))


def time_distributed(call: Call) -> Emitted:
    """TimeDistributed(Dense): the Dense on every step at once (its matmul broadcasts over the time axis)."""
    shape = single_input(call)
    if len(shape) < 2:
        raise BadConfig(call.node, f"TimeDistributed reads (time steps, ...) inputs, not {shape}")
    inner = _wrapped(call, "layer", ("Dense",), call.node.name)
    try:
        ints(inner, "units", 1)
    except BadConfig as exc:
        raise BadConfig(call.node, f"its Dense: {exc.why}") from None
    return _inside(call, inner, dense)


LAYERS: dict[str, Emitter] = {
    "SimpleRNN": recurrent,
    "GRU": recurrent,
    "LSTM": recurrent,
    "Bidirectional": bidirectional,  # reads W["<layer>/forward/<variable>"] and W["<layer>/backward/<variable>"]
    "TimeDistributed": time_distributed,
}
