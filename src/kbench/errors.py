"""The typed errors, at their public path: ``kbench.errors.UsageError``, ``from kbench.errors import BadSizeError``.

Library code raises these and only the CLI turns them into exit codes; the definitions live in
:mod:`kbench.core.errors`. A model file may raise :class:`BadSizeError` for sizes its layer cannot take.
"""

from kbench.core.errors import (BackendError, BadGapError, BadOptionError, BadSizeError, BadThreadsError, DeviceError,
                                DtypeError, ExportError, KbenchError, MemoryLimitError, ModelLoadError, ModelShapeError,
                                ModelsDirError, ReportWriteError, RunNotFoundError, SchemaError, UnknownModelError,
                                UnknownPathError, UsageError, WorkerError)  # fmt: skip

__all__ = ["BackendError", "BadGapError", "BadOptionError", "BadSizeError", "BadThreadsError", "DeviceError",
           "DtypeError", "ExportError", "KbenchError", "MemoryLimitError", "ModelLoadError", "ModelShapeError", "ModelsDirError",
           "ReportWriteError", "RunNotFoundError", "SchemaError", "UnknownModelError", "UnknownPathError",
           "UsageError", "WorkerError"]  # fmt: skip
