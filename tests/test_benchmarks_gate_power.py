"""benchmarks/gate_power.py without a single `kbench run`: planting a slowdown in a copy of a run folder (a
synthetic schema-3 run written by RunWriter, and the golden schema-1 run), and reading the gate's failure lines."""

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from kbench.analysis.compare import compare_runs, where
from kbench.store.results import RunWriter, load_run

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "v1-20261126-081219-dense-dot"
SPEC = importlib.util.spec_from_file_location("gate_power", ROOT / "benchmarks" / "gate_power.py")
gp = sys.modules.setdefault("gate_power", importlib.util.module_from_spec(SPEC))  # dataclasses look it up there
SPEC.loader.exec_module(gp)

MEDIANS = {("numpy", 1): 3e-6, ("compiled", 1): 3e-4, ("numpy", 32): 2e-5, ("compiled", 32): 4e-4}


def _run(root: Path, run_id: str, seed: int) -> Path:
    """Two cells (batch 1 and 32), numpy and compiled, 3 processes of 20 samples each."""
    rng = np.random.default_rng(seed)
    w = RunWriter(root / run_id, {"run_id": run_id, "command": "kbench run --model dense", "backends": ["tensorflow"]})
    for batch in (1, 32):
        sizes, rows, samples = f"batch={batch} features=8", [], []
        per = {p: [MEDIANS[p, batch] * np.exp(rng.normal(0, 0.02, 20)) for _ in range(3)]
               for p in ("numpy", "compiled")}
        for path, procs in per.items():
            meds = [float(np.median(s)) for s in procs]
            ratio = [m / float(np.median(n)) for m, n in zip(meds, per["numpy"])]
            rows.append({"run_id": run_id, "model": "dense", "backend": "tensorflow", "path": path, "sizes": sizes,
                         "dtype": "float32", "options": {"activation": "linear"}, "size_batch": batch,
                         "median_s": float(np.median(np.concatenate(procs))), "ci_low_s": min(meds),
                         "ci_high_s": max(meds), "n_processes": 3, "process_medians_s": meds, "gflops": 1.0,
                         "ratio_to_numpy": float(np.median(ratio)), "ratio_process": ratio})  # fmt: skip
            samples += [{"run_id": run_id, "model": "dense", "backend": "tensorflow", "path": path, "sizes": sizes,
                         "dtype": "float32", "process": p, "sample": i, "loops": 1, "seconds": float(x)}
                        for p, s in enumerate(procs) for i, x in enumerate(s)]  # fmt: skip
        w.put_cell(batch, rows, samples)
    w.finish("complete")
    return root / run_id


def _row(run, path, batch):
    r = run.results
    return r[(r["path"] == path) & (r["sizes"].str.startswith(f"batch={batch} "))].iloc[0]


def _seconds(run, path, batch):
    s = run.samples
    return s[(s["path"] == path) & (s["sizes"].str.startswith(f"batch={batch} "))]["seconds"].to_numpy()


def test_targets_parse_and_match_rows_by_path_and_size():
    t = gp.parse_target("compiled:batch=32")
    assert t == gp.Target("compiled", (("batch", "32"),)) and t.label == "compiled:batch=32"
    assert t.matches({"path": "compiled", "sizes": "batch=32 features=128"})
    assert not t.matches({"path": "compiled", "sizes": "batch=320 features=32"})
    assert not t.matches({"path": "numpy", "sizes": "batch=32 features=128"})
    assert gp.parse_target("numpy:batch=1,threads=2").matches({"path": "numpy", "sizes": "batch=1", "threads": 2.0})
    for bad in ("", ":batch=32", "compiled:batch", "compiled:=3"):
        with pytest.raises(gp.PlantError):
            gp.parse_target(bad)


def test_planting_slows_exactly_the_target_row_and_its_samples_and_keeps_the_rest(tmp_path):
    src = _run(tmp_path, "b", seed=1)
    assert gp.plant(src, tmp_path / "planted" / "b", gp.parse_target("compiled:batch=32"), 1.25) == 1
    before, after = load_run(src), load_run(tmp_path / "planted" / "b")
    assert _seconds(after, "compiled", 32) == pytest.approx(1.25 * _seconds(before, "compiled", 32), rel=1e-12)
    old, new = _row(before, "compiled", 32), _row(after, "compiled", 32)
    for col in ("median_s", "ci_low_s", "ci_high_s", "ratio_to_numpy"):
        assert new[col] == pytest.approx(1.25 * old[col])
    assert new["process_medians_s"] == pytest.approx([1.25 * m for m in old["process_medians_s"]])
    assert new["gflops"] == pytest.approx(1 / 1.25)
    for path, batch in (("numpy", 32), ("numpy", 1), ("compiled", 1)):
        assert (_seconds(after, path, batch) == _seconds(before, path, batch)).all()
        assert _row(after, path, batch)["median_s"] == _row(before, path, batch)["median_s"]
    ratios = {(r.key.path, r.key.sizes): r.change.ratio for r in compare_runs(before, after).rows}
    assert ratios.pop(("compiled", "batch=32 features=8")) == pytest.approx(1.25)
    assert all(v == pytest.approx(1.0) for v in ratios.values())


def test_planting_on_numpy_divides_the_other_paths_ratios_in_its_cell(tmp_path):
    src = _run(tmp_path, "b", seed=2)
    gp.plant(src, tmp_path / "p" / "b", gp.parse_target("numpy:batch=32"), 1.25)
    before, after = load_run(src), load_run(tmp_path / "p" / "b")
    assert _row(after, "numpy", 32)["median_s"] == pytest.approx(1.25 * _row(before, "numpy", 32)["median_s"])
    assert _row(after, "numpy", 32)["ratio_to_numpy"] == _row(before, "numpy", 32)["ratio_to_numpy"]
    old = _row(before, "compiled", 32)["ratio_to_numpy"]
    assert _row(after, "compiled", 32)["ratio_to_numpy"] == pytest.approx(old / 1.25)
    assert _row(after, "compiled", 1)["ratio_to_numpy"] == _row(before, "compiled", 1)["ratio_to_numpy"]


def test_a_target_the_run_lacks_is_an_error(tmp_path):
    src = _run(tmp_path, "b", seed=3)
    with pytest.raises(gp.PlantError, match="xla:batch=32"):
        gp.plant(src, tmp_path / "p" / "b", gp.parse_target("xla:batch=32"), 1.25)


def test_the_golden_schema_1_run_can_be_planted_and_compared(tmp_path):
    src = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, src)
    assert gp.plant(src, tmp_path / "p" / GOLDEN.name, gp.parse_target("compiled:batch=32"), 1.25) == 2  # dense, dot
    before, after = load_run(src), load_run(tmp_path / "p" / GOLDEN.name)
    rows = {(r.key.model, r.key.path, r.key.sizes.split()[0]): r.change for r in compare_runs(before, after).rows}
    assert rows[("dense", "compiled", "batch=32")].ratio == pytest.approx(1.25)
    assert rows[("dense", "compiled", "batch=1")].ratio == pytest.approx(1.0)
    assert _row(after, "compiled", 32)["median_s"] == pytest.approx(1.25 * _row(before, "compiled", 32)["median_s"])


def test_a_gate_failure_line_names_the_target_only_at_its_path_and_cell(tmp_path):
    run = load_run(_run(tmp_path, "a", seed=4))
    keys = {(r.key.path, r.key.sizes): r.key for r in compare_runs(run, run).rows}
    t = gp.parse_target("compiled:batch=32")
    assert t.named_in(where(keys["compiled", "batch=32 features=8"]))
    assert not t.named_in(where(keys["compiled", "batch=1 features=8"]))
    assert not t.named_in(where(keys["numpy", "batch=32 features=8"]))
    both = gp.parse_target("compiled:batch=32,backend=tensorflow")
    assert both.named_in(where(keys["compiled", "batch=32 features=8"]))


def test_the_report_counts_flags_and_false_alarms():
    targets = [gp.parse_target(t) for t in gp.DEFAULT_TARGETS]
    results = [gp.PairResult("a", "b", False, (True, i < 3), ("1.25× [1.1–1.4], p=0.001", "x")) for i in range(5)]
    text = "\n".join(gp.report(results, targets, 1.25))
    assert "0/5 = 0%" in text and "5/5 = 100%" in text and "3/5 = 60%" in text and "pair 5: missed" in text
    assert not gp.passes(results, targets)
    assert gp.passes([gp.PairResult("a", "b", False, (True, True), ("", ""))] * 5, targets)
