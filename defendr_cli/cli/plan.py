"""Printing a run plan (core/pipeline/plan.py): one row per stage, totals, and what reduces the disk."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from defendr_cli.cli.common import print_json
from defendr_cli.core.pipeline.plan import CPU_UTILISATION, GPU_BF16_PEAK_TFLOPS, RunPlan

PlanOpt = Annotated[bool, typer.Option("--plan", help="Print the work, estimated time (here and on --gpu), disk and "
                                       "memory of what would run, and run nothing.")]
GpuOpt = Annotated[str, typer.Option("--gpu", help=f"GPU the plan also estimates for: {' | '.join(GPU_BF16_PEAK_TFLOPS)}.")]


def duration(seconds: float) -> str:
    """'42 s', '12 min', '3.4 h', '5.1 days'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def print_plan(console: Console, plan: RunPlan, *, as_json: bool = False) -> None:
    if as_json:
        print_json(plan.to_dict())
        return
    gpu = f"{plan.gpu} @{plan.gpu_utilisation:.0%}"
    table = Table(title="Plan (nothing has run)")
    for column in ("stage", "status", "images x passes", "TFLOP", "here", gpu, "disk GB", "peak mem GB"):
        table.add_column(column, justify="left" if column in ("stage", "status") else "right")
    for stage in plan.stages:
        item, runs = stage.work, stage.status == "run"
        table.add_row(stage.id, "runs" if runs else "[dim]current[/dim]",
                      f"{item.images} x {item.passes:.1f}" if item.images else "-",
                      f"{item.flops / 1e12:.1f}" if item.flops else "-",
                      duration(stage.seconds_here) if runs else "-", duration(stage.seconds_gpu) if runs else "-",
                      f"{item.disk_bytes / 1e9:.2f}" if runs else "-", f"{item.memory_bytes / 1e9:.1f}")
    console.print(table)
    for stage in plan.to_run:
        for note in stage.work.notes:
            console.print(f"  {stage.id}: {note}")
    cpu = plan.cpu_gflops
    console.print(f"total: {duration(plan.total_seconds('here'))} here (conv {cpu['fp32']:.0f} GFLOP/s fp32, "
                  f"{cpu['bf16']:.0f} bf16, at {CPU_UTILISATION:.0%}), {duration(plan.total_seconds('gpu'))} on one "
                  f"{plan.gpu} (published dense bf16 peak at {plan.gpu_utilisation:.0%}); writes "
                  f"{plan.disk_bytes / 1e9:.1f} GB of {plan.free_bytes / 1e9:.0f} GB free; peak memory "
                  f"{plan.peak_memory_bytes / 1e9:.1f} GB")
    for note in plan.notes:
        console.print(note)
