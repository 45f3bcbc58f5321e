"""The one reader of the BLAS/OpenMP thread pools, and NumPy's own BLAS among them."""

from kbench.machine import threadpools

NUMPY = {"user_api": "blas", "internal_api": "openblas", "filepath": "/v/lib/site-packages/numpy.libs/libopenblas.so"}
SCIPY = {"user_api": "blas", "internal_api": "openblas", "filepath": "/v/lib/site-packages/scipy.libs/libopenblas.so"}
OPENMP = {"user_api": "openmp", "internal_api": "openmp", "filepath": "/usr/lib/libgomp.so"}


def test_numpy_blas_prefers_numpys_own_then_the_first_blas_then_nothing():
    assert threadpools.numpy_blas([OPENMP, SCIPY, NUMPY]) == NUMPY
    assert threadpools.numpy_blas([OPENMP, SCIPY]) == SCIPY
    assert threadpools.numpy_blas([OPENMP]) == {} and threadpools.numpy_blas([]) == {}


def test_threadpools_reads_this_process_and_never_raises(monkeypatch):
    pools = threadpools.threadpools()
    assert isinstance(pools, list) and all(isinstance(p, dict) for p in pools)

    def broken():
        raise ImportError("no threadpoolctl")

    monkeypatch.setattr(threadpools, "read_threadpools", broken)
    assert threadpools.threadpools() == []


def test_owner_names_the_package_that_ships_the_library():
    assert threadpools.owner(NUMPY) == "numpy" and threadpools.owner(SCIPY) == "scipy"
    assert threadpools.owner(OPENMP) == "" and threadpools.owner({}) == ""
