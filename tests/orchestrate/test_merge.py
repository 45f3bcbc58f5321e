"""Merging shards (`kbench merge`): exact merges of synthetic shard folders, the refusals, the machine fingerprint,
and one real tiny sharded run merged and reported through the CLI."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import run_cli
from kbench import api
from kbench.cli.app import app
from kbench.orchestrate import merge
from kbench.orchestrate.record import RunStart
from kbench.core.errors import RunNotFoundError, SchemaError, UsageError
from kbench.store.results import RunWriter, load_run

runner = CliRunner()
HOST = {"cpu": "Test CPU", "logical_cores": 2, "usable_cores": 2, "machine": "x86_64", "os": "Linux-1",
        "python": "3.11.7", "packages": {"numpy": "2.0.0", "keras": "3.0.0"},
        "blas": [{"internal_api": "openblas", "version": "0.3.30", "num_threads": 2}],
        "env": {"OMP_NUM_THREADS": "2", "TF_CLI_CONFIG_FILE": "/home/x/.terraformrc"}}  # fmt: skip
PATHS = ("numpy", "call")


def _plan(shard_arg=None, batch="1,2,4,8", n="8,16,32", **kw):
    """dense at 4 batches and matmul at 3 sizes: a 7-cell plan."""
    return api.plan(["dense", "matmul"], PATHS, sizes={"batch": batch, "n": n}, quick=True, processes=1,
                    shard=shard_arg, **kw)  # fmt: skip


# -- synthetic shard folders -----------------------------------------------------------------------------------------


def _rows(plan, cell, run_id: str, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Rows and samples of one cell, with full-precision floats (an inexact merge would change their digits)."""
    rows, samples = [], []
    for path in PATHS:
        key = {"run_id": run_id, "model": cell.model, "backend": "tensorflow", "path": path, "sizes": cell.label,
               "dtype": cell.dtype}  # fmt: skip
        median = rng.random() * 1e-4
        rows.append({**key, "options": cell.options_dict, **{f"size_{k}": v for k, v in cell.sizes},
                     "median_s": median, "ci_low_s": median * 0.9, "ci_high_s": median * 1.1, "n_samples": 3,
                     "ratio_to_numpy": rng.random() * 100, "parity_ok": True, "flags": [], "warnings": [],
                     "process_medians_s": [median]})  # fmt: skip
        samples += [{**key, "process": 0, "sample": i, "loops": 7, "seconds": rng.random() * 1e-4} for i in range(3)]
    return rows, samples


def write_shard(root: Path, k: int, n: int, name: str | None = None, seed: int = 0, host: dict | None = None,
                **meta) -> Path:  # fmt: skip
    """A shard's run folder as `kbench run --shard k/n` writes it (the plan of :func:`_plan`), rows made up."""
    plan = _plan(f"{k}/{n}", seed=seed)
    run_id = name or f"shard{k}of{n}"
    start = RunStart.of(plan, None, ["machine check: ok"], []).to_json()
    start.update(command=f"kbench run --model dense,matmul --shard {k}/{n} --quick", run_id=run_id,
                 env={"host": host or HOST, "backends": {"tensorflow": {"keras": "3.0.0", "devices": ["CPU:0"]}}},
                 imports={"tensorflow": {"numpy": 0.05 * k, "backend": 3.0 * k}}, runtime_init_s={"tensorflow": 0.2 * k},
                 imports_per_process={"tensorflow": [{"numpy": 0.05 * k, "backend": 3.0 * k}]},
                 runtime_init_s_per_process={"tensorflow": [0.2 * k]}, started=f"2026-01-01T00:0{k}:00",
                 worker_pid={"tensorflow": 100 + k}, **meta)  # fmt: skip
    writer = RunWriter(root / run_id, start)
    rng = random.Random(k * 1000 + seed)
    for i, cell in enumerate(plan.cells):
        writer.put_cell(("tensorflow", i), *_rows(plan, cell, run_id, rng))
    writer.finish(meta.get("status", "complete"), finished=f"2026-01-01T00:1{k}:00")
    return root / run_id


def _lines(run_dir: Path) -> tuple[list[str], list[str]]:
    """results.json's row lines and samples.csv's data lines, as text."""
    rows = [ln.rstrip(",") for ln in (run_dir / "results.json").read_text().splitlines()[1:-1]]
    return rows, (run_dir / "samples.csv").read_text().splitlines()[1:]


@pytest.fixture()
def shards(tmp_path):
    return [write_shard(tmp_path / "shards", k, 3) for k in (1, 2, 3)]


def test_merge_is_exact_and_in_plan_order(shards, tmp_path):
    result = merge.merge_runs(reversed(shards), tmp_path / "merged", command="kbench merge ...")
    rows, samples = _lines(result.run_dir)
    assert Counter(rows) == Counter(line for s in shards for line in _lines(s)[0])  # byte for byte, each once
    assert Counter(samples) == Counter(line for s in shards for line in _lines(s)[1])
    full = _plan()
    order = [c.label for c in full.cells]
    labels = [json.loads(r)["sizes"] for r in rows]
    assert labels == [lab for lab in order for _ in PATHS]  # an unsharded run's order
    assert [c["sizes"] for c in result.meta.plan["cells"]] == order
    merged = load_run(result.run_dir)
    assert len(merged.results) == 2 * len(full.cells) == result.rows and result.samples == 6 * len(full.cells)
    assert set(merged.results["run_id"]) == {"shard1of3", "shard2of3", "shard3of3"}  # who measured each row
    assert (result.cells, result.plan_cells, result.shards, result.missing) == (7, 7, ("1/3", "2/3", "3/3"), ())


def test_merge_combines_the_metadata(tmp_path):
    root = tmp_path / "shards"
    a = write_shard(root, 1, 2, failures=["worker crashed"], failed_cells=[{"model": "dense", "sizes": "batch=1",
                    "backend": "tensorflow", "reason": "crashed"}], skipped=[{"model": "dense", "sizes": "x", "reason": "big"}])
    b = write_shard(root, 2, 2, skipped=[{"model": "dense", "sizes": "x", "reason": "big"}], status="interrupted")
    meta = merge.merge_runs([a, b], tmp_path / "m", command="kbench merge a b --out m").meta
    assert meta.run_id == "m" and meta.status == "interrupted"
    assert meta.command == "kbench run --model dense,matmul --quick"  # the whole plan, on one machine
    assert (meta.started, meta.finished) == ("2026-01-01T00:01:00", "2026-01-01T00:12:00")
    assert meta.failures == ("shard 1/2: worker crashed",)
    assert [f["shard"] for f in meta.failed_cells] == ["1/2"] and len(meta.skipped) == 1
    assert meta["imports_per_process"]["tensorflow"] == [{"numpy": 0.05, "backend": 3.0}, {"numpy": 0.1, "backend": 6.0}]
    assert meta["imports"]["tensorflow"] == pytest.approx({"numpy": 0.075, "backend": 4.5})
    assert meta["runtime_init_s_per_process"]["tensorflow"] == [0.2, 0.4]
    assert set(meta["models"]) == {"dense", "matmul"} and "shard" not in meta and "worker_pid" not in meta
    m = meta["merged"]
    assert (m["command"], m["shards"], m["count"], m["plan_cells"], m["partial"], m["mixed"]) == \
        ("kbench merge a b --out m", ["1/2", "2/2"], 2, 7, False, [])  # fmt: skip
    assert [(i["run_id"], i["status"], i["cells"], i["rows"], i["worker_pid"]) for i in m["inputs"]] == \
        [("shard1of2", "complete", 4, 8, {"tensorflow": 101}), ("shard2of2", "interrupted", 3, 6, {"tensorflow": 102})]


def _refusal(fn, *args, **kwargs) -> str:
    with pytest.raises(UsageError) as info:
        fn(*args, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_missing_shard_is_refused_unless_partial(tmp_path):
    root = tmp_path / "s"
    runs = [write_shard(root, k, 4) for k in (1, 2, 4)]
    assert _refusal(merge.merge_runs, runs, tmp_path / "m") == ("shard 3/4 is missing; pass every shard's run "
                                                                "folder, or --allow-partial to merge without them")
    assert "shards 2/4, 3/4 are missing" in _refusal(merge.merge_runs, runs[::2], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    result = merge.merge_runs(runs, tmp_path / "m", allow_partial=True)
    assert result.missing == ("3/4",) and result.cells == 5 and result.plan_cells == 7
    assert result.meta["merged"]["missing"] == [{"shard": "3/4", "cells": [2, 6]}]


def test_duplicates_are_refused(shards, tmp_path):
    text = _refusal(merge.merge_runs, [shards[0], shards[1], shards[0]], tmp_path / "m")
    assert text.startswith(f"{shards[0]} is given twice")
    copy = tmp_path / "copy"
    shutil.copytree(shards[1], copy)
    text = _refusal(merge.merge_runs, [*shards, copy], tmp_path / "m")
    assert text == f"shard 2/3 is given twice ({shards[1]} and {copy}); pass each shard once"


def test_overlapping_rows_are_refused(shards, tmp_path):
    other = write_shard(tmp_path / "o", 3, 3, name="other")
    rows = (shards[0] / "results.json").read_text().splitlines()
    doc = (other / "results.json").read_text().splitlines()
    (other / "results.json").write_text("\n".join([doc[0], rows[1], *doc[1:]]) + "\n")  # a row of shard 1 in shard 3
    text = _refusal(merge.merge_runs, [shards[0], shards[1], other], tmp_path / "m")
    assert text.startswith("the row dense tensorflow numpy batch=1 features=128 units=128 float32 is in both")


def test_shards_of_different_plans_are_refused(tmp_path):
    a = write_shard(tmp_path / "a", 1, 2)
    assert "(plan.seed 0 vs 1)" in _refusal(merge.merge_runs, [a, write_shard(tmp_path / "b", 2, 2, seed=1)],
                                             tmp_path / "m")  # fmt: skip
    text = _refusal(merge.merge_runs, [a, write_shard(tmp_path / "c", 2, 3)], tmp_path / "m")
    assert text.endswith("are shards of different plans (shard 1/2 vs 2/3: one sweep has one shard count); merge "
                         "the shards of one `kbench run --shard K/N` command")  # fmt: skip


def test_mixed_machines_are_refused_unless_allowed(tmp_path):
    a = write_shard(tmp_path / "s", 1, 2)
    b = write_shard(tmp_path / "s", 2, 2, host={**HOST, "cpu": "Other CPU", "packages": {"numpy": "2.1.0", "keras": "3.0.0"},
                                                "os": "Linux-2", "env": {"OMP_NUM_THREADS": "2"}})  # fmt: skip
    text = _refusal(merge.merge_runs, [a, b], tmp_path / "m")
    assert text == ('the shards ran on different machines or software: host.cpu "Test CPU" in shard1of2 vs "Other CPU" '
                    "in shard2of2 (and 1 more field(s)); merge shards from one kind of machine, or pass --allow-mixed")
    result = merge.merge_runs([a, b], tmp_path / "m", allow_mixed=True)
    assert result.mixed == ("host.cpu", "host.packages.numpy")  # the OS build and Terraform's TF_ variable don't count
    assert result.meta["merged"]["allow_mixed"] is True
    assert result.meta["merged"]["mixed"][1] == {"field": "host.packages.numpy",
                                                 "values": {"shard1of2": '"2.0.0"', "shard2of2": '"2.1.0"'}}


def test_bad_inputs_are_refused(shards, tmp_path):
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        merge.merge_runs(["nope"], tmp_path / "m", reports_dir=tmp_path)
    future = tmp_path / "future"
    shutil.copytree(shards[0], future)
    meta = json.loads((future / "run.json").read_text())
    (future / "run.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(SchemaError, match="schema version 99, newer than this kbench reads"):
        merge.merge_runs([future, *shards[1:]], tmp_path / "m")
    plain = RunWriter(tmp_path / "plain", {"run_id": "plain", "plan": {}})
    assert "was not run with --shard" in _refusal(merge.merge_runs, [plain.run_dir], tmp_path / "m")
    assert "already exists" in _refusal(merge.merge_runs, shards, shards[0])
    assert "no run to merge" in _refusal(merge.merge_runs, [], tmp_path / "m")
    merged = merge.merge_runs(shards, tmp_path / "m").run_dir
    assert "is a merged run" in _refusal(merge.merge_runs, [merged], tmp_path / "m2")


def test_cli_merge_refusals_are_one_line_exit_2(shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args, words in [(shards[:2], "shard 3/3 is missing"), ([*shards, shards[0]], "is given twice"),
                        (["nope"], "no run 'nope'"), (shards, "Missing option '--out'")]:  # fmt: skip
        result = runner.invoke(app, ["merge", *map(str, args), *(["--out", "m"] if words != "Missing option '--out'" else [])])
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "m").exists()


def test_cli_merge_partial_and_report(shards, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["merge", str(shards[0]), str(shards[2]), "--out", "m", "--allow-partial", "--no-report"])
    assert result.exit_code == 0, result.output
    assert "merged 2 of 3 shards: 5 of the plan's 7 cells, 10 rows, 30 samples" in result.output
    assert "partial merge: shard(s) 2/3 missing" in result.output
    meta = json.loads((tmp_path / "m" / "run.json").read_text())
    assert meta["merged"]["command"].endswith("--out m --allow-partial")


# -- a real tiny sharded run ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_sharded_run_merged_and_reported(tmp_path):
    args = ["run", "--model", "dense", "--path", "numpy,call", "--batch", "1,2,3", "--quick", "--cell-budget", "0.3",
            "--processes", "1", "--no-report"]  # fmt: skip
    for k in (1, 2):
        proc = run_cli(*args, "--shard", f"{k}/2", "--out", f"shards{k}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"shard {k}/2: {2 if k == 1 else 1} of the plan's 3 cells" in proc.stderr
    folders = [str(next((tmp_path / f"shards{k}").iterdir())) for k in (1, 2)]
    meta = json.loads(Path(folders[0], "run.json").read_text())
    assert (meta["shard"]["index"], meta["shard"]["count"], meta["shard"]["plan_cells"]) == (1, 2, 3)
    proc = run_cli("merge", *folders, "--out", "merged", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "merged 2 of 2 shards: 3 of the plan's 3 cells, 6 rows" in proc.stdout
    merged = load_run(tmp_path / "merged")
    assert list(merged.results["size_batch"]) == [1, 1, 2, 2, 3, 3]
    assert merged.meta.command == "kbench run " + " ".join(args[1:])
    assert Counter(_lines(tmp_path / "merged")[0]) == Counter(x for f in folders for x in _lines(Path(f))[0])
    (tmp_path / "merged" / "report.html").unlink()
    proc = run_cli("report", "merged", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "merged" / "report.html").stat().st_size > 10_000


def test_fingerprint_ignores_library_load_order_and_noise():
    from kbench.store.results import RunMeta

    blas = [{"internal_api": "openblas", "version": "0.3.30"}, {"internal_api": "openblas", "version": "0.3.31"}]
    a = RunMeta(env={"host": {**HOST, "blas": blas}})
    b = RunMeta(env={"host": {**HOST, "blas": blas[::-1], "os": "Linux-2", "env": {"OMP_NUM_THREADS": "2"}}})
    assert merge.fingerprint(a) == merge.fingerprint(b)
    c = RunMeta(env={"host": {**HOST, "env": {"OMP_NUM_THREADS": "1"}}})
    assert merge.fingerprint(a)["host.env.OMP_NUM_THREADS"] != merge.fingerprint(c)["host.env.OMP_NUM_THREADS"]
