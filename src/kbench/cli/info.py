"""``kbench peak``, ``kbench list`` and ``kbench env``: what kbench knows about this machine, its models and call
paths, and the environment a run records; nothing is measured against a model and no run folder is written."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kbench import api
from kbench.cli.options import BackendOpt, DirsOpt
from kbench.present import terminal


def register(app: typer.Typer) -> None:
    """Add ``peak``, ``list`` and ``env`` to the ``kbench`` app."""
    app.command()(peak)
    app.command("list")(list_)
    app.command()(env)


def peak(refresh: bool = typer.Option(False, "--refresh", help="Measure again even when this machine is cached.")) -> int:
    """Measure (or read the cached) GEMM GFLOP/s of every engine (NumPy's BLAS, each installed backend's matmul on
    the CPU; the best is the peak) and memory copy bandwidth; show what pins NumPy's BLAS, if anything."""
    from kbench.machine import check
    from kbench.machine import peak as peak_mod

    p, cached = peak_mod.load_or_measure(refresh)
    for line in peak_mod.describe_lines(p):
        typer.echo(line)
    typer.echo(f"{'cached' if cached else 'measured'} {p.measured} for machine {p.fingerprint} ({peak_mod.cache_dir()})")
    for line in check.detail_lines(check.blas_check(p)):
        typer.echo(line)
    return 0


def list_(models_dir: Optional[List[Path]] = DirsOpt) -> int:
    """The models (with sizes, defaults and options) and the call paths (with what each timed region contains)."""
    for line in terminal.list_lines(api.list_models(models_dir or ())):
        typer.echo(line)
    return 0


def env(
    check: bool = typer.Option(False, "--check", help="Instead: check the machine for what makes figures wrong or noisy (BLAS pins, load, governor, cores, threads); exit 0 even with warnings."),
    backend: Optional[List[str]] = BackendOpt,
) -> int:
    """The environment fingerprint recorded with every run (starts a worker per backend to read its side)."""
    if check:
        from kbench.machine import check as machine_check, peak

        for line in machine_check.detail_lines(machine_check.check(peak.load_cached())):
            typer.echo(line)
        return 0
    for line in terminal.env_lines(api.environment(backend)):
        typer.echo(line)
    return 0
