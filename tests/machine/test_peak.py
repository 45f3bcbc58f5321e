import json
import os
import subprocess
import sys

import pytest

from kbench.machine import peak
from kbench.machine.peak import EngineRate


def _fake(fp: str = "fp", numpy32: float = 100.0) -> peak.Peak:
    engines = (EngineRate("numpy", "2", "openblas (Haswell)", 2, numpy32, 50.0),
               EngineRate("tensorflow", "2.21", "oneDNN", None, 150.0, 40.0),
               EngineRate("jax", error="ImportError: no jaxlib"))  # fmt: skip
    return peak.with_best(engines, 10.0, 1024, fp, "now")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(peak, "cache_dir", lambda: tmp_path)
    return tmp_path


def test_measure_gives_plausible_positive_figures():
    p = peak.measure(gemm_n=128, copy_mib=4, repeats=2, engines=())
    assert p.gflops_float32 > 0 and p.gflops_float64 > 0 and p.copy_gbps > 0
    assert p.gflops("float64") == p.gflops_float64 and p.gflops("float32") == p.gflops_float32
    assert [e.engine for e in p.engines] == ["numpy"] and p.engine_for("float32") == "numpy"
    assert p.engines[0].threads and "(" in p.engines[0].library  # e.g. "openblas 0.3.31 (SkylakeX)"
    assert p.fingerprint == peak.fingerprint()


def test_the_peak_is_the_best_engine_per_dtype_and_failed_engines_are_kept():
    p = _fake()
    assert (p.gflops("float32"), p.engine_for("float32")) == (150.0, "tensorflow")
    assert (p.gflops("float64"), p.engine_for("float64")) == (50.0, "numpy")
    assert p.rate("numpy", "float32") == 100.0 and p.rate("jax", "float32") is None and p.rate("torch", "x") is None
    assert [e.engine for e in p.engines if not e.ok] == ["jax"]
    with pytest.raises(peak.PeakError, match="numpy: boom"):
        peak.with_best([EngineRate("numpy", error="boom")], 1.0, 8, "fp", "now")


def test_a_failing_or_missing_engine_is_recorded_without_crashing():
    def failing(name, n, repeats):
        return EngineRate(name, error="RuntimeError: oneDNN exploded")

    p = peak.measure(gemm_n=64, copy_mib=1, repeats=1, engines=("tensorflow", "no_such_backend_xyz"), probe=failing)
    assert [(e.engine, e.ok) for e in p.engines] == [("numpy", True), ("tensorflow", False)]  # missing: skipped
    assert p.engine_for("float32") == "numpy"
    lines = peak.describe_lines(p)
    assert any("tensorflow" in ln and "failed: RuntimeError: oneDNN exploded" in ln for ln in lines)


def test_a_probe_that_fails_or_hangs_in_its_child_is_one_line_not_a_crash():
    unknown = peak.probe_engine("bogus", gemm_n=8, repeats=1)
    assert not unknown.ok and "unknown engine 'bogus'" in unknown.error
    hung = peak.probe_engine("tensorflow", gemm_n=8, repeats=1, timeout_s=0.01)
    assert not hung.ok and "timed out" in hung.error and "\n" not in hung.error


def test_the_cache_key_changes_with_the_blas_pinning_variables():
    base = peak.fingerprint(environ={})
    assert peak.fingerprint(environ={"OPENBLAS_CORETYPE": "Haswell"}) != base
    assert peak.fingerprint(environ={"MKL_ENABLE_INSTRUCTIONS": "AVX2"}) != base
    assert peak.fingerprint(environ={"SOMETHING_ELSE": "1"}) == base


def test_the_cache_key_does_not_depend_on_other_loaded_blas_libraries():
    pytest.importorskip("scipy")  # ships its own OpenBLAS
    code = "import sys; {}from kbench.machine.peak import fingerprint; print(fingerprint())"
    plain = subprocess.run([sys.executable, "-c", code.format("")], capture_output=True, text=True, check=True,
                           timeout=60).stdout  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code.format("import scipy.linalg; ")],
                            capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    assert plain == loaded


def test_a_child_with_openblas_coretype_gets_another_cache_key():
    def child_fp(**extra):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        code = "from kbench.machine.peak import fingerprint; print(fingerprint())"
        return subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()  # fmt: skip

    assert child_fp(OPENBLAS_CORETYPE="Haswell") != child_fp()


def test_cached_per_fingerprint_and_remeasured_when_it_changes(cache, monkeypatch):
    calls = []

    def fake_measure(engines=None):
        calls.append(1)
        return _fake(peak.fingerprint())

    monkeypatch.setattr(peak, "installed_engines", lambda: ("tensorflow", "jax"))
    monkeypatch.setattr(peak, "measure", fake_measure)
    first, cached = peak.load_or_measure()
    assert not cached and calls == [1]
    again, cached = peak.load_or_measure()
    assert cached and again == first and calls == [1]  # engines survive the round trip as EngineRate
    assert peak.load_cached() == first
    monkeypatch.setattr(peak, "fingerprint", lambda: "another-machine")
    assert peak.load_cached() is None
    _, cached = peak.load_or_measure()
    assert not cached and calls == [1, 1]
    assert len(list(cache.glob("peak-*.json"))) == 2
    _, cached = peak.load_or_measure(refresh=True)
    assert not cached and len(calls) == 3


@pytest.mark.parametrize("text", ["{not json", json.dumps({"gflops_float32": 281.0, "gflops_float64": 130.0,
                                                           "copy_gbps": 14.5, "gemm_n": 1024, "fingerprint": "x",
                                                           "measured": "2026-11-26T04:37:43"})])  # fmt: skip
def test_damaged_or_old_format_cache_is_measured_again(cache, monkeypatch, text):
    (cache / f"peak-{peak.fingerprint()}.json").write_text(text)
    monkeypatch.setattr(peak, "measure", lambda engines=None: _fake(peak.fingerprint()))
    assert peak.load_cached() is None
    p, cached = peak.load_or_measure()
    assert not cached and json.loads((cache / f"peak-{p.fingerprint}.json").read_text())["schema"] == peak.SCHEMA


def test_a_run_measures_only_the_engines_it_lacks_and_merges_them_into_the_cache(cache, monkeypatch):
    asked = []

    def fake_measure(engines=None):
        asked.append(tuple(engines))
        rates = {"numpy": EngineRate("numpy", "2", "openblas", 2, 100.0 + len(asked), 50.0),
                 "tensorflow": EngineRate("tensorflow", "2.21", "oneDNN", None, 150.0, 40.0),
                 "jax": EngineRate("jax", "0.10", "XLA:cpu", None, 190.0, 45.0),
                 "torch": EngineRate("torch", "2.13", "MKL", 2, 120.0, 60.0)}  # fmt: skip
        return peak.with_best([rates["numpy"], *(rates[e] for e in engines)], 10.0, 1024, peak.fingerprint(), "t")

    monkeypatch.setattr(peak, "installed_engines", lambda: ("tensorflow", "jax", "torch"))
    monkeypatch.setattr(peak, "measure", fake_measure)
    first, cached = peak.load_or_measure(engines=("tensorflow",))  # a first `kbench run`: NumPy and TensorFlow
    assert not cached and asked == [("tensorflow",)]
    assert {e.engine for e in first.engines} == {"numpy", "tensorflow"} and first.gflops_float32 == 150.0
    assert peak.load_or_measure(engines=("tensorflow",)) == (first, True)
    full, cached = peak.load_or_measure()  # `kbench peak`: the engines the cache lacks, NumPy again
    assert not cached and asked[-1] == ("jax", "torch")
    assert {e.engine for e in full.engines} == {"numpy", "tensorflow", "jax", "torch"}
    assert (full.gflops_float32, full.engine_float32, full.gflops_float64, full.engine_float64) == (190.0, "jax", 60.0, "torch")
    assert full.rate("numpy", "float32") == 102.0 and full.rate("tensorflow", "float32") == 150.0  # NumPy's fresh one
    assert peak.load_or_measure(engines=("jax",)) == (full, True) and len(asked) == 2
    _, cached = peak.load_or_measure(refresh=True)
    assert not cached and asked[-1] == ("tensorflow", "jax", "torch")


def test_describe_lines_mark_the_peak_per_dtype():
    lines = peak.describe_lines(_fake())
    tf_line = next(ln for ln in lines if ln.startswith("tensorflow"))
    np_line = next(ln for ln in lines if ln.startswith("numpy"))
    assert "*    150.0" in tf_line and "*     50.0" in np_line and "default" in tf_line
    assert "peak (*): float32 150.0 GFLOP/s (tensorflow), float64 50.0 GFLOP/s (numpy)" in lines


def test_measuring_and_checking_never_import_a_backend_in_this_process():
    code = ("import sys; from kbench.machine import peak, check; "
            "peak.measure(gemm_n=32, copy_mib=1, repeats=1, engines=()); check.check(); "
            "print(sorted({'tensorflow', 'jax', 'torch', 'keras'} & set(sys.modules)))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def _cli(*args, env_extra, cache_dir, timeout=120):
    env = {**{k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}, **env_extra,
           "KBENCH_CACHE_DIR": str(cache_dir)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "kbench", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_kbench_peak_shows_every_engine_the_peak_and_the_pin(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = "from kbench.machine.peak import fingerprint; print(fingerprint())"
    fp = subprocess.run([sys.executable, "-c", code], env={**env, "OPENBLAS_CORETYPE": "Haswell"},
                        capture_output=True, text=True, check=True, timeout=60).stdout.strip()  # fmt: skip
    entry = _fake(fp, numpy32=75.0)
    entry = peak.with_best([*entry.engines, EngineRate("torch", error="not installed here")], 10.0, 1024, fp, "now")
    (tmp_path / f"peak-{fp}.json").write_text(json.dumps(entry.to_dict()))  # every engine: read, not measured
    out = _cli("peak", env_extra={"OPENBLAS_CORETYPE": "Haswell"}, cache_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "peak (*): float32 150.0 GFLOP/s (tensorflow)" in out.stdout and "cached" in out.stdout
    assert "failed: ImportError: no jaxlib" in out.stdout
    if "avx512f" in open("/proc/cpuinfo").read():
        assert "because OPENBLAS_CORETYPE=Haswell" in out.stdout and "~50%" in out.stdout


@pytest.mark.slow
def test_a_real_tensorflow_probe_in_a_child_process():
    if not peak.installed_engines().count("tensorflow"):
        pytest.skip("tensorflow is not installed")
    e = peak.probe_engine("tensorflow", gemm_n=256, repeats=2)
    assert e.ok, e.error
    assert e.gflops_float32 > 1 and e.gflops_float64 > 1 and e.library in ("oneDNN", "Eigen") and e.version


def test_probes_import_side_by_side_and_numpy_measures_once_they_are_ready():
    seen = []

    def between():
        seen.append("numpy")
        return peak.EngineRate("numpy", gflops_float32=1.0, gflops_float64=0.5)

    rates = peak.probe_engines(("tensorflow", "bogus"), 64, 1, between)
    assert seen == ["numpy"] and [r.engine for r in rates] == ["numpy", "tensorflow", "bogus"]
    assert rates[1].ok and rates[1].gflops("float32") > 0, rates[1]
    assert not rates[2].ok and "unknown engine 'bogus'" in rates[2].error
