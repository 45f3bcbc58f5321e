"""Copies back to the host (kbench.backends.host): a torch-like tensor is detached and copied to the CPU, anything
else goes through np.asarray."""

import numpy as np

from kbench.backends.host import to_host


class FakeTensor:
    """What to_host needs of a torch tensor: detach() -> cpu() -> numpy(), each step recorded."""

    def __init__(self, values) -> None:
        self.values, self.steps = values, []

    def detach(self):
        self.steps.append("detach")
        return self

    def cpu(self):
        self.steps.append("cpu")
        return self

    def numpy(self):
        self.steps.append("numpy")
        return np.array(self.values)


def test_a_torch_like_tensor_is_detached_and_copied_to_the_cpu():
    t = FakeTensor([1.0, 2.0])
    out = to_host(t)
    assert isinstance(out, np.ndarray) and out.tolist() == [1.0, 2.0] and t.steps == ["detach", "cpu", "numpy"]


def test_anything_else_goes_through_asarray():
    a = np.arange(3.0)
    assert to_host(a) is a  # an array is not copied
    assert to_host([[1, 2]]).shape == (1, 2)
