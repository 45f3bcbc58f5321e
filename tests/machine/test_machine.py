import dataclasses
import os
import subprocess
import sys
import time

import pytest

from kbench.machine import blas_isa, check, finding, noise, peak, threadpools
from kbench.machine.finding import Finding
from kbench.machine.peak import EngineRate

AVX512 = {"sse2", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16"}
AVX2 = {"sse2", "sse4_2", "avx", "avx2", "fma"}


def openblas(arch: str, threads: int = 2) -> dict:
    return {"user_api": "blas", "internal_api": "openblas", "version": "0.3.27", "num_threads": threads,
            "architecture": arch}  # fmt: skip


def measured(numpy32: float = 236.0, tf32: float = 376.0) -> peak.Peak:
    engines = (EngineRate("numpy", gflops_float32=numpy32, gflops_float64=100.0),
               EngineRate("tensorflow", gflops_float32=tf32, gflops_float64=120.0))  # fmt: skip
    return peak.with_best(engines, 14.5, 1024, "fp", "now")


def warns(findings) -> list[Finding]:
    return [f for f in findings if f.level == "warn"]


def test_cpu_isa_from_flags():
    assert blas_isa.cpu_isa(AVX512) == "AVX-512" and blas_isa.cpu_isa(AVX2) == "AVX2"
    assert blas_isa.cpu_isa({"sse2", "avx"}) == "AVX" and blas_isa.cpu_isa({"sse2"}) == "SSE"
    assert blas_isa.cpu_isa(set()) is None


def test_openblas_pinned_below_the_cpu_names_the_variable_and_the_fix():
    (f,) = blas_isa.blas_findings(AVX512, [openblas("Haswell")], {"OPENBLAS_CORETYPE": "Haswell"})
    assert f.kind == "blas" and f.level == "warn"
    assert "OpenBLAS runs Haswell (AVX2) kernels on a CPU with AVX-512" in f.found
    assert "because OPENBLAS_CORETYPE=Haswell" in f.found
    assert "unmeasured" in f.cost and "kbench peak" in f.cost
    assert f.fix == "unset OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) for the benchmark"


def test_the_pin_is_priced_from_a_measured_peak():
    (f,) = blas_isa.blas_findings(AVX512, [openblas("Haswell")], {"OPENBLAS_CORETYPE": "Haswell"}, measured())
    assert "~63% of what this CPU can do" in f.cost and "float32 236 vs tensorflow 376 GFLOP/s" in f.cost


def test_right_kernels_are_ok_and_an_unpinned_old_kernel_still_warns():
    assert [f.level for f in blas_isa.blas_findings(AVX512, [openblas("SkylakeX")], {})] == ["ok"]
    assert [f.level for f in blas_isa.blas_findings(AVX512, [openblas("Cooperlake")], {})] == ["ok"]
    assert [f.level for f in blas_isa.blas_findings(AVX2, [openblas("Zen")], {})] == ["ok"]
    assert [f.level for f in blas_isa.blas_findings(AVX2, [openblas("Haswell")], {"OPENBLAS_CORETYPE": "Haswell"})] == [
        "ok"
    ]  # a pin that matches the CPU costs nothing
    (f,) = blas_isa.blas_findings(AVX512, [openblas("Sandybridge")], {})
    assert f.level == "warn" and "nothing pins it" in f.found and "(AVX)" in f.found


def test_mkl_and_onednn_caps_and_informational_settings():
    mkl = {"user_api": "blas", "internal_api": "mkl", "version": "2024.0", "num_threads": 2}
    assert [f.level for f in blas_isa.blas_findings(AVX512, [mkl], {})] == ["ok"]
    (f,) = blas_isa.blas_findings(AVX512, [mkl], {"MKL_ENABLE_INSTRUCTIONS": "AVX2"})
    assert f.level == "warn" and "MKL_ENABLE_INSTRUCTIONS=AVX2" in f.found and "unset MKL_ENABLE_INSTRUCTIONS" in f.fix
    (f,) = blas_isa.blas_findings(AVX512, [mkl], {"MKL_DEBUG_CPU_TYPE": "5"})
    assert f.level == "warn" and "MKL_DEBUG_CPU_TYPE=5" in f.found
    env = {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_L2_SIZE": "1048576"}
    found = blas_isa.blas_findings(AVX512, [openblas("SkylakeX")], env)
    assert {(f.level, f.found.split("=")[0]) for f in found if f.level != "ok"} == {
        ("warn", "MKL_CBWR"), ("warn", "ONEDNN_MAX_CPU_ISA"), ("info", "OPENBLAS_L2_SIZE")}  # fmt: skip
    (cbwr,) = [f for f in blas_isa.blas_findings(AVX512, [mkl], {"MKL_CBWR": "AUTO"}) if "CBWR" in f.found]
    assert cbwr.level == "info"


def test_numpy_far_below_the_best_engine_is_noted_even_without_a_pin():
    found = blas_isa.blas_findings(AVX512, [openblas("SkylakeX")], {}, measured(numpy32=100.0, tf32=400.0))
    assert [f.level for f in found] == ["ok", "info"] and "25%" in found[1].found and "--refresh" in found[1].fix
    assert len(blas_isa.blas_findings(AVX512, [openblas("SkylakeX")], {}, measured(300.0, 400.0))) == 1


def test_each_library_is_named_by_its_package_and_alike_findings_are_said_once():
    numpy_pool = {**openblas("Haswell"), "filepath": "/x/lib/python3.11/site-packages/numpy.libs/libscipy_openblas.so"}
    scipy_pool = {**openblas("Haswell"), "filepath": "/x/lib/python3.11/site-packages/scipy.libs/libscipy_openblas.so"}
    assert threadpools.owner(numpy_pool) == "numpy" and threadpools.owner({}) == ""
    found = blas_isa.blas_findings(AVX512, [numpy_pool, scipy_pool, numpy_pool], {"OPENBLAS_CORETYPE": "Haswell"})
    assert [f.found.split(" runs")[0] for f in found] == ["OpenBLAS (numpy)", "OpenBLAS (scipy)"]
    assert "unmeasured" in found[0].cost and found[1].cost == "scipy's GEMM runs AVX2 kernels on a CPU with AVX-512"


def test_no_blas_or_no_x86_flags_is_a_note():
    assert [f.level for f in blas_isa.blas_findings(AVX512, [], {})] == ["info"]
    assert [f.level for f in blas_isa.blas_findings(set(), [openblas("Haswell")], {})] == ["info"]


def test_load_busy_processes_and_the_load_average():
    (f,) = noise.load_findings((1.9, 1.0, 0.5), 2, [(42, "stress ng", 0.93), (7, "idle", 0.01)])
    assert f.level == "warn" and "stress ng (pid 42) 93% of a core" in f.found and "idle" not in f.found
    assert noise.load_findings((1.9, 1.0, 0.5), 2, [])[0].level == "info"
    assert noise.load_findings((0.1, 0.1, 0.1), 2, [(7, "idle", 0.01)])[0].level == "ok"
    assert noise.load_findings(None, 2, [])[0].level == "ok"


def test_proc_stat_names_with_spaces_and_parentheses(tmp_path):
    (tmp_path / "12").mkdir()
    fields = " ".join(["S", "1"] + ["0"] * 9 + ["250", "50"] + ["0"] * 30)
    (tmp_path / "12" / "stat").write_text(f"12 (odd) name) {fields}\n")
    assert noise._proc_ticks(tmp_path) == {12: ("odd) name", 300)}
    assert noise.busy_processes(window_s=0.001, proc=tmp_path) == []  # no ticks passed


def test_cpufreq_read_from_sysfs_and_judged(tmp_path):
    assert noise.read_cpufreq(tmp_path) == ({}, None, None)
    (f,) = noise.cpufreq_findings({}, None, None)
    assert f.level == "info" and "not readable on this machine (a VM)" in f.found
    for cpu, gov in (("cpu0", "powersave"), ("cpu1", "performance")):
        (tmp_path / cpu / "cpufreq").mkdir(parents=True)
        (tmp_path / cpu / "cpufreq" / "scaling_governor").write_text(gov + "\n")
    (tmp_path / "intel_pstate").mkdir()
    (tmp_path / "intel_pstate" / "no_turbo").write_text("0\n")
    read = noise.read_cpufreq(tmp_path)
    assert read == ({"powersave": 1, "performance": 1}, "0", None)
    levels = [(f.level, f.found) for f in noise.cpufreq_findings(*read)]
    assert levels == [("warn", "CPU frequency governor: powersave on 1 core(s)"), ("info", "turbo boost is on")]
    assert [f.level for f in noise.cpufreq_findings({"performance": 4}, "1", None)] == ["ok", "ok"]


def test_cores_and_thread_settings():
    assert noise.core_findings(4, 4, 2)[0].level == "ok" and "2 physical" in noise.core_findings(4, 4, 2)[0].found
    assert noise.core_findings(8, 2, None)[0].level == "info"
    assert noise.physical_cores("physical id : 0\ncore id : 0\n\nphysical id : 0\ncore id : 0\n") == 1
    assert noise.physical_cores("") is None
    pools = [openblas("SkylakeX", threads=2)]
    assert [f.level for f in noise.thread_findings({}, pools, 2)] == ["ok"]
    found = noise.thread_findings({"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "x",
                                     "TF_NUM_INTEROP_THREADS": "2"}, pools, 2)  # fmt: skip
    assert [(f.level, f.found.split("=")[0]) for f in found] == [
        ("warn", "OMP_NUM_THREADS"), ("warn", "OPENBLAS_NUM_THREADS"), ("info", "MKL_NUM_THREADS"),
        ("info", "TF_NUM_INTEROP_THREADS")]  # fmt: skip
    (f,) = noise.thread_findings({}, [openblas("SkylakeX", threads=16)], 2)
    assert f.level == "warn" and "16 threads on 2 usable cores" in f.found


def test_a_real_check_is_fast_covers_every_kind_and_changes_nothing():
    check.check()  # imports numpy and threadpoolctl once
    before = dict(os.environ)
    t0 = time.perf_counter()
    found = check.check()
    assert time.perf_counter() - t0 < 1.0  # ~0.1 s here; lenient for a loaded shared machine
    assert dict(os.environ) == before
    assert {f.kind for f in found} == set(finding.KINDS)
    assert all(f.level in finding.LEVELS and f.found for f in found)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].level = "ok"  # type: ignore[misc]


def test_block_lines_fold_ok_findings_and_stay_short():
    findings = [Finding("blas", "warn", "pinned", "slow", "unset it"), Finding("load", "ok", "quiet"),
                Finding("cores", "ok", "2 of 2"), Finding("cpufreq", "info", "not readable")]  # fmt: skip
    assert check.block_lines(findings) == [
        "machine: pinned; slow; fix: unset it",
        "machine check: ok load, cores; notes on cpufreq (`kbench env --check` for details)",
    ]
    many = [Finding("threads", "warn", f"w{i}") for i in range(6)] + [Finding("load", "ok", "quiet")]
    lines = check.block_lines(many)
    assert len(lines) == 5 and "3 more warning(s)" in lines[3] and lines[4].startswith("machine check: ok load")


def test_detail_lines_put_warnings_first_with_cost_and_fix():
    lines = check.detail_lines([Finding("load", "ok", "quiet"), Finding("blas", "warn", "pinned", "slow", "unset")])
    assert lines == ["[warn] blas: pinned", "       cost: slow", "       fix: unset", "[ok] load: quiet"]


def test_kbench_env_check_exits_0_with_every_kind(tmp_path):
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell", "KBENCH_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "kbench", "env", "--check"], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for kind in finding.KINDS:
        assert f"] {kind}: " in out.stdout
    if "avx512f" in open("/proc/cpuinfo").read():
        assert "[warn] blas: OpenBLAS (numpy) runs Haswell (AVX2) kernels" in out.stdout and "unmeasured" in out.stdout
