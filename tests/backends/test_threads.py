"""A worker's thread settings (kbench.backends.threads)."""

import pytest

from kbench.backends.threads import apply_threads, blas_threads, thread_env

def test_thread_env_sets_every_pool_and_xla_for_one_thread():
    env = thread_env(1, {"XLA_FLAGS": "--xla_dump_to=x"})
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS"):  # fmt: skip
        assert env[k] == "1"
    assert env["XLA_FLAGS"].startswith("--xla_dump_to=x ") and "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert "XLA_FLAGS" not in thread_env(2, {}) and thread_env(None, {}) == {}


def test_the_default_setting_changes_nothing_and_reads_nothing():
    def never():
        raise AssertionError("the default thread setting reads no pools")

    assert apply_threads("tensorflow", None, never) == {"threads": None}


def test_blas_threads_are_read_through_the_reader_given():
    pytest.importorskip("threadpoolctl")
    pools = [{"num_threads": 2}, {"num_threads": 2}, {"num_threads": 1}, {}]
    assert blas_threads(lambda: pools) == [0, 1, 2]
