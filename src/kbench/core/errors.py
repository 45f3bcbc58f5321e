"""Typed errors. Library code raises these; only the CLI turns them into exit codes.

Every message is one line that names the problem and, where there is one, the fix.
"""

from __future__ import annotations


class KbenchError(Exception):
    """Base class of every error kbench raises on purpose."""

    exit_code = 1


class UsageError(KbenchError):
    """The input was wrong (a name, a size, a flag, a model file). Exit code 2."""

    exit_code = 2


class UnknownModelError(UsageError):
    pass


class UnknownPathError(UsageError):
    pass


class BadSizeError(UsageError):
    pass


class BadOptionError(UsageError):
    pass


class DtypeError(UsageError):
    pass


class DeviceError(UsageError):
    """The device asked for is not there."""


class BackendError(UsageError):
    """An unknown Keras backend, or one that is not installed."""


class ModelsDirError(UsageError):
    pass


class ModelLoadError(UsageError):
    """A model file failed to import or does not declare a valid ``MODEL``."""


class ModelShapeError(UsageError):
    """A model's Keras build, its NumPy twin and its declared output shape disagree."""


class MemoryLimitError(UsageError):
    pass


class RunNotFoundError(UsageError):
    pass


class SchemaError(UsageError):
    """Saved results were written by an unknown schema version."""


class ReportWriteError(UsageError):
    """The report cannot be written where it was asked to go."""


class BadGapError(UsageError):
    """A ``--gap`` that is not a duration, is negative, or is too long for the cell budget."""


class BadThreadsError(UsageError):
    """A ``--threads`` that is not a whole number of 1 or more."""


class WorkerError(KbenchError):
    """The backend worker process failed for a reason that is not the user's input."""


class ExportError(KbenchError):
    """A serving runtime could not take the model: its export, conversion or load failed. One path's failure, never
    the run's: the cell goes on without that path and the run records the reason (the exit code does not change)."""


def one_line(text: str) -> str:
    """Collapse a message to one line (exception texts from user code may span several)."""
    return " ".join(str(text).split())


def from_data(kind: str, message: str, exit_code: int) -> KbenchError:
    """An error that crossed the process boundary as data (:class:`kbench.measure.protocol.Failed`) as a typed error again:
    a known usage error keeps its class; any other exit code 2 is a :class:`UsageError`, the rest a
    :class:`WorkerError`."""
    known = {cls.__name__: cls for cls in _subclasses(KbenchError)}
    cls = known.get(kind)
    if cls is not None and cls.exit_code == exit_code:
        return cls(message)
    return UsageError(message) if exit_code == 2 else WorkerError(message)


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]
