"""Fuzz the CLI with hostile ``.keras`` files: every mutated file ends in exit 0, 1 or 2, with one line, in time.

Issue 21: "one line for any broken or hostile model file, never a traceback". This builds four small real models
with Keras in a child process (a Dense MLP and a small CNN, Sequential; a GRU model and an Embedding +
GlobalAveragePooling1D text model, Functional), then writes ``--files`` mutated copies of them: each copy's
``config.json`` gets one to three seeded random mutations (wrong types where an int is expected, negative, zero
and huge sizes, unknown keys, 10,000-deep nesting, long names full of quotes, newlines, ANSI escapes, rich markup
and HTML, removed required keys, wrong class names and modules, a broken input shape, dtype or activation) or its
``model.weights.h5`` is swapped for another model's, cut short or dropped.

Each file goes through the real CLI in a child process, ``kbench parity --model FILE --batch 1 --path call``: the
cheapest command that still reads the file, generates the twin, loads the model in a worker and checks parity
(numpy and one Keras path; ``--command run`` uses ``kbench run --quick --batch 1 --processes 1 --cell-budget 0.05
--path call --no-report`` instead). A file's outcome is one of:

- exit 0: a valid model; exit 1: a real parity failure (a ``parity FAILED`` line, no worker failure); exit 2: refused
  with exactly one ``kbench: error:`` line on stderr;
- a **finding**: any other exit code, a ``Traceback``, a raw escape character or a worker failure in the output,
  more than one error line, or a run past ``--cap`` seconds.

It prints the counts per exit code, each finding with its file's mutations and the last error line, and the wall
time; the exit status is 1 when there is a finding. Reproduce one file with ``--only INDEX`` (same ``--seed``).

    python benchmarks/fuzz_cli.py --files 40 --jobs 2              # a smoke test, about a minute
    nice python benchmarks/fuzz_cli.py --files 1000 --jobs 2       # issue 21's run (about half an hour on 2 cores)
    python benchmarks/fuzz_cli.py --seed 7 --only 123 --keep fuzz  # one file again, kept in ./fuzz

Mutated files and outputs live in a temporary folder (``--keep DIR`` keeps them), never in the repository.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

BUILD = r'''
import os, sys
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras
from keras import layers
keras.utils.set_random_seed(0)
out = sys.argv[1]
keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(4)]).save(f"{out}/mlp.keras")
keras.Sequential([keras.Input((12, 12, 3)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                  layers.Flatten(), layers.Dense(3)]).save(f"{out}/cnn.keras")
x = keras.Input((6, 5), name="steps")
keras.Model(x, layers.Dense(2)(layers.GRU(8)(x)), name="gru_model").save(f"{out}/gru.keras")
t = keras.Input((10,), dtype="int32", name="tokens")
y = layers.Dense(2)(layers.GlobalAveragePooling1D()(layers.Embedding(50, 8)(t)))
keras.Model(t, y, name="text_model").save(f"{out}/text.keras")
'''
BASES = ("mlp", "cnn", "gru", "text")

HOSTILE_NAMES = ['a"b\'c', "line\nbreak", "\x1b[31mred\x1b[0m", "[bold]x[/bold][/]", "<script>alert(1)</script>",
                 "`code` *md* | pipe |", "\r\x00\x07", "é✓🙂", "L" * 5000, "'; import os; #", "\\x1b[2J",
                 '"""', "}{}{%s%d", "\u202eevil"]  # fmt: skip
WRONG_VALUES: list[Any] = ["abc", "3", [1, 2, 3], [], {"a": 1}, {}, None, True, False, 3.5, 0.0, float("nan"),
                           float("inf"), -1, 0, -(2**31), 2**31, 2**40, 10**18, 10**30, "\x1b[2J"]  # fmt: skip
SIZES: list[Any] = [-1, 0, -(10**9), 1, 2**31, 2**40, 10**18, 10**100]
CLASSES = ["Densee", "Conv2D", "LSTM", "Dense", "Lambda", "Sequential", "Functional", "InputLayer", "Embedding",
           "Reshape", "Bidirectional", "", 5, None, ["Dense"], "MultiHeadAttention", "Softmax", "GRU"]  # fmt: skip


# -- building and mutating ---------------------------------------------------------------------------------------------


def build_bases(folder: Path) -> dict[str, dict[str, bytes]]:
    """The four models, saved by Keras in a child process: name -> the zip's members."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", BUILD, str(folder)], check=True, env=env, capture_output=True)
    out = {}
    for name in BASES:
        with zipfile.ZipFile(folder / f"{name}.keras") as z:
            out[name] = {n: z.read(n) for n in z.namelist()}
    return out


def _layers(cfg: dict) -> list[dict]:
    layers = (cfg.get("config") or {}).get("layers") if isinstance(cfg.get("config"), dict) else None
    return [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []


def _layer(rng: random.Random, cfg: dict, inputs: bool = False) -> dict | None:
    pick = [x for x in _layers(cfg) if inputs or x.get("class_name") != "InputLayer"]
    return rng.choice(pick) if pick else None


def _field(rng: random.Random, layer: dict) -> str | None:
    conf = layer.get("config")
    keys = [k for k in conf if k not in ("dtype",)] if isinstance(conf, dict) else []
    return rng.choice(keys) if keys else None


DEEP = "__kbench_fuzz_deep_{}_{}__"  # a placeholder, replaced in the JSON text (no deep object is ever built)


def _nested(depth: int, kind: str) -> str:
    return DEEP.format(kind, depth)


def _deep_json(text: str) -> str:
    """The placeholders of :func:`_nested` as ``depth``-deep JSON lists or objects."""
    def deep(m: re.Match) -> str:
        kind, depth = m.group(1), int(m.group(2))
        return ("[" * depth + "1" + "]" * depth) if kind == "list" else ('{"k": ' * depth + "1" + "}" * depth)

    return re.sub(r'"__kbench_fuzz_deep_(list|dict)_(\d+)__"', deep, text)


def m_wrong_type(rng, cfg, files):
    layer = _layer(rng, cfg)
    field = _field(rng, layer) if layer else None
    if field is None:
        return "nothing to change"
    value = rng.choice(WRONG_VALUES)
    layer["config"][field] = value
    return f"{layer['class_name']}.{field} = {value!r:.40}"


def m_size(rng, cfg, files):
    layer = _layer(rng, cfg)
    if layer is None:
        return "nothing to change"
    conf = layer["config"]
    ints = [k for k, v in conf.items() if (type(v) is int) or (isinstance(v, list) and v and all(type(i) is int for i in v))]
    field = rng.choice(ints or ["units"])
    value = rng.choice(SIZES)
    conf[field] = [value] * len(conf[field]) if isinstance(conf.get(field), list) and rng.random() < 0.7 else value
    return f"{layer['class_name']}.{field} = {conf[field]!r:.40}"


def m_input_shape(rng, cfg, files):
    layer = _layer(rng, cfg, inputs=True)
    if layer is None or layer.get("class_name") != "InputLayer":
        layer = next((x for x in _layers(cfg) if x.get("class_name") == "InputLayer"), None)
    if layer is None:
        return "no input layer"
    shape = layer["config"].get("batch_shape")
    shape = list(shape) if isinstance(shape, list) else [None, 4]
    choice = rng.randrange(5)
    if choice == 0 and len(shape) > 1:
        shape[rng.randrange(1, len(shape))] = rng.choice(WRONG_VALUES + SIZES)
    elif choice == 1:
        shape = shape + [rng.choice([1, 3, 2**20])]
    elif choice == 2:
        shape = shape[:-1]
    elif choice == 3:
        shape = rng.choice(WRONG_VALUES)
    else:
        layer["config"]["dtype"] = rng.choice(["float16", "string", "bool", "int64", "complex64", 7, None,
                                               {"config": "x"}, {"class_name": "DTypePolicy", "config": {"name": 3}}])
        return f"input dtype = {layer['config']['dtype']!r}"
    layer["config"]["batch_shape"] = shape
    return f"input batch_shape = {shape!r:.60}"


def m_unknown_key(rng, cfg, files):
    where = rng.choice([cfg, cfg.get("config"), _layer(rng, cfg), (_layer(rng, cfg) or {}).get("config")])
    if not isinstance(where, dict):
        return "nothing to change"
    key = rng.choice(["zzz", "units2", "__class__", "<b>", "\x1b[2J", "a" * 300])
    where[key] = rng.choice(WRONG_VALUES)
    return f"unknown key {key!r:.20}"


def m_deep(rng, cfg, files):
    kind, depth = rng.choice(["list", "dict"]), rng.choice([100, 1000, 10_000])
    layer = _layer(rng, cfg)
    field = rng.choice([_field(rng, layer), "zzz"]) if layer else None
    if field is None:
        cfg["config"]["deep"] = _nested(depth, kind)
        return f"model.deep = {depth}-deep {kind}"
    layer["config"][field] = _nested(depth, kind)
    return f"{layer['class_name']}.{field} = {depth}-deep {kind}"


def _rename(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _rename(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, old, new) for v in value]
    return new if value == old else value


def m_name(rng, cfg, files):
    layer = _layer(rng, cfg, inputs=True)
    new = "".join(rng.sample(HOSTILE_NAMES, rng.randint(1, 3)))
    if layer is None or rng.random() < 0.2:
        cfg.setdefault("config", {})["name"] = new
        return f"model name = {new!r:.40}"
    old = layer.get("name", (layer.get("config") or {}).get("name"))
    cfg.update(_rename(cfg, old, new))
    return f"rename {old!r} -> {new!r:.40}"


def m_remove(rng, cfg, files):
    layer = _layer(rng, cfg, inputs=rng.random() < 0.3)
    roll = rng.random()
    if layer is None or roll < 0.1:
        key = rng.choice(["config", "class_name", "module"])
        cfg.pop(key, None)
        return f"model without {key}"
    if roll < 0.3:
        key = rng.choice(["config", "class_name", "module", "name", "inbound_nodes", "build_config"])
        layer.pop(key, None)
        return f"{layer.get('class_name')} without {key}"
    if roll < 0.4:
        body = cfg["config"]
        key = rng.choice(["layers", "input_layers", "output_layers", "name"])
        body.pop(key, None)
        return f"model config without {key}"
    field = _field(rng, layer)
    if field is not None:
        layer["config"].pop(field)
    return f"{layer['class_name']} config without {field}"


def m_class(rng, cfg, files):
    layer = _layer(rng, cfg, inputs=rng.random() < 0.2)
    if layer is None or rng.random() < 0.1:
        cfg["class_name"] = rng.choice(CLASSES)
        return f"model class = {cfg['class_name']!r}"
    if rng.random() < 0.25:
        layer["module"] = rng.choice(["evil", "keras.evil", "", None, 3, "os"])
        return f"{layer['class_name']} module = {layer['module']!r}"
    old, layer["class_name"] = layer.get("class_name"), rng.choice(CLASSES)
    return f"class {old} -> {layer['class_name']!r}"


def m_layers(rng, cfg, files):
    body = cfg.get("config")
    layers = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(layers, list) or not layers:
        return "no layers"
    roll = rng.randrange(4)
    if roll == 0:
        del layers[rng.randrange(len(layers))]
        return "a layer deleted"
    if roll == 1:
        layers.insert(rng.randrange(len(layers) + 1), copy.deepcopy(rng.choice(layers)))
        return "a layer duplicated"
    if roll == 2:
        rng.shuffle(layers)
        return "layers shuffled"
    body["layers"] = rng.choice(WRONG_VALUES)
    return f"layers = {body['layers']!r:.40}"


def m_activation(rng, cfg, files):
    layer = _layer(rng, cfg)
    if layer is None or not isinstance(layer.get("config"), dict):
        return "nothing to change"
    field = rng.choice(["activation", "recurrent_activation", "dtype"])
    value = rng.choice(["nope", "softmax", "gelu", "linear", 3, None, {"class_name": "function", "config": 5},
                        {"module": "evil", "class_name": "function", "config": "relu"}, "float16", "mixed_float16",
                        {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"}}])  # fmt: skip
    layer["config"][field] = value
    return f"{layer['class_name']}.{field} = {value!r:.50}"


def m_weights(rng, cfg, files):
    roll = rng.randrange(4)
    if roll == 0:
        other = rng.choice(BASES)
        files["model.weights.h5"] = BASE_FILES[other]["model.weights.h5"]
        return f"weights of {other}"
    if roll == 1:
        files["model.weights.h5"] = files["model.weights.h5"][: rng.randrange(1, 4000)]
        return "weights cut short"
    if roll == 2:
        files.pop("model.weights.h5", None)
        return "no weights file"
    files["metadata.json"] = rng.choice([b"{", b"[]", b'{"keras_version": "1.0"}'])
    return "metadata broken"


MUTATIONS: dict[str, Callable[..., str]] = {
    "wrong_type": m_wrong_type, "size": m_size, "input_shape": m_input_shape, "unknown_key": m_unknown_key,
    "deep": m_deep, "name": m_name, "remove": m_remove, "class": m_class, "layers": m_layers,
    "activation": m_activation, "weights": m_weights,
}  # fmt: skip
BASE_FILES: dict[str, dict[str, bytes]] = {}


@dataclass(frozen=True)
class Mutant:
    index: int
    path: Path
    base: str
    mutations: tuple[str, ...]


def make_mutant(index: int, seed: int, folder: Path) -> Mutant:
    """File ``index``: a base model with 1-3 mutations, drawn from a generator seeded by (seed, index)."""
    rng = random.Random(f"{seed}/{index}")
    base = rng.choice(BASES)
    files = dict(BASE_FILES[base])
    cfg = json.loads(files["config.json"])
    done = []
    for kind in rng.sample(list(MUTATIONS), rng.choice([1, 1, 2, 3])):
        try:
            done.append(f"{kind}: {MUTATIONS[kind](rng, cfg, files)}")
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:  # the config is already broken
            done.append(f"{kind}: skipped ({type(exc).__name__})")
    files["config.json"] = _deep_json(json.dumps(cfg)).encode()
    path = folder / f"f{index:05d}.keras"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return Mutant(index, path, base, tuple(done))


# -- running and judging -----------------------------------------------------------------------------------------------

COMMANDS = {
    "parity": ("parity", "--batch", "1", "--path", "call"),
    "run": ("run", "--quick", "--batch", "1", "--processes", "1", "--cell-budget", "0.05", "--path", "call",
            "--no-report"),
}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    code: int | None  # None: over the cap
    seconds: float
    finding: str  # "" when the outcome is one of the allowed ones
    last: str  # the last error line (or the stdout's last line)


def judge(code: int | None, out: str, err: str) -> str:
    """Why an outcome is a finding, or "" when it is exit 0, 1 (a parity failure) or 2 (one line)."""
    err_lines = [line for line in err.splitlines() if line.strip()]
    if code is None:
        return "over the time cap"
    if "Traceback" in out or "Traceback" in err:
        return "a traceback"
    if "\x1b" in out or "\x1b" in err:
        return "a raw escape character in the output"
    if code not in (0, 1, 2):
        return f"exit {code}"
    if "worker failure" in out:
        return "a worker failure (the worker failed on the file, exit 1)"
    if code == 2 and (len(err_lines) != 1 or not err_lines[0].startswith("kbench: error: ")):
        return f"exit 2 with {len(err_lines)} error lines"
    if code != 2 and err_lines:
        return f"exit {code} with {len(err_lines)} error line(s)"
    if code == 1 and "parity FAILED" not in out:
        return "exit 1 without a parity failure"
    return ""


def run_one(mutant: Mutant, command: str, cap: float, cwd: Path, backend: str = "tensorflow") -> Outcome:
    env = {**os.environ, "KBENCH_NO_PROGRESS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [sys.executable, "-m", "kbench", *COMMANDS[command][:1], "--model", str(mutant.path), *COMMANDS[command][1:],
            "--backend", backend]  # fmt: skip
    if command == "run":
        argv += ["--out", str(cwd / f"out{mutant.index}")]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=cap, cwd=cwd, env=env, errors="replace")
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = None, _text(exc.stdout), _text(exc.stderr)
    told = [x for x in out.splitlines() if x.startswith("kbench: ")]  # a worker failure or parity FAILED line
    lines = [x for x in err.splitlines() if x.strip()] + told or [x for x in out.splitlines() if x.strip()]
    return Outcome(mutant, code, time.perf_counter() - t0, judge(code, out, err), lines[-1] if lines else "")


def _text(data: Any) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def shown(text: str, limit: int = 300) -> str:
    text = repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def report(outcomes: list[Outcome], wall: float) -> None:
    codes = Counter("over cap" if o.code is None else o.code for o in outcomes)
    findings = [o for o in outcomes if o.finding]
    print(f"\n{len(outcomes)} files in {wall:.0f} s ({wall / 60:.1f} min); per exit code: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str)))  # fmt: skip
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"slowest file: {slowest.seconds:.1f} s (f{slowest.mutant.index:05d})")
    by_kind = Counter(m.split(":")[0] for o in outcomes for m in o.mutant.mutations)
    print("mutations applied: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    print(f"findings: {len(findings)}")
    for o in findings:
        print(f"  f{o.mutant.index:05d} ({o.mutant.base}) exit {o.code}: {o.finding}")
        print(f"      mutations: {shown('; '.join(o.mutant.mutations))}")
        print(f"      last line: {shown(o.last)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1000, help="how many mutated files (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="files run at once, one child process each (default 2)")
    ap.add_argument("--cap", type=float, default=60.0, help="seconds per file before it counts as a finding")
    ap.add_argument("--command", choices=sorted(COMMANDS), default="parity")
    ap.add_argument("--backend", default="tensorflow", help="the workers' Keras backend (jax starts faster)")
    ap.add_argument("--only", type=int, action="append", help="run only this file index (repeatable)")
    ap.add_argument("--keep", type=Path, help="keep the bases, mutated files and outputs in this folder")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kbench-fuzz-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        BASE_FILES.update(build_bases(folder))
        indices = args.only or range(args.files)
        mutants = [make_mutant(i, args.seed, folder) for i in indices]
        print(f"{len(mutants)} mutated files of {', '.join(BASES)} (seed {args.seed}), {args.jobs} at a time, "
              f"`kbench {' '.join(COMMANDS[args.command])} --backend {args.backend}`, cap {args.cap:g} s", flush=True)  # fmt: skip
        outcomes = []
        with ThreadPoolExecutor(args.jobs) as pool:
            for o in pool.map(lambda m: run_one(m, args.command, args.cap, folder, args.backend), mutants):
                outcomes.append(o)
                mark = f"FINDING: {o.finding}" if o.finding else ""
                print(f"f{o.mutant.index:05d} exit {o.code} {o.seconds:5.1f}s {mark}", flush=True)
        report(outcomes, time.perf_counter() - t0)
    return 1 if any(o.finding for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
