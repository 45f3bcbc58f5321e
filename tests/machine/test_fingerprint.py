"""kbench.machine.fingerprint: reading a recorded fingerprint (versions, the flattened fields that decide whether
two environments are the same)."""

from kbench.machine.fingerprint import environment_fields, field_value, flatten, installed_version, package_versions

ENV = {"host": {"cpu": "Test CPU", "logical_cores": 2, "packages": {"numpy": "2.4.6", "keras": "3.15.1"},
                "env": {"OMP_NUM_THREADS": "2"}, "blas": [{"internal_api": "openblas", "version": "0.3.31"}]},
       "backends": {"tensorflow": {"keras": "3.15.1", "tensorflow": "2.21.0", "devices": ["cpu:0", "gpu:0"]}}}


def test_environment_fields_are_dotted_keys_with_json_text_values():
    f = environment_fields(ENV)
    assert f["host.cpu"] == '"Test CPU"' and f["host.logical_cores"] == "2"
    assert f["host.packages.numpy"] == '"2.4.6"' and f["host.env.OMP_NUM_THREADS"] == '"2"'
    assert f["backends.tensorflow.tensorflow"] == '"2.21.0"'
    assert field_value(f["backends.tensorflow.devices"]) == ["cpu:0", "gpu:0"]
    assert environment_fields(None) == {} and environment_fields({}) == {}


def test_lists_are_order_free_and_a_number_is_not_its_text():
    assert flatten({"devices": ["b", "a"]}) == flatten({"devices": ["a", "b"]})
    assert flatten({"n": 2}) != flatten({"n": "2"})
    assert flatten({"x": None}) == {"x": "null"}
    assert flatten({"a": {"b": {"c": 1}}}, "top") == {"top.a.b.c": "1"}


def test_package_versions_prefer_the_worker_and_fall_back_to_the_host():
    assert package_versions(ENV, ["tensorflow"]) == (("keras", "3.15.1"), ("tensorflow", "2.21.0"))
    host_only = {"host": {"packages": {"keras": "3.0.0", "torch": "not installed"}}}
    assert package_versions(host_only, ["torch"]) == (("keras", "3.0.0"),)
    assert package_versions(None, ["jax"]) == ()


def test_installed_version():
    assert installed_version("numpy").split(".")[0].isdigit()
    assert installed_version("no-such-package-kbench") == "not installed"
