"""The PyTorch backend (``kbench[torch]``). PyTorch is imported inside the functions only."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from kbench.backends.base import Backend, DeviceOps, Resident, any_dtype, hide_gpus


def configure(precision: str) -> tuple[bool, bool]:
    import torch

    gpu = torch.cuda.is_available()
    if precision == "highest":
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return gpu, gpu and (torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest")


def _devices() -> list[str]:
    import torch

    gpus = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    return ["cpu", *gpus]


def fingerprint() -> dict[str, Any]:
    import torch

    return {
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "mkl": torch.backends.mkl.is_available(),
        "cuda": torch.version.cuda or "none",
        "matmul_precision_config": torch.get_float32_matmul_precision(),
        "devices": _devices(),
    }


def open_device() -> DeviceOps:
    """The GPU when CUDA sees one, else the CPU; model calls run under ``torch.no_grad``."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def place(arrays: Sequence[np.ndarray]) -> list[Any]:
        return [torch.from_numpy(a).to(device) for a in arrays]

    def sync(y: Any) -> Any:
        torch.cuda.synchronize()
        return y

    return DeviceOps(
        device=device,
        place=place,
        sync=sync if device.type == "cuda" else (lambda y: y),
        to_host=lambda y: y.cpu().numpy(),
        inference=lambda call: torch.no_grad()(call),
    )


BACKEND = Backend(
    name="torch",
    module="torch",
    install="pip install torch==2.13.0 'kbench[torch]' (pin torch: an unpinned one pulls a CUDA build)",
    env=hide_gpus,
    env_defaults={},
    configure=configure,
    fingerprint=fingerprint,
    check_dtype=any_dtype,
    resident=Resident(
        open=open_device,
        place_runs="torch.from_numpy(x).to(device)",
        call_runs="with torch.no_grad(): model(x_device, training=False)",
        sync_runs="torch.cuda.synchronize()",
        to_host_runs="y.cpu().numpy()",
    ),
)
