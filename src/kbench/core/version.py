"""kbench's version, in one place: the package, the wheel's metadata (pyproject reads it) and exported results."""

__version__ = "0.2.0"
