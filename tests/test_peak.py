import json

import pytest

from kbench import peak


def test_measure_gives_plausible_positive_figures():
    p = peak.measure(gemm_n=128, copy_mib=4, repeats=2)
    assert p.gflops_float32 > 0 and p.gflops_float64 > 0 and p.copy_gbps > 0
    assert p.gflops("float64") == p.gflops_float64 and p.gflops("float32") == p.gflops_float32
    assert p.fingerprint == peak.fingerprint()


def test_cached_per_fingerprint_and_remeasured_when_it_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("KBENCH_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_measure():
        calls.append(1)
        return peak.Peak(100.0, 50.0, 10.0, 1024, peak.fingerprint(), "now")

    monkeypatch.setattr(peak, "measure", fake_measure)
    first, cached = peak.load_or_measure()
    assert not cached and calls == [1]
    again, cached = peak.load_or_measure()
    assert cached and again == first and calls == [1]
    monkeypatch.setattr(peak, "fingerprint", lambda: "another-machine")
    _, cached = peak.load_or_measure()
    assert not cached and calls == [1, 1]
    assert len(list(tmp_path.glob("peak-*.json"))) == 2
    _, cached = peak.load_or_measure(refresh=True)
    assert not cached and len(calls) == 3


def test_damaged_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("KBENCH_CACHE_DIR", str(tmp_path))
    (tmp_path / f"peak-{peak.fingerprint()}.json").write_text("{not json")
    monkeypatch.setattr(peak, "measure", lambda: peak.Peak(1.0, 1.0, 1.0, 8, peak.fingerprint(), "now"))
    p, cached = peak.load_or_measure()
    assert not cached and json.loads((tmp_path / f"peak-{p.fingerprint}.json").read_text())["gemm_n"] == 8
