"""``kbench export PATH.keras --out model_numpy.py``: the user's model as plain NumPy, checked, then timed.

Registered on the main app by :func:`register`. The export itself is :func:`kbench.model.numpy_export.export` (parity
against Keras first; a module that fails is refused with exit 1 and nothing written). Then a short sweep
(``kbench run --model PATH.keras --batch 1,8,64,512 --quick --processes 1``, not saved) times the twin, which is the
exported module's code, against every Keras path, and the command prints the time at batch 1 next to the fastest
Keras path and the batch where Keras catches up (:func:`kbench.analysis.sweep.crossovers`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from kbench.core.fmt import fmt_ratio, fmt_time, visible


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    model: str = typer.Argument(..., help="A saved Keras model (PATH.keras) or a module:function factory."),
    out: Path = typer.Option(..., "--out", help="The module to write, e.g. model_numpy.py (its weights go beside it as .npz)."),
    backend: str = typer.Option("tensorflow", "--backend", "-b", help="The Keras backend the module is checked and timed against."),
    batch: str = typer.Option("1,8,64,512", "--batch", help="Batch sizes of the timing sweep."),
    cell_budget: Optional[float] = typer.Option(None, "--cell-budget", help="Seconds of sampling per batch size [default: 1]."),
    no_timing: bool = typer.Option(False, "--no-timing", help="Write the module after the parity check; skip the sweep."),
) -> int:
    """Write the model as a standalone NumPy module (predict(x)), after checking it against Keras; then time it."""
    from kbench import api
    from kbench.model import numpy_export

    numpy_export.check_out_path(out)
    plan = None
    if not no_timing:  # every input check before anything is written
        plan = api.plan([model], sizes={"batch": batch}, backends=[backend], quick=True, processes=1,
                        cell_budget=cell_budget, command=f"kbench run --model {model} --batch {batch} --quick")  # fmt: skip
    done = numpy_export.export(model, out, backend)
    c = done.check
    typer.echo(f"wrote {visible(str(done.module))} and {visible(str(done.weights))}: parity ✓ against Keras at batch "
               f"{', '.join(map(str, c.batches))} (max scaled error {c.max_rel_err:.2g}, tolerance {c.tol:.2g})")  # fmt: skip
    if plan is None:
        return 0
    result = api.run(plan, None)
    for line in timing_lines(result.results):
        typer.echo(line)
    return 0


def timing_lines(results) -> list[str]:
    """Batch 1 (the smallest): NumPy next to the fastest Keras path; then where Keras catches up, if it does."""
    from kbench.analysis.sweep import crossovers

    ok = results[results["parity_ok"].astype(bool) & results["median_s"].notna()]
    if ok.empty:
        return ["timing: no path passed parity in the sweep, so nothing is compared"]
    smallest = ok[ok["size_batch"] == ok["size_batch"].min()]
    numpy_row = smallest[smallest["path"] == "numpy"]
    keras = smallest[smallest["path"] != "numpy"]
    lines = []
    if not numpy_row.empty and not keras.empty:
        best = keras.loc[keras["median_s"].idxmin()]
        n = numpy_row.iloc[0]
        lines.append(f"batch {int(n['size_batch'])}: numpy {fmt_time(n['median_s'])}, fastest Keras path "
                     f"{visible(best['path'])} {fmt_time(best['median_s'])} ({fmt_ratio(best['ratio_to_numpy'])} "
                     "NumPy's time)")  # fmt: skip
    cross = crossovers(ok)
    wins = cross[(cross["direction"] == "keras_above")] if not cross.empty else cross
    largest = int(ok["size_batch"].max())
    if not cross.empty and not wins.empty:
        first = wins.loc[wins["crossover"].idxmin()]
        lines.append(f"Keras catches up at batch ≈ {math.ceil(first['crossover'])} ({visible(first['path'])}); "
                     "below it the NumPy module is faster")  # fmt: skip
    else:
        big = ok[(ok["size_batch"] == largest) & (ok["path"] != "numpy")]
        closest = big.loc[big["ratio_to_numpy"].idxmin()] if not big.empty else None
        tail = (f" (closest: {visible(closest['path'])} at {fmt_ratio(closest['ratio_to_numpy'])} NumPy's time)"
                if closest is not None else "")  # fmt: skip
        lines.append(f"Keras did not catch up up to batch {largest}{tail}")
    lines.append("(one quick sweep, one process, not saved; time it properly with `kbench run --model ...`)")
    return lines
