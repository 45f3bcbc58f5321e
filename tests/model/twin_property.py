"""The property test of the NumPy twins, on any Keras backend: random layer configurations, Keras' outputs computed
in one child process per backend, every twin built from the saved config alone and checked with kbench's parity rule.

Used by ``test_twins_property.py`` (a few dozen configurations per layer on each backend, so CI stays short) and by
``benchmarks/twin_property_counts.py`` (at least 200 per layer, the table of counts). A configuration is a dict:
``cls`` (a keras.layers class), ``kwargs``, ``shapes`` (its inputs' shapes, batch left out), ``scale`` (of the
random inputs), and for MultiHeadAttention ``keywords`` (call by keyword: the inputs' argument names) or ``self``
(one input passed as query and value). Keras refusing a configuration is counted apart, not a failure; so are the
known bugs of Keras on a backend (:func:`keras_bug`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kbench.measure import parity
from kbench.model import autotwin, keras_file

CONV_KINDS = ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling1D", "MaxPooling2D",
              "AveragePooling1D", "AveragePooling2D")  # fmt: skip
RNN_KINDS = ("SimpleRNN", "GRU", "LSTM")
KINDS = (*CONV_KINDS, *RNN_KINDS, "MultiHeadAttention")
ACTS = ["linear", "relu", "tanh", "sigmoid", "softmax"]
RNN_ACTS = ("tanh", "relu", "sigmoid", "linear", "hard_sigmoid", "softsign", "elu", "swish")
# gates that saturate slowly on random weights: a GRU whose update gate is within ~1e-3 of 1 fails the parity rule
# (see test_twins_recurrent's saturated-gate test); tanh gates got there in 3 of 600 draws
GATES = ("sigmoid", "hard_sigmoid", "softsign")


# -- random configurations ---------------------------------------------------------------------------------------------


def _window_kwargs(rng: np.random.Generator, n: int, conv: bool) -> dict:
    """Kernel or pool size, strides, padding, data format (and dilation for a convolution), tiny and random."""
    size = [int(v) for v in rng.integers(1, 5 if conv else 4, n)]
    kw = {"kernel_size" if conv else "pool_size": size, "padding": str(rng.choice(["valid", "same"])),
          "data_format": "channels_first" if rng.random() < 0.25 else "channels_last"}  # fmt: skip
    dilated = conv and rng.random() < 0.4
    if dilated:
        kw["dilation_rate"] = [int(v) for v in rng.integers(1, 4, n)]
    if not dilated or rng.random() < 0.1:  # Keras refuses strides > 1 with dilation > 1 on Conv1D/2D
        kw["strides"] = [int(v) for v in rng.integers(1, 4, n)]
    if not conv and rng.random() < 0.3:
        kw.pop("strides", None)  # strides default to the pool size
    return kw


def conv_config(rng: np.random.Generator, cls: str) -> dict:
    """A random convolution or pooling layer (``cls``) and an input it may or may not fit."""
    n = 1 if cls.endswith("1D") else 2
    conv = "Conv" in cls
    kw = _window_kwargs(rng, n, conv)
    groups = int(rng.choice([1, 1, 2, 3])) if cls in ("Conv1D", "Conv2D") else 1
    channels = groups * int(rng.integers(1, 4))
    if cls in ("Conv1D", "Conv2D"):
        kw.update(filters=groups * int(rng.integers(1, 4)), groups=groups)
        if n == 1 and rng.random() < 0.2:
            kw["padding"] = "causal"
    if cls in ("DepthwiseConv2D", "SeparableConv2D"):
        kw["depth_multiplier"] = int(rng.integers(1, 4))
    if cls == "SeparableConv2D":
        kw["filters"] = int(rng.integers(1, 5))
    if conv:
        kw.update(use_bias=bool(rng.random() < 0.7), activation=str(rng.choice(ACTS)))
    size, dilation = kw.get("kernel_size", kw.get("pool_size")), kw.get("dilation_rate", [1] * n)
    spans = [(k - 1) * d + 1 for k, d in zip(size, dilation)]
    sizes = [max(1, span + int(rng.integers(-1, 6))) for span in spans]  # now and then too short for a valid window
    shape = [channels, *sizes] if kw["data_format"] == "channels_first" else [*sizes, channels]
    return {"cls": cls, "kwargs": kw, "shapes": [shape], "scale": 2.0}


def rnn_config(rng: np.random.Generator, cls: str) -> dict:
    """A random SimpleRNN, GRU or LSTM: tiny shapes, every option drawn."""
    kw = {"units": int(rng.integers(1, 7)), "return_sequences": bool(rng.random() < 0.5),
          "go_backwards": bool(rng.random() < 0.5), "use_bias": bool(rng.random() < 0.8),
          "activation": str(rng.choice(RNN_ACTS))}  # fmt: skip
    if cls != "SimpleRNN":
        kw["recurrent_activation"] = str(rng.choice(GATES))
    if cls == "GRU":
        kw["reset_after"] = bool(rng.random() < 0.5)
    return {"cls": cls, "kwargs": kw, "shapes": [[int(rng.integers(1, 8)), int(rng.integers(1, 6))]], "scale": 1.5}


def mha_config(rng: np.random.Generator, cls: str = "MultiHeadAttention") -> dict:
    """A random MultiHeadAttention: self or cross, with or without a key, positional or keyword call, 1 or 2
    attended axes, ``value_dim``, ``output_shape``, ``use_bias``, ``dropout`` (inactive at inference)."""
    kw: dict = {"num_heads": int(rng.integers(1, 5)), "key_dim": int(rng.integers(1, 9)),
                "use_bias": bool(rng.random() < 0.7)}  # fmt: skip
    if rng.random() < 0.4:
        kw["value_dim"] = int(rng.integers(1, 9))
    if rng.random() < 0.3:
        kw["output_shape"] = int(rng.integers(1, 9)) if rng.random() < 0.7 else [int(v) for v in rng.integers(1, 4, 2)]
    if rng.random() < 0.2:
        kw["dropout"] = 0.25
    axes = 1 if rng.random() < 0.85 else 2
    steps = lambda: [int(v) for v in rng.integers(1, 9 if axes == 1 else 4, axes)]  # noqa: E731
    query = [*steps(), int(rng.integers(1, 9))]
    config = {"cls": cls, "kwargs": kw, "scale": 1.0}
    kind = rng.choice(["self", "cross", "key"])
    if kind == "self":
        return {**config, "shapes": [query, query], "self": True}
    value_steps = steps()
    shapes = [query, [*value_steps, int(rng.integers(1, 9))]]
    if kind == "key":
        shapes.append([*value_steps, int(rng.integers(1, 9))])
    if rng.random() < 0.3:
        config["keywords"] = ["query", "value", "key"][: len(shapes)]
    return {**config, "shapes": shapes}


GENERATORS = {**dict.fromkeys(CONV_KINDS, conv_config), **dict.fromkeys(RNN_KINDS, rnn_config),
              "MultiHeadAttention": mha_config}  # fmt: skip


def random_configs(per_kind: dict[str, int], seed: int) -> list[dict]:
    """``per_kind[cls]`` seeded random configurations of each layer class."""
    rng = np.random.default_rng(seed)
    return [GENERATORS[cls](rng, cls) for cls, n in per_kind.items() for _ in range(n)]


# -- Keras' outputs, in a child process on the backend -----------------------------------------------------------------

CHILD = """
import json, os, sys
import numpy as np
import keras
from keras import layers as L
from kbench.model.keras_spec import weight_keys

folder = sys.argv[1]
with open(os.path.join(folder, "configs.json")) as f:
    configs = json.load(f)
rng = np.random.default_rng(1)
keras.utils.set_random_seed(1)  # Keras' initializers too: the same weights every run
arrays, results = {}, []
for i, c in enumerate(configs):
    try:
        layer = getattr(L, c["cls"])(name="l", **c["kwargs"])
        shapes = c["shapes"][:1] if c.get("self") else c["shapes"]
        xs = [(c["scale"] * rng.standard_normal((3, *s))).astype("float32") for s in shapes]
        if c.get("self"):
            call = lambda: layer(xs[0], xs[0])
        elif c.get("keywords"):
            call = lambda: layer(**dict(zip(c["keywords"], xs)))
        else:
            call = lambda: layer(*xs)
        if len(c["shapes"]) == 1 and min(layer.compute_output_shape(xs[0].shape)[1:]) < 1:
            raise ValueError("no output")  # TensorFlow's pooling kernels crash (SIGFPE) on these
        call()
        layer.set_weights([w + rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in layer.get_weights()])
        y = keras.ops.convert_to_numpy(call())
    except Exception as exc:  # Keras refuses the configuration: skipped, and counted
        results.append({"skip": f"{type(exc).__name__}: {str(exc)[:160]}"})
        continue
    results.append({"layer": keras.saving.serialize_keras_object(layer)})
    arrays.update({f"{i}:x{j}": x for j, x in enumerate(xs)})
    arrays[f"{i}:y"] = y
    arrays.update({f"{i}:w:{k}": keras.ops.convert_to_numpy(v.value) for k, v in weight_keys(layer)})
np.savez(os.path.join(folder, "arrays.npz"), **arrays)
with open(os.path.join(folder, "results.json"), "w") as f:
    json.dump(results, f)
"""


def keras_outputs(folder: Path, configs: list[dict], backend: str, timeout: float = 1800):
    """Run every configuration through Keras on ``backend`` in one child process: its results (a serialized layer,
    or why Keras refused it) and arrays (``<i>:x<j>``, ``<i>:y``, ``<i>:w:<key>``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configs.json").write_text(json.dumps(configs))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "JAX_PLATFORMS": "cpu"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"the Keras child on {backend} failed: {proc.stderr[-3000:]}")
    return json.loads((folder / "results.json").read_text()), np.load(folder / "arrays.npz")


# -- Keras' known bugs, per backend ------------------------------------------------------------------------------------


def keras_bug(config: dict, y: np.ndarray, backend: str = "tensorflow") -> str:
    """Which known bug of Keras 3.15 on ``backend`` (CPU) makes Keras' output wrong for this config, or "":

    - ``bias`` (TensorFlow): a channels_first convolution with a bias whose length is the output's last axis gets
      the bias added along that last axis (Keras' TensorFlow ``ops.add`` takes a bias-shaped operand for
      ``tf.nn.bias_add`` and picks NHWC when the last axis matches, whatever the operand's own shape);
    - ``depthwise`` (TensorFlow and torch): the CPU depthwise convolution (DepthwiseConv2D, SeparableConv2D) returns
      garbage, at random, when the row stride is below the column stride and the output is one column wide, several
      rows high (JAX gets these right, and so does the twin);
    - ``pad`` (torch): a ``same`` average pooling whose padding on an axis is odd (one more zero after than
      before) counts the padded zeros in its edge windows (TensorFlow and JAX average the real elements only; see
      ``test_autotwin.BACKEND_INACCURACIES``);
    - ``mha_bias`` (TensorFlow): the same ``ops.add`` in a MultiHeadAttention projection whose bias squeezes to a
      vector that is not along the projection's last axis (a ``(heads, 1)`` bias, an ``output_shape`` like
      ``(3, 1)``): when the projected tensor's first step axis is as long, the bias is added along it (NCHW
      ``bias_add``) (:func:`mha_bias_bug`);
    - ``elu`` (TensorFlow): TensorFlow's ELU computes ``exp(x) - 1``, not ``expm1(x)``: near 0 it cancels (19% off
      at x = -1e-7, 0.1% at -1e-4; JAX and torch, and the twin, are exact), and a recurrent layer's pre-activation
      lands there now and then.
    """
    cls, kw = config["cls"], config["kwargs"]
    if backend == "torch" and cls.startswith("AveragePooling") and _odd_same_pad(config):
        return "pad"
    if backend == "tensorflow" and kw.get("activation") == "elu":
        return "elu"
    if backend == "tensorflow" and cls == "MultiHeadAttention":
        return "mha_bias" if mha_bias_bug(kw, config["shapes"]) else ""
    if backend == "jax" or "Conv" not in cls:
        return ""
    first = kw.get("data_format") == "channels_first"
    channels = y.shape[1] if first else y.shape[-1]
    if backend == "tensorflow" and first and kw.get("use_bias") and channels > 1 and y.shape[-1] == channels:
        return "bias"
    if cls not in ("DepthwiseConv2D", "SeparableConv2D"):
        return ""
    rows, cols = y.shape[2:4] if first else y.shape[1:3]
    strides = kw.get("strides", [1, 1])
    return "depthwise" if strides[0] < strides[1] and cols == 1 < rows else ""


def _odd_same_pad(config: dict) -> bool:
    """A ``same`` pooling whose padding on some axis is odd, so one more zero after than before."""
    kw = config["kwargs"]
    if kw.get("padding") != "same":
        return False
    shape = config["shapes"][0]
    steps = shape[1:] if kw.get("data_format") == "channels_first" else shape[:-1]
    strides = kw.get("strides") or kw["pool_size"]
    return any((-(-n // s) - 1) * s + k - n > 0 and ((-(-n // s) - 1) * s + k - n) % 2 == 1
               for n, s, k in zip(steps, strides, kw["pool_size"]))  # fmt: skip


def mha_bias_bug(kw: dict, shapes: list) -> bool:
    """Whether Keras on TensorFlow adds one of a MultiHeadAttention's four biases along the wrong axis (see
    :func:`keras_bug`): Keras' ``ops.add`` squeezes the bias to one axis of length n, n is not the bias's last
    axis, and the projected tensor's first step axis is n long (n = heads, the head size being 1, or an
    ``output_shape`` like ``(3, 1)``)."""
    if not kw.get("use_bias", True):
        return False
    heads, key_dim = kw["num_heads"], kw["key_dim"]
    value_dim = kw.get("value_dim") or key_dim
    query, value = shapes[0], shapes[1]
    key = shapes[2] if len(shapes) > 2 else value
    out = kw.get("output_shape") or [query[-1]]
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    projections = (((heads, key_dim), query[0]), ((heads, key_dim), key[0]), ((heads, value_dim), value[0]),
                   (tuple(out), query[0]))  # fmt: skip
    for bias, steps in projections:
        kept = [d for d in bias if d > 1]
        if len(kept) == 1 and bias[-1] != kept[0] and steps == kept[0]:
            return True
    return False


# -- the twins, checked -------------------------------------------------------------------------------------------------


def _tensor(j: int, shape: list) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, *shape], "dtype": "float32",
                                                         "keras_history": [f"in{j}", 0, 0]}}  # fmt: skip


def graph(config: dict, layer: dict) -> keras_file.Graph:
    """The saved layer (``layer``, as serialized) called on the model's inputs as ``config`` says, read back as
    kbench reads a saved Functional model's config."""
    shapes = config["shapes"][:1] if config.get("self") else config["shapes"]
    inputs = [{"module": "keras.layers", "class_name": "InputLayer", "name": f"in{j}", "inbound_nodes": [],
               "config": {"batch_shape": [None, *s], "dtype": "float32", "name": f"in{j}"}}
              for j, s in enumerate(shapes)]  # fmt: skip
    tensors = [_tensor(0, shapes[0])] * 2 if config.get("self") else [_tensor(j, s) for j, s in enumerate(shapes)]
    keywords = config.get("keywords")
    call = {"args": [] if keywords else tensors, "kwargs": dict(zip(keywords, tensors)) if keywords else {}}
    saved = {**layer, "name": layer["config"]["name"], "inbound_nodes": [call]}
    body = {"name": "m", "layers": [*inputs, saved], "input_layers": [[f"in{j}", 0, 0] for j in range(len(shapes))],
            "output_layers": [[saved["name"], 0, 0]]}  # fmt: skip
    return keras_file.graph_from_config({"class_name": "Functional", "config": body}, "property")


def twin_parity(twin: autotwin.Twin, weights: dict, xs: list[np.ndarray], keras_out: np.ndarray):
    """kbench's parity rule on one configuration, as ``test_autotwin._check`` applies it through a spec."""
    inputs = {f"in{j}": x for j, x in enumerate(xs)}
    out = np.asarray(twin.forward(weights, inputs))
    if out.shape != keras_out.shape or out.dtype != keras_out.dtype:
        return None, f"twin {out.shape} {out.dtype} vs Keras {keras_out.shape} {keras_out.dtype}"
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    x64 = {k: v.astype(np.float64) for k, v in inputs.items()}
    ref = np.asarray(twin.forward(w64, x64), dtype=np.float64)
    tol = parity.tolerance("float32", twin.reduction)
    return parity.check("call", keras_out, ref, out, tol, twin.magnitude(w64, x64)), ""


@dataclass
class Tally:
    """One layer class's counts on one backend (mutable while counting, read once)."""

    checked: int = 0
    failures: int = 0
    refused: int = 0  # Keras refused the configuration
    bugs: int = 0  # Keras' output is wrong for it (keras_bug)
    worst: float = 0.0  # the largest error, in units of the tolerance (below 1 passes)


def check_all(configs: list[dict], results: list[dict], arrays, backend: str) -> tuple[dict[str, Tally], list[str]]:
    """Every configuration's twin against Keras' output: a :class:`Tally` per class, and the failures' messages."""
    tallies: dict[str, Tally] = {}
    failures: list[str] = []
    for i, (config, result) in enumerate(zip(configs, results)):
        tally = tallies.setdefault(config["cls"], Tally())
        if "skip" in result:
            tally.refused += 1
            continue
        if keras_bug(config, arrays[f"{i}:y"], backend):
            tally.bugs += 1
            continue
        why = _check_one(config, result["layer"], arrays, i, tally)
        if why:
            tally.failures += 1
            failures.append(f"{backend} {config}: {why}")
    return tallies, failures


def _check_one(config: dict, layer: dict, arrays, i: int, tally: Tally) -> str:
    """Check configuration ``i`` into ``tally``; why it failed, or ""."""
    twin = autotwin.build(graph(config, layer))
    tally.checked += 1
    if not isinstance(twin, autotwin.Twin):
        return twin.reason
    weights = {k.split(":", 2)[2]: arrays[k] for k in arrays.files if k.startswith(f"{i}:w:")}
    xs = [arrays[f"{i}:x{j}"] for j in range(len(config["shapes"][:1] if config.get("self") else config["shapes"]))]
    verdict, why = twin_parity(twin, weights, xs, arrays[f"{i}:y"])
    if verdict is None:
        return why
    tally.worst = max(tally.worst, verdict.max_rel_err / verdict.tol)
    return "" if verdict.ok else verdict.message


def run(folder: Path, per_kind: dict[str, int], backend: str, seed: int = 20240611, timeout: float = 1800):
    """Generate, compute on ``backend`` and check: the tallies per class and the failures."""
    configs = random_configs(per_kind, seed)
    results, arrays = keras_outputs(folder, configs, backend, timeout)
    return check_all(configs, results, arrays, backend)


def table(tallies: dict[str, Tally], backend: str) -> str:
    """The counts as a markdown table: layer | configs | failures | max error (in tolerances), and what was left out."""
    rows = [f"| {cls} | {t.checked} | {t.failures} | {t.worst:.3f} | {t.refused} | {t.bugs} |"
            for cls, t in tallies.items()]  # fmt: skip
    head = (f"backend: {backend}\n\n| layer | configs | failures | max error (x tol) | Keras refused | Keras' bugs |\n"
            "|---|---|---|---|---|---|")  # fmt: skip
    return "\n".join([head, *rows])


def least(tallies: dict[str, Tally]) -> int:
    return min((t.checked for t in tallies.values()), default=0) if tallies else 0

