"""Copies back to the host: a path's output as a NumPy array, whichever backend made it (worker only, outside every
timed region; the device-resident paths time their own copies through :class:`kbench.backends.base.DeviceOps`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_host(out: Any) -> np.ndarray:
    """A path's output as a NumPy array, for parity and for the decomposition's output shape: a torch tensor
    (possibly on a GPU) is detached and copied to the CPU; anything else goes through ``np.asarray``."""
    if hasattr(out, "detach"):  # a torch tensor, possibly on a GPU
        return out.detach().cpu().numpy()
    return np.asarray(out)
