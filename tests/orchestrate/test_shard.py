"""Sharding (`kbench run --shard K/N`): the partition property, the plan digest, parsing and refusals, and the
shard recorded in run.json (merging the shards: tests/orchestrate/test_merge.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kbench import api
from kbench.orchestrate import shard
from kbench.cli.app import app
from kbench.core.errors import BadOptionError
from kbench.orchestrate.planning import parse_shard
from kbench.orchestrate.record import RunStart

runner = CliRunner()
PATHS = ("numpy", "call")


def _plan(shard_arg=None, batch="1,2,4,8", n="8,16,32", **kw):
    """dense at 4 batches and matmul at 3 sizes: a 7-cell plan."""
    return api.plan(["dense", "matmul"], PATHS, sizes={"batch": batch, "n": n}, quick=True, processes=1,
                    shard=shard_arg, **kw)  # fmt: skip


# -- the partition ---------------------------------------------------------------------------------------------------


@given(total=st.integers(0, 300), count=st.integers(1, 40))
def test_round_robin_partitions_every_index_once_and_balanced(total, count):
    parts = [shard.shard_indices(total, k, count) for k in range(1, count + 1)]
    flat = [i for p in parts for i in p]
    assert sorted(flat) == list(range(total))  # the union is the plan, each index once
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert all(p == tuple(sorted(p)) for p in parts)  # a shard keeps the full plan's order


@settings(max_examples=25)
@given(batches=st.sets(st.integers(1, 64), min_size=1, max_size=6), ns=st.sets(st.integers(1, 32), max_size=5),
       count=st.integers(1, 12))  # fmt: skip
def test_shards_of_a_real_plan_are_the_plan(batches, ns, count):
    models = ["dense", "matmul"] if ns else ["dense"]
    sizes = {"batch": ",".join(map(str, batches)), **({"n": ",".join(map(str, ns))} if ns else {})}
    full = api.plan(models, sizes=sizes, quick=True, processes=1)
    got, digests = [], set()
    for k in range(1, count + 1):
        if k > len(full.cells):
            with pytest.raises(BadOptionError, match=f"no cells; use at most {len(full.cells)} shard"):
                api.plan(models, sizes=sizes, quick=True, processes=1, shard=f"{k}/{count}")
            continue
        part = api.plan(models, sizes=sizes, quick=True, processes=1, shard=f"{k}/{count}")
        assert part.shard.plan_cells == len(full.cells) and part.shard.cells == shard.shard_indices(len(full.cells), k, count)
        got += list(zip(part.shard.cells, part.cells))
        digests.add(part.shard.plan_digest)
    assert sorted(got) == list(enumerate(full.cells))  # disjoint, and together exactly the unsharded plan
    assert digests == {shard.plan_digest(full)}


def test_plan_digest_tells_plans_apart():
    assert shard.plan_digest(_plan()) == shard.plan_digest(_plan())
    assert shard.plan_digest(_plan()) != shard.plan_digest(_plan(batch="1,2,4,16"))
    assert shard.plan_digest(_plan()) != shard.plan_digest(_plan(seed=1))


@pytest.mark.parametrize("text, expect", [("2/4", (2, 4)), ("1/1", (1, 1)), (" 4 / 4 ", (4, 4)), ((3, 5), (3, 5))])
def test_parse_shard(text, expect):
    got = parse_shard(text)
    assert (got.index, got.count, got.label) == (*expect, f"{expect[0]}/{expect[1]}")
    assert parse_shard(None) is None


BAD_SHARDS = [
    ("0/4", "--shard 0/4: K must be from 1 to 4"),
    ("5/4", "--shard 5/4: K must be from 1 to 4; shards are numbered 1/4 to 4/4"),
    ("2/0", "--shard 2/0: N must be 1 or more"),
    ("x", "--shard 'x' is not K/N; write e.g. --shard 2/4"),
    ("2-4", "--shard '2-4' is not K/N"),
    ("-1/4", "is not K/N"),
    ("1/4/2", "is not K/N"),
    ("", "is not K/N"),
    ("٣/4", "is not K/N"),  # a non-ASCII digit
]


@pytest.mark.parametrize("text, words", BAD_SHARDS)
def test_bad_shard_is_one_line_exit_2(text, words, tmp_path, monkeypatch):
    with pytest.raises(BadOptionError, match=words.replace("(", r"\(")):
        parse_shard(text)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "--model", "dense", "--shard", text])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("kbench: error: --shard"), result.output
    assert words in lines[0] and not (tmp_path / "reports").exists()


def test_empty_shard_is_refused_with_the_largest_useful_count(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "--model", "dense", "--batch", "1,2,4", "--shard", "5/5"])
    assert result.exit_code == 2
    assert result.output.strip() == ("kbench: error: shard 5/5 of a 3-cell plan has no cells; use at most 3 shards")


def test_start_meta_records_the_shard():
    plan = _plan("2/3")
    meta = RunStart.of(plan, None, [], []).to_json()
    assert meta["shard"] == {"index": 2, "count": 3, "plan_cells": 7, "cells": [1, 4], "plan_digest": plan.shard.plan_digest,
                             "assignment": "round-robin"}  # fmt: skip
    assert [c["sizes"] for c in meta["plan"]["cells"]] == ["batch=2 features=128 units=128", "n=8"]
    assert "shard" not in RunStart.of(_plan(), None, [], []).to_json()
