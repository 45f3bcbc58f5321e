"""The environment diff of two runs: every field of their fingerprints (``meta.env``) that differs.

The fields and when two are equal are :func:`kbench.machine.fingerprint.environment_fields`' (the same meaning
``kbench merge`` uses to decide whether shards ran on one kind of machine). Here they are named the short way the
compare report shows them (``host.cpu``, ``packages.tensorflow``, ``env.OMP_NUM_THREADS``,
``tensorflow.intra_op_threads``) and their values shown as plain text (a BLAS list as
``openblas 0.3.31 SkylakeX threads=2``). Every difference is listed; all but the parent process's loaded BLAS
libraries (``host.blas``: what the CLI process happened to import, never what timed anything) make a comparison
*cross-environment*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from kbench.core.fmt import missing, visible
from kbench.machine.fingerprint import environment_fields, field_value

MINOR_ENV_KEYS = ("host.blas",)  # listed in the diff, never enough to call the comparison cross-environment
SHORT_NAMES = (("host.packages.", "packages."), ("host.env.", "env."), ("backends.", ""))  # in the order shown


@dataclass(frozen=True)
class EnvDiff:
    key: str  # dotted: packages.tensorflow, host.cpu, tensorflow.intra_op_threads, env.OMP_NUM_THREADS
    a: str
    b: str
    major: bool  # counts towards "cross-environment"


def _blas_label(libs: Any) -> str:
    """A BLAS list (threadpoolctl) as one order-independent string: ``openblas 0.3.31 SkylakeX threads=2``."""
    if not isinstance(libs, list):
        return visible(libs)
    names = []
    for d in libs:
        if isinstance(d, Mapping):
            parts = [d.get("internal_api"), d.get("version"), d.get("architecture"),
                     f"threads={d.get('num_threads')}", d.get("threading_layer"), d.get("error")]  # fmt: skip
            names.append(" ".join(str(p) for p in parts if not missing(p) and p != ""))
    return "; ".join(sorted(set(names)))


def _shown(key: str, text: str) -> str:
    """A field's value as the diff shows it."""
    value = field_value(text)
    if key.endswith("blas"):
        return _blas_label(value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def fields(env: Mapping[str, Any]) -> dict[str, str]:
    """``meta.env``'s fields under their short names: ``host.*``, then ``packages.*``, ``env.*``, ``<backend>.*``."""
    full = environment_fields(env)
    prefixes = tuple(long for long, _ in SHORT_NAMES[:2])
    out = {k: v for k, v in full.items() if not k.startswith(prefixes) and k.startswith("host.")}
    for long, short in SHORT_NAMES:
        out.update({short + k[len(long):]: v for k, v in full.items() if k.startswith(long)})
    return out


def env_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[EnvDiff, ...]:
    """Every field whose value differs (or that one side lacks), in the order shown."""
    fa, fb = fields(a), fields(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return tuple(EnvDiff(k, _shown(k, fa[k]) if k in fa else "(absent)", _shown(k, fb[k]) if k in fb else "(absent)",
                         k not in MINOR_ENV_KEYS) for k in keys if fa.get(k) != fb.get(k))  # fmt: skip
