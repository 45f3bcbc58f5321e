"""What a run knew besides its rows, as shown: the imports timed in each worker, the machine's peak, and the models
(their summaries and files as the model files declared them, and the options their cells ran with)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from kbench.core.fmt import fmt_time, missing, visible


def import_lines(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """Per backend: the imports timed in its fresh worker and the runtime's first use."""
    init = meta.get("runtime_init_s") or {}
    return tuple(
        f"import ({visible(b)} worker): numpy {fmt_time(i.get('numpy'))}, keras+{visible(b)} "
        f"{fmt_time(i.get('backend'))}; runtime first use {fmt_time(init.get(b))}"
        for b, i in (meta.get("imports") or {}).items()
    )


def _engine_of(peak: Mapping[str, Any], dtype: str) -> str:
    """The engine that set this dtype's peak, with its library when the peak lists it: ``"tensorflow/oneDNN"``."""
    name = peak.get(f"engine_{dtype}") or peak.get("engine") or ""
    engines = peak.get("engines")
    if isinstance(engines, Mapping):  # dtype -> engine
        return visible(engines.get(dtype) or name)
    rates = [e for e in engines or () if isinstance(e, Mapping) and e.get("engine") == name]
    library = rates[0].get("library") if rates else ""
    return visible(f"{name}/{library}" if name and library else name)


def peak_line(peak: Mapping[str, Any] | None) -> str:
    """``"machine peak: float32 433 GFLOP/s (tensorflow/oneDNN), …"`` when the peak names its engines, else
    ``"machine peak (NumPy BLAS): float32 281 GFLOP/s, float64 130 GFLOP/s, copy 14.5 GB/s"``; empty without one."""
    if not peak:
        return ""
    named = any(peak.get(k) for k in ("engine", "engines", "engine_float32", "engine_float64"))
    parts = []
    for dtype in ("float32", "float64"):
        value = peak.get(f"gflops_{dtype}")
        if not missing(value):
            engine = _engine_of(peak, dtype) if named else ""
            parts.append(f"{dtype} {float(value):.0f} GFLOP/s" + (f" ({engine})" if engine else ""))
    if not missing(peak.get("copy_gbps")):
        parts.append(f"copy {float(peak['copy_gbps']):.1f} GB/s")
    return f"machine peak{'' if named else ' (NumPy BLAS)'}: {', '.join(parts)}"


@dataclass(frozen=True)
class ModelInfo:
    """A model as the run knew it: its label (with the backend when several ran), the summary and file its model
    file declared (``meta["models"][name]``, when the run recorded them) and the options its cells ran with."""

    label: str
    name: str
    summary: str
    file: str
    options: str


def model_infos(df: pd.DataFrame, meta: Mapping[str, Any]) -> tuple[ModelInfo, ...]:
    recorded = meta.get("models") or {}
    out = []
    for label, rows in df.groupby("model", sort=False):
        name = rows["model_name"].iloc[0]
        info = recorded.get(name) if isinstance(recorded, Mapping) else None
        info = info if isinstance(info, Mapping) else {}
        opts = " / ".join(dict.fromkeys(rows["options_label"]))
        out.append(ModelInfo(visible(label), visible(name), visible(info.get("summary", "")),
                             visible(info.get("file", "")), opts))  # fmt: skip
    return tuple(out)
