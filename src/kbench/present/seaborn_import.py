"""seaborn, imported without the SciPy modules it loads only for plots kbench never draws.

seaborn imports ``scipy.stats`` (for kernel density estimates) and ``scipy.cluster`` (for clustermaps) when SciPy is
installed, and falls back to its own code when it is not: SciPy is optional for seaborn. Those two imports took
0.9 s of a 3 s ``kbench report``. :func:`load` hides them while seaborn imports (seaborn then takes its own
fallbacks, which kbench's figures never reach) and puts everything back at once; a module that is already
imported, e.g. ``scipy.stats`` in a run that used it for its intervals, is left as it is. A seaborn that cannot do
without them is imported the ordinary way.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

OPTIONAL = ("scipy.stats", "scipy.cluster")


def load() -> ModuleType:
    """The seaborn module (imported once; later calls return it)."""
    if "seaborn" in sys.modules:
        return sys.modules["seaborn"]
    hidden = [name for name in OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import scipy.stats` now raises ImportError
    try:
        return importlib.import_module("seaborn")
    except ImportError:
        _forget("seaborn")
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    return importlib.import_module("seaborn")


def _forget(package: str) -> None:
    """Drop a half-imported package and its submodules, so that it can be imported again."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
