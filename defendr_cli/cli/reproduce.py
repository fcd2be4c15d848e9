"""`defendr reproduce`: the whole pipeline in one command (quick profile on built-in data by default)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from defendr_cli.cli.common import JsonOpt, print_json, print_report_paths, state
from defendr_cli.cli.progress import RichReporter
from defendr_cli.cli.plan import GpuOpt, PlanOpt, print_plan
from defendr_cli.core.calibration import cached_calibration, calibration_line
from defendr_cli.core.errors import InputError
from defendr_cli.core.pipeline.paper_report import format_check_values
from defendr_cli.core.pipeline.plan import check_disk, plan_reproduce
from defendr_cli.core.pipeline.profile import resolve_settings
from defendr_cli.core.pipeline.reproduce import reproduce
from defendr_cli.core.runtime import Runtime


def reproduce_command(
    ctx: typer.Context,
    profile: Annotated[str, typer.Option("--profile", help="quick (synthetic, CPU, minutes) | paper (ImageNet).")] = "quick",
    source: Annotated[str | None, typer.Option("--source", help="ImageNet-layout folder (train/<wnid>/*.JPEG) or 'synthetic'.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a profile setting: key.sub=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue interrupted training runs and attack sets.")] = False,
    device: Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda[:N] (default: the profile's).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32 | bf16 | fp16 (default: the profile's).")] = None,
    plan: PlanOpt = False,
    gpu: GpuOpt = "H100",
    as_json: JsonOpt = False,
) -> None:
    """Run every stage (prepare, train, attack, defenses, ensembles, evaluate, gradcam) and write one report.

    Stages whose artefacts are current (same parameters and inputs) are skipped, so a second run is
    instant and a changed setting reruns only what depends on it.
    """
    app_state = state(ctx)
    settings = resolve_settings(profile, overrides or [], source=source)
    if settings["data"]["source"] in (None, ""):
        raise InputError(f"the '{profile}' profile needs --source PATH (an ImageNet-layout train folder)")
    runtime = Runtime.create(device or settings.get("device", "auto"), precision or settings.get("precision", "fp32"),
                             settings.get("memory_format", "auto"))
    settings["device"], settings["precision"] = str(runtime.device), runtime.precision
    console = app_state.err_console
    if plan:
        run_plan = plan_reproduce(app_state.workspace, settings, runtime, cached_calibration(runtime.device),
                                  resume=resume, gpu=gpu)
        print_plan(app_state.console, run_plan, as_json=as_json)
        check_disk(run_plan)
        return
    check_disk(plan_reproduce(app_state.workspace, settings, runtime, None, resume=resume, gpu=gpu))

    def on_stage(record) -> None:
        mark = "[green]ran[/green]" if record.status == "ran" else "[dim]current, skipped[/dim]"
        timing = f" in {record.seconds:.1f}s ({record.cpu_seconds:.1f}s CPU)" if record.status == "ran" else ""
        console.print(f"stage {record.id}: {mark}{timing}")

    with RichReporter(console, enabled=not as_json) as reporter:
        result = reproduce(app_state.workspace, settings, runtime, resume=resume, reporter=reporter,
                           on_stage=on_stage)
    if as_json:
        print_json({"report": str(result.report_dir), "seconds": result.seconds,
                    "stages": [vars(r) for r in result.stages], "phenomena": result.phenomena,
                    "calibration": result.calibration})
        return
    table = Table(title="Phenomena the run must show")
    for column in ("check", "value", "threshold", "result"):
        table.add_column(column)
    for item in result.phenomena:
        value, threshold = format_check_values(item)
        table.add_row(item["name"], value, threshold, "[green]PASS[/green]" if item["passed"] else "[red]FAIL[/red]")
    app_state.console.print(table)
    if result.calibration:
        app_state.console.print(f"machine: {calibration_line(result.calibration)}")
    print_report_paths(app_state.console, result.report_dir / "report.md",
                       f"{result.seconds:.0f}s, {sum(r.cpu_seconds for r in result.stages):.0f}s CPU",
                       result.report_dir / "report.html")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_command)
