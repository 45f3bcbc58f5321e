"""Model specifications: what a model file in ``models/`` declares.

A model file defines ``MODEL = ModelSpec(...)``. It declares its inputs and weights by name and symbolic shape
(``("batch", "features")``), how to build the Keras model from the weight arrays and how to compute the same
thing by hand in NumPy. kbench generates the arrays once (:mod:`kbench.model.weights`) and hands the *same* arrays to
both builds. Model files must not import Keras or TensorFlow at module level: the builder receives ``keras`` as an
argument, so the parent process can read specs without paying the backend import.

This module holds the declarations and their validation only; :mod:`kbench.model.loader` finds and loads model
files.
"""


from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from kbench.core.errors import BadSizeError, ModelLoadError

INITS = ("normal", "uniform", "glorot_uniform", "index")  # "index": integer indices in [0, high), inputs only


@dataclass(frozen=True)
class Tensor:
    """A named array with a symbolic shape: each entry is a size name (``"batch"``) or a fixed int."""

    name: str
    shape: tuple[str | int, ...]
    init: str = "normal"
    scale: float = 1.0
    high: str | int | None = None  # init="index": the indices' exclusive upper bound, a size name or a fixed int

    def resolve(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(int(sizes[d]) if isinstance(d, str) else int(d) for d in self.shape)

    def dtype_for(self, dtype: str) -> str:
        """The array's dtype in a run of ``dtype``: the run's own, or for indices int32 (int64 in float64 runs)."""
        return ("int64" if dtype == "float64" else "int32") if self.init == "index" else dtype


@dataclass(frozen=True)
class ModelSpec:
    """Everything kbench needs to know about one tiny model.

    - ``sizes``: size name -> default values (a tuple: the default grid, e.g. ``{"batch": (1, 32, 1024)}``).
    - ``options``: option name -> allowed values, the first being the default (e.g. ``{"activation": ("linear", "relu")}``).
    - ``build_keras(keras, weights, sizes, dtype, **options) -> keras.Model``: the first axis of every input is the
      Keras batch axis.
    - ``forward(weights, inputs, **options) -> np.ndarray``: the hand-written NumPy twin.
    - ``flops(sizes)``: floating point operations of one forward call.
    - ``reduction(sizes)``: length of the longest sum in the forward; parity tolerances scale with its square root.
    - ``sweep``: what ``--sweep`` measures, size name -> range (``{"batch": "2**0..2**14"}``).
    - ``output`` entries may also be ``fn(sizes) -> int`` for a derived length (a valid convolution's
      ``length - kernel_size + 1``); a result below 1 is a :class:`BadSizeError`.
    - ``magnitude(weights, inputs, **options)``: optional, the terms' magnitude M per output element for parity when
      the forward on |weights| and |inputs| is not one (see :mod:`kbench.measure.parity`); ``None`` uses that default.
    """

    name: str
    summary: str
    sizes: Mapping[str, tuple[int, ...]]
    inputs: tuple[Tensor, ...]
    weights: tuple[Tensor, ...]
    output: tuple[str | int, ...]
    build_keras: Callable[..., Any]
    forward: Callable[..., Any]
    flops: Callable[[Mapping[str, int]], int]
    reduction: Callable[[Mapping[str, int]], int]
    options: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    sweep: Mapping[str, str] = field(default_factory=dict)  # `--sweep` preset: size -> range, e.g. "2**0..2**14"
    magnitude: Callable[..., Any] | None = None  # parity's M override (kbench.measure.parity.magnitude); None: the default
    source: str = ""
    # a user's saved model (kbench.model.keras_spec): own_weights(keras, dtype) -> its saved arrays, read in the worker
    # instead of the seeded ones; no_twin: why it has no NumPy twin (then forward is None); dtypes: the only dtypes
    # it runs in (empty: any)
    own_weights: Callable[[Any, str], Mapping[str, Any]] | None = None
    no_twin: str = ""
    dtypes: tuple[str, ...] = ()
    stored_bytes: int = 0  # a saved model's weights as stored in its file (the memory guard counts them before loading)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", MappingProxyType({k: tuple(v) for k, v in self.sizes.items()}))
        object.__setattr__(self, "options", MappingProxyType({k: tuple(v) for k, v in self.options.items()}))
        object.__setattr__(self, "sweep", MappingProxyType(dict(self.sweep)))

    @property
    def default_options(self) -> dict[str, Any]:
        return {k: v[0] for k, v in self.options.items()}

    @property
    def has_batch(self) -> bool:
        return "batch" in self.sizes

    def output_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        shape = tuple(sizes[d] if isinstance(d, str) else int(d(sizes)) if callable(d) else int(d) for d in self.output)
        if any(n < 1 for n in shape):
            at = " ".join(f"{k}={v}" for k, v in sizes.items())
            raise BadSizeError(f"model {self.name!r} has output shape {shape} at {at}; choose sizes that give every "
                               "output dimension at least 1")  # fmt: skip
        return shape


def validate_spec(spec: object, path: Path) -> ModelSpec:
    """Check a loaded ``MODEL`` object field by field; raise :class:`ModelLoadError` naming the first problem."""

    def bad(msg: str) -> ModelLoadError:
        return ModelLoadError(f"model file {path}: {msg}")

    if not isinstance(spec, ModelSpec):
        raise bad(f"MODEL must be a kbench.model.spec.ModelSpec, got {type(spec).__name__}")
    if spec.name != path.stem:
        raise bad(f"MODEL.name is {spec.name!r} but the file is named {path.name}; make them match")
    if not spec.inputs:
        raise bad("MODEL.inputs is empty; declare at least one input Tensor")
    for name, values in spec.sizes.items():
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise bad(f"size {name!r} needs one or more positive int defaults, got {values!r}")
    for t in (*spec.inputs, *spec.weights):
        if not isinstance(t, Tensor):
            raise bad(f"inputs and weights must be kbench.model.spec.Tensor, got {type(t).__name__}")
        if t.init not in INITS:
            raise bad(f"tensor {t.name!r} has init {t.init!r}; use one of {', '.join(INITS)}")
        if (t.init == "index") != (t.high is not None) or (t.init == "index" and t not in spec.inputs):
            raise bad(f"tensor {t.name!r}: init='index' (inputs only) and high= (its bound) go together")
        if isinstance(t.high, str) and t.high not in spec.sizes or isinstance(t.high, (int, float)) and t.high < 1:
            raise bad(f"tensor {t.name!r} has high={t.high!r}; use a declared size name or a positive int")
    for t in (*spec.inputs, *spec.weights, spec.output):
        shape = t.shape if isinstance(t, Tensor) else t
        for d in shape:
            if callable(d) and shape is spec.output:  # a derived output length, fn(sizes) -> int
                continue
            if isinstance(d, str) and d not in spec.sizes:
                raise bad(f"shape {tuple(shape)} names size {d!r}, which MODEL.sizes does not declare")
            if not isinstance(d, str) and not (isinstance(d, int) and not isinstance(d, bool) and d > 0):
                raise bad(f"shape {tuple(shape)} has fixed dimension {d!r}; use a positive int or a size name")
    names = [t.name for t in (*spec.inputs, *spec.weights)]
    if len(set(names)) != len(names):
        raise bad(f"input and weight names must be unique, got {names}")
    for fn in ("build_keras", "forward", "flops", "reduction"):
        if not callable(getattr(spec, fn)):
            raise bad(f"MODEL.{fn} must be callable")
    if spec.magnitude is not None and not callable(spec.magnitude):
        raise bad("MODEL.magnitude must be callable or None")
    for name in spec.sweep:
        if name not in spec.sizes:
            raise bad(f"MODEL.sweep names size {name!r}, which MODEL.sizes does not declare")
    for name, allowed in spec.options.items():
        if not allowed:
            raise bad(f"option {name!r} lists no allowed values")
    return spec
