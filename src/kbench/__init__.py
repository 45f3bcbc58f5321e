"""kbench: measure what each Keras call path costs next to a hand-written NumPy twin.

Importing this package is cheap on purpose: it never imports TensorFlow, Keras, pandas or rich.
The Python API lives in :mod:`kbench.api`.
"""

__version__ = "0.1.0"
