"""`defendr evaluate`: the paper's transfer tables, adaptive white-box sweeps, sanity checks, a report.

Thin layer: parses options, calls core.stages.evaluate.run_evaluate and prints the tables with rich.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from defendr_cli.cli.common import (DataOpt, DeviceOpt, JsonOpt, PrecisionOpt, SeedOpt, print_report_paths, state,
                                    warn_eps)
from defendr_cli.cli.distributed import run_distributed_stage
from defendr_cli.cli.option_ranges import RANGES
from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.selection import split_names
from defendr_cli.core.evaluation.report.table import Table
from defendr_cli.core.stages.evaluate import EvaluateConfig, EvaluateResult, run_evaluate


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in split_names(text)]
    except ValueError as exc:
        raise InputError(f"{option} expects whole numbers separated by commas, got '{text}'") from exc
    high = (RANGES[option].cap or RANGES[option].high) if option in RANGES else None
    if not values or min(values) < 1 or (high is not None and max(values) > high):
        limit = f" up to {high:,}" if high is not None else ""
        raise InputError(f"{option} expects positive whole numbers{limit}, got '{text}'")
    return values


def rich_table(table: Table) -> RichTable:
    out = RichTable(title=table.title, title_justify="left")
    for i, column in enumerate(table.columns):
        out.add_column(column, justify="left" if i == 0 or column in ("Check", "Detail", "Class") else "right")
    for row in table.formatted_rows():
        out.add_row(*[("[green]PASS[/green]" if c == "PASS" else "[red]FAIL[/red]" if c == "FAIL"
                       else "[yellow]WARN[/yellow]" if c == "WARN" else c) for c in row])
    return out


def evaluate_command(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", help="One model (name or path).")] = None,
    models: Annotated[str | None, typer.Option(
        "--models", help="Comma-separated models; 'M+random-resize-pad' wraps M at evaluation time.")] = None,
    ensemble: Annotated[list[str] | None, typer.Option(
        "--ensemble", help="Comma-separated members of an ensemble row (paper Table 3); repeatable.")] = None,
    adv: Annotated[str, typer.Option("--adv", help="Adversarial test sets: names, prefixes, 'all' or 'none'.")] = "all",
    adaptive: Annotated[bool, typer.Option(
        "--adaptive", help="Also run the white-box attack suite through the whole defense, with masking checks.")] = False,
    suite: Annotated[str, typer.Option(
        "--suite", help="auto (rand for randomized models, else standard) | standard | fast | rand | quick | custom. "
        "fast is a screening evaluation: its robust accuracy was within 0.5 points of standard on the models of "
        "benchmarks/bench_fast.py at a fraction of the passes; for a claim in a paper, run standard.")] = "auto",
    attacks: Annotated[str | None, typer.Option(
        "--attacks", help="Attacks of --suite custom, e.g. apgd-ce,square; 'pgd' adds the PGD steps x restarts sweep.")] = None,
    square_queries: Annotated[int | None, typer.Option("--square-queries", help="Square Attack queries per image.")] = None,
    eot: Annotated[int | None, typer.Option(
        "--eot", help="EOT samples per gradient for randomized models (default 20; 30 for the PGD sweep).")] = None,
    draws: Annotated[int, typer.Option("--draws", help="Random draws of the final images (randomized models).")] = 10,
    steps: Annotated[str, typer.Option("--steps", help="PGD step counts of the PGD sweep (--attacks pgd).")] = "10,100",
    restarts: Annotated[str, typer.Option("--restarts", help="PGD restart counts of the PGD sweep.")] = "1,5",
    subset: Annotated[int, typer.Option("--subset", help="Seeded test images for the adaptive attacks.")] = 200,
    eps: Annotated[str | None, typer.Option(
        "--eps", help="Extra adaptive eps list in pixel units, e.g. 4/255,8/255 (the cached sets' eps are always used).")] = None,
    defense: Annotated[str | None, typer.Option(
        "--defense", help="Wrap every model at evaluation time: random-resize-pad.")] = None,
    defense_variant: Annotated[str, typer.Option("--defense-variant", help="paper | competition")] = "paper",
    name: Annotated[str | None, typer.Option("--name", help="Report folder name under reports/.")] = None,
    data: DataOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 128,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the adaptive results an interrupted run "
                                         "saved and continue its suite from the per-image record (predictions "
                                         "are always reused).")] = False,
    chunk_size: Annotated[int | None, typer.Option(
        "--chunk-size", help="Images per chunk of the adaptive suite (default: --batch-size): the unit of "
                             "--resume and of sharding over torchrun ranks; the numbers depend on it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Transfer tables (paper Tables 1-6), optional adaptive white-box sweeps, report in reports/NAME/."""
    app_state = state(ctx)
    refs = ([model] if model else []) + split_names(models)
    ensembles = [split_names(e) for e in ensemble or []]
    if not refs and not ensembles:
        raise InputError("nothing to evaluate: give --model M, --models a,b,c or --ensemble a,b,c")
    if batch_size < 1 or (chunk_size is not None and chunk_size < 1):
        raise InputError("--batch-size and --chunk-size must be at least 1")
    config = EvaluateConfig(
        models=refs, ensembles=ensembles, data=data, adv=adv, defense=defense, defense_variant=defense_variant,
        name=name, seed=seed, batch_size=batch_size, adaptive=adaptive,
        extra_eps=parse_eps_list(eps) if eps else [], suite=suite, attacks=split_names(attacks),
        square_queries=square_queries, draws=draws, eot=eot, steps=parse_int_list(steps, "--steps"),
        restarts=parse_int_list(restarts, "--restarts"), subset=subset, resume=resume, chunk_size=chunk_size)
    warn_eps(config.extra_eps, command="evaluate")
    dist, result = run_distributed_stage(
        device, precision, app_state.err_console,
        call=lambda runtime, reporter, dist: run_evaluate(app_state.workspace, config, runtime, reporter=reporter,
                                                          dist=dist))
    if dist.is_main:
        _print(app_state, result, as_json)


def _print(app_state, result: EvaluateResult, as_json: bool) -> None:
    files = result.files
    if as_json:
        typer.echo(files.results.read_text(encoding="utf-8"))
        return
    for table in result.tables:
        app_state.console.print(rich_table(table))
    transfer = result.transfer
    app_state.console.print(f"predictions: {transfer.cache_misses} computed, {transfer.cache_hits} from cache")
    print_report_paths(app_state.console, files.markdown,
                       f"results.json, {len(files.csvs)} CSV tables, {len(files.figures)} figures", result.html)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
