"""A run's output while it goes on: each finished cell's rows, rebuilt from every worker process that has finished it
(:mod:`kbench.orchestrate.rows`), and the run folder they are written to at once (created with the first finished cell, so a
run that finishes nothing writes nothing), with the workers' logs and run.json."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from kbench.measure.protocol import Cell, CellDone, Job
from kbench.orchestrate.planning import Plan
from kbench.orchestrate.rows import CellFacts, cell_rows


def cell_key(backend: str, index: int, threads: int | None) -> tuple:
    """A cell's key among the rows: (backend, cell) as before, with the ``--threads`` setting when one is given."""
    return (backend, index) if threads is None else (backend, index, threads)


class RunOutput:
    """The rows of every finished cell, kept in memory and (with a run folder) on disk."""

    def __init__(self, plan: Plan, run_dir: Path | None, peak: Any = None) -> None:
        self.plan, self.run_dir, self.peak = plan, run_dir, peak
        self.specs = {c.model_file: _load_spec(c.model_file) for c in plan.cells}
        self.done: dict[tuple, dict[int, CellDone]] = {}  # (backend, cell[, threads]) -> process -> record
        self.rows: dict[tuple, tuple[list[dict], list[dict]]] = {}
        self.writer = None  # the run folder's writer, once the first cell has finished

    @property
    def run_id(self) -> str:
        return self.run_dir.name if self.run_dir is not None else ""

    def finished(self, backend: str) -> set[int]:
        """The cells of ``backend`` that some process has finished."""
        return {k[1] for k in self.done if k[0] == backend}

    def add_cell(self, job: Job, event: CellDone, imports: dict[str, float], meta: Callable[[], dict]) -> None:
        """Rebuild the rows of the cell ``event`` finished, with every process's record of it, and write them;
        ``meta`` gives run.json's object if the run folder is still to be created."""
        key = cell_key(job.backend, event.index, job.threads)
        self.done.setdefault(key, {})[job.slot] = event  # every process of every path group
        cell = self.plan.cells[event.index]
        spec = self.specs[cell.model_file]
        facts = CellFacts(self.run_id, job.backend, cell, spec.flops(cell.sizes_dict), _array_bytes(spec, cell),
                          {"numpy": imports["numpy"], "backend": imports["backend"]}, self.peak,
                          job.threads, self.plan.timer.target_ci)  # fmt: skip
        self.rows[key] = cell_rows(facts, self.done[key])
        if self.run_dir is None:
            return
        if self.writer is None:
            from kbench.store.results import RunWriter

            self.writer = RunWriter(self.run_dir, {"run_id": self.run_dir.name, **meta()})
        self.writer.put_cell(key, *self.rows[key])

    def update_meta(self, **fields: Any) -> None:
        """Rewrite run.json's ``fields``, once the run folder exists."""
        if self.writer is not None:
            self.writer.update_meta(**fields)

    def keep_logs(self, log_dir: Path) -> None:
        """Copy the workers' logs into the run folder (if there is one)."""
        if self.writer is not None:
            for log in log_dir.glob("worker-*.log"):
                shutil.copy(log, self.writer.run_dir / log.name)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Results and samples, ordered by backend, then ``--threads`` setting, then cell."""
        from kbench.store.results import SAMPLE_COLUMNS, frame

        settings = self.plan.thread_settings
        order = {k: (self.plan.backends.index(k[0]), settings.index(k[2] if len(k) > 2 else None), k[1])
                 for k in self.rows}  # fmt: skip
        ordered = [self.rows[k] for k in sorted(self.rows, key=order.__getitem__)]
        rows = [r for rs, _ in ordered for r in rs]
        samples = [s for _, ss in ordered for s in ss]
        return frame(rows), pd.DataFrame(samples, columns=SAMPLE_COLUMNS)


def _load_spec(model_file: str):
    from kbench.model.loader import load_model_file

    return load_model_file(model_file)


def _array_bytes(spec, cell: Cell) -> int:
    """Bytes of the cell's inputs, weights and output in its dtype: what any path must read or write at least once."""
    import numpy as np

    sizes = cell.sizes_dict
    elements = sum(math.prod(t.resolve(sizes)) for t in (*spec.inputs, *spec.weights)) + math.prod(spec.output_shape(sizes))
    return elements * np.dtype(cell.dtype).itemsize
