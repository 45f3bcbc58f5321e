"""The torch backend's graph surgery (kbench.backends.torch): only the casts that return their input are dropped."""

import pytest

from kbench.backends.torch import drop_noop_casts

def test_only_casts_that_return_their_input_are_dropped_from_a_traced_graph():
    torch = pytest.importorskip("torch")

    def f(x):
        same = x.to(torch.float32)  # a no-op: dropped
        wider = x.to(torch.float64)  # a real cast: kept
        copied = x.to(torch.float32, copy=True)  # a copy: kept
        return same + 1, wider, copied

    x = torch.ones(3, 4)
    traced = torch.jit.trace(f, (x,))
    assert drop_noop_casts(torch, traced.graph) == 1
    assert [n.kind() for n in traced.graph.nodes()].count("aten::to") == 2
    same, wider, copied = traced(x)
    assert torch.equal(same, x + 1) and wider.dtype == torch.float64 and copied.data_ptr() != x.data_ptr()
