"""The TensorFlow backend (a core dependency). No device-resident paths: every TensorFlow path is a host round trip.
TensorFlow is imported inside the functions only."""

from __future__ import annotations

import os
from typing import Any

from kbench.backends.base import Backend, any_dtype, hide_gpus


def configure(precision: str) -> tuple[bool, bool]:
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if precision == "highest":
        tf.config.experimental.enable_tensor_float_32_execution(False)
    return gpu, gpu and tf.config.experimental.tensor_float_32_execution_enabled()


def _onednn_built() -> bool | str:
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # a private module: fingerprinting must never break a run
        return "unknown"


def fingerprint() -> dict[str, Any]:
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or "default",
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TF's default: on for x86 CPUs)"),
        "onednn_built": _onednn_built(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


BACKEND = Backend(
    name="tensorflow",
    module="tensorflow",
    install="pip install kbench (TensorFlow is a core dependency)",
    env=hide_gpus,
    env_defaults={"TF_CPP_MIN_LOG_LEVEL": "2"},  # TF's C++ log noise down, unless the user asked for it
    configure=configure,
    fingerprint=fingerprint,
    check_dtype=any_dtype,
)
