"""Beyond one machine: split a plan's cells into N shards (``kbench run --shard K/N``, one CI job each), and
record in run.json which shard a run is (:mod:`kbench.orchestrate.merge` joins the shards' run folders back into one run).

**Partition: round-robin by the cell's index in the full plan.** Cell ``i`` (from 0, in the full plan's order,
which :func:`kbench.orchestrate.planning.make_cells` makes deterministic) goes to shard ``i mod N + 1``. Why not a stable hash
of the cell's identity, which would keep a cell in its shard when a size is added? Because shards of different
plans are never merged (:func:`kbench.orchestrate.merge.merge_runs` refuses them), so that stability buys nothing, while
round-robin gives what a job matrix needs: shard sizes differ by at most one cell, each shard gets a mix of small
and large sizes (the full plan runs small to large along each axis), and a shard is empty exactly when K exceeds the
plan's cell count, which is refused with the fix (``use at most C shards``) instead of leaving a CI job with nothing
to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from typing import Any

from kbench.core.errors import BadOptionError, SchemaError
from kbench.measure.protocol import Cell
from kbench.orchestrate.planning import Plan, Shard

ASSIGNMENT = "round-robin"  # recorded in run.json: how cells were assigned to shards


# -- sharding a plan ------------------------------------------------------------------------------------------------


def shard_indices(total: int, index: int, count: int) -> tuple[int, ...]:
    """The full-plan indices (from 0) of shard ``index``/``count``'s cells: round-robin."""
    return tuple(range(index - 1, total, count))


def cell_json(cell: Cell) -> dict[str, Any]:
    """A cell as run.json's ``plan.cells`` records it (no model file: its path differs between machines)."""
    return {"model": cell.model, "sizes": cell.label, "options": cell.options_dict, "dtype": cell.dtype}


def plan_digest(plan: Plan) -> str:
    """The full plan's identity: its cells and every setting that changes what is measured. Equal on every
    machine for one command (unless the memory guard skips different cells there)."""
    doc = {"cells": [cell_json(c) for c in plan.cells], "paths": list(plan.paths), "seed": plan.seed,
           "timer": asdict(plan.timer), "processes": plan.processes, "backends": list(plan.backends),
           "mode": plan.mode, "device": plan.device, "precision": plan.precision, "resident": plan.resident,
           "run_budget_s": plan.run_budget_s}  # fmt: skip
    doc.update({k: list(v) for k, v in (("gaps", plan.gaps), ("threads", plan.threads)) if v})  # --gap, --threads
    doc.update({"rate": plan.rate} if plan.rate is not None else {})  # --rate
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def apply(plan: Plan, shard: Shard) -> Plan:
    """``plan`` (the full plan) cut down to shard K/N's cells, with the shard recorded; an empty shard is refused."""
    total = len(plan.cells)
    picked = shard_indices(total, shard.index, shard.count)
    if not picked:
        most = f"{total} shard{'s' * (total > 1)}"
        raise BadOptionError(f"shard {shard.label} of a {total}-cell plan has no cells; use at most {most}")
    filled = Shard(shard.index, shard.count, total, picked, plan_digest(plan))
    return replace(plan, cells=tuple(plan.cells[i] for i in picked), shard=filled)


def shard_json(shard: Shard) -> dict[str, Any]:
    """run.json's ``shard`` object."""
    return {"index": shard.index, "count": shard.count, "plan_cells": shard.plan_cells, "cells": list(shard.cells),
            "plan_digest": shard.plan_digest, "assignment": ASSIGNMENT}  # fmt: skip


def shard_from_json(data: Any, where: str) -> Shard:
    """run.json's ``shard`` object, checked (a damaged one is a :class:`SchemaError`)."""
    try:
        shard = Shard(int(data["index"]), int(data["count"]), int(data["plan_cells"]),
                      tuple(int(i) for i in data["cells"]), str(data["plan_digest"]))  # fmt: skip
    except (TypeError, KeyError, ValueError):
        raise SchemaError(f"{where}/run.json has a damaged `shard` field; rerun that shard") from None
    if data.get("assignment", ASSIGNMENT) != ASSIGNMENT or shard.cells != shard_indices(
            shard.plan_cells, shard.index, shard.count):  # fmt: skip
        raise SchemaError(f"{where}/run.json: shard {shard.label} lists cells this kbench would not assign to it; "
                          "rerun the shards with one kbench version")  # fmt: skip
    return shard
