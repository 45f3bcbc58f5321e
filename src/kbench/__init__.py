"""kbench: measure what each Keras call path costs next to a hand-written NumPy twin.

    >>> import kbench
    >>> plan = kbench.plan(["dense"], sizes={"batch": "1,32"})   # validated; raises kbench.core.errors.UsageError
    >>> result = kbench.run(plan)                                # RunResult: .results DataFrame, .run_dir, .ok
    >>> saved = kbench.load_run("latest")                        # RunData: .meta (RunMeta), .results, .samples

Importing this package is cheap on purpose: it never imports TensorFlow, Keras, pandas or rich; the names below
are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbench.core.version import __version__

__all__ = ["__version__", "plan", "run", "load_run", "environment", "list_models", "Plan", "RunResult", "RunData", "RunMeta",
           "TimerConfig", "errors"]  # fmt: skip

_WHERE = {
    "plan": "kbench.api", "run": "kbench.api", "environment": "kbench.api", "list_models": "kbench.api",
    "RunResult": "kbench.api", "Plan": "kbench.orchestrate.planning", "TimerConfig": "kbench.measure.timer", "load_run": "kbench.store.results",
    "RunData": "kbench.store.results", "RunMeta": "kbench.store.results", "errors": "kbench.errors",
}  # fmt: skip

if TYPE_CHECKING:  # pragma: no cover
    from kbench import errors
    from kbench.api import RunResult, environment, list_models, plan, run
    from kbench.orchestrate.planning import Plan
    from kbench.store.results import RunData, RunMeta, load_run
    from kbench.measure.timer import TimerConfig


def __getattr__(name: str) -> Any:
    import importlib

    if name not in _WHERE:
        raise AttributeError(f"module 'kbench' has no attribute {name!r}")
    module = importlib.import_module(_WHERE[name])
    return module if name == "errors" else getattr(module, name)
