"""The NumPy twin's path (kbench.measure.callpaths): it runs the twin on cache-line-aligned copies of its arrays."""

from types import SimpleNamespace

import numpy as np

from kbench.backends.base import PathContext
from kbench.measure.callpaths import ALIGN, PATHS, aligned


def _off(a: np.ndarray) -> int:
    return a.ctypes.data % ALIGN


def test_aligned_gives_the_same_values_on_a_cache_line_and_keeps_an_array_already_there():
    buf = np.arange(600, dtype=np.float32)
    for start in range(1, 17):  # float32 views 4 to 64 bytes off
        view = buf[start : start + 128].reshape(4, 32)
        out = aligned(view)
        assert _off(out) == 0 and out.dtype == view.dtype and np.array_equal(out, view)
    assert aligned(out) is out
    transposed = np.arange(12.0).reshape(3, 4).T  # not C-contiguous: copied into a contiguous one
    assert aligned(transposed).flags.c_contiguous and np.array_equal(aligned(transposed), transposed)
    assert aligned(np.zeros((0, 5), np.float32)).shape == (0, 5)


def test_the_numpy_path_hands_the_twin_aligned_weights_and_inputs():
    seen = {}

    def forward(weights, inputs, **options):
        seen.update(weights=weights, inputs=inputs, options=options)
        return inputs["x"] @ weights["kernel"]

    raw = np.arange(1 + 16 * 16, dtype=np.float32)
    kernel, x = raw[1:].reshape(16, 16), raw[1:33].reshape(2, 16)  # 4 bytes past a 16-byte boundary
    ctx = PathContext(SimpleNamespace(forward=forward), {"kernel": kernel}, {"batch": 2}, {"act": "relu"}, "float32")
    call = PATHS["numpy"].prepare(ctx, None)({"x": x})
    assert np.array_equal(call(), x @ kernel)
    assert _off(seen["weights"]["kernel"]) == 0 and _off(seen["inputs"]["x"]) == 0
    assert np.array_equal(seen["weights"]["kernel"], kernel) and seen["options"] == {"act": "relu"}
