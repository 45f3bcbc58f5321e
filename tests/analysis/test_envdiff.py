"""kbench.analysis.envdiff: the compare report's environment diff over the one flattened fingerprint."""

from kbench.analysis.envdiff import env_diff, fields

BLAS = [{"internal_api": "openblas", "version": "0.3.31", "num_threads": 2, "architecture": "SkylakeX"}]
ENV = {"host": {"cpu": "Test CPU", "packages": {"tensorflow": "2.21.0"}, "env": {"OMP_NUM_THREADS": "2"},
                "blas": BLAS},
       "backends": {"tensorflow": {"tensorflow": "2.21.0", "devices": ["cpu:0", "gpu:0"]}}}


def test_fields_use_the_short_names_host_then_packages_env_and_backends():
    assert list(fields(ENV)) == ["host.cpu", "host.blas", "packages.tensorflow", "env.OMP_NUM_THREADS",
                                 "tensorflow.tensorflow", "tensorflow.devices"]  # fmt: skip


def test_values_are_shown_as_text_and_blas_as_a_label():
    b = {"host": {**ENV["host"], "blas": [*BLAS, {"internal_api": "mkl", "version": "2024", "num_threads": 2}],
                  "cpu": None},
         "backends": {"tensorflow": {"tensorflow": "2.20.0", "devices": ["cpu:0"]}}}  # fmt: skip
    diff = {d.key: (d.a, d.b, d.major) for d in env_diff(ENV, b)}
    assert diff["host.cpu"] == ("Test CPU", "", True)
    assert diff["host.blas"] == ("openblas 0.3.31 SkylakeX threads=2",
                                 "mkl 2024 threads=2; openblas 0.3.31 SkylakeX threads=2", False)  # fmt: skip
    assert diff["tensorflow.tensorflow"] == ("2.21.0", "2.20.0", True)
    assert diff["tensorflow.devices"] == ("cpu:0, gpu:0", "cpu:0", True)
    assert "env.OMP_NUM_THREADS" not in diff
    assert "packages.tensorflow" not in diff


def test_order_alone_and_absent_fields():
    reordered = {**ENV, "backends": {"tensorflow": {"tensorflow": "2.21.0", "devices": ["gpu:0", "cpu:0"]}}}
    assert env_diff(ENV, reordered) == ()  # a list in another order is the same (as for `kbench merge`)
    (d,) = env_diff({"host": {"cpu": "x"}}, {"host": {"cpu": "x", "python": "3.11.7"}})
    assert (d.key, d.a, d.b) == ("host.python", "(absent)", "3.11.7")
