"""The names a model file imports: ``from kbench.spec import ModelSpec, Tensor``.

A stable public path for model files (built-in and users' own); the definitions live in :mod:`kbench.model.spec`.
"""

from kbench.model.spec import ModelSpec, Tensor

__all__ = ["ModelSpec", "Tensor"]
