"""Writing files safely: :func:`atomic_write` (a reader never sees half a file, a failure never leaves one) and
:func:`unwritable` (can this path be written as a new file, asked before any work is done).

Every file kbench writes (run folders, reports, exports, figures) goes through these two.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, or bytes) through a temporary file in the same folder and rename it into place,
    readable like any new file (not mkstemp's 0600). A failure removes the temporary file and raises."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if isinstance(data, bytes):
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written as a new file ("is a folder", or the OS's reason), or None. It tries for real,
    in the folder, since access() says yes to root even where nothing can be created (/proc)."""
    path = Path(path)
    if path.is_dir():
        return "is a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=".kbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None
