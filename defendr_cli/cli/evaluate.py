"""`defendr evaluate`: the paper's transfer tables, adaptive white-box sweeps, sanity checks, a report.

Thin layer: parses options, calls core.evaluation (selection of sets and models, run_transfer,
run_adaptive, write_report) and prints the tables with rich.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from defendr_cli.cli.common import DataOpt, DeviceOpt, JsonOpt, PrecisionOpt, SeedOpt, state
from defendr_cli.cli.distributed import stage_reporter, stage_session
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive import AdaptiveEps, run_adaptive, sweep_eps
from defendr_cli.core.evaluation.predictions import PREDICTIONS_DIRNAME, safe_key
from defendr_cli.core.evaluation.report import all_tables, write_report
from defendr_cli.core.evaluation.selection import load_eval_models, select_adv_sets, split_names
from defendr_cli.core.evaluation.tables import Table
from defendr_cli.core.evaluation.transfer import run_transfer


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in split_names(text)]
    except ValueError as exc:
        raise InputError(f"{option} expects whole numbers separated by commas, got '{text}'") from exc
    if not values or min(values) < 1:
        raise InputError(f"{option} expects positive whole numbers, got '{text}'")
    return values


def rich_table(table: Table) -> RichTable:
    out = RichTable(title=table.title, title_justify="left")
    for i, column in enumerate(table.columns):
        out.add_column(column, justify="left" if i == 0 or column in ("Check", "Detail", "Class") else "right")
    for row in table.formatted_rows():
        out.add_row(*[("[green]PASS[/green]" if c == "PASS" else "[red]FAIL[/red]" if c == "FAIL"
                       else "[yellow]WARN[/yellow]" if c == "WARN" else c) for c in row])
    return out


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_command(
        ctx: typer.Context,
        model: Annotated[str | None, typer.Option("--model", help="One model (name or path).")] = None,
        models: Annotated[str | None, typer.Option(
            "--models", help="Comma-separated models; 'M+random-resize-pad' wraps M at evaluation time.")] = None,
        ensemble: Annotated[list[str] | None, typer.Option(
            "--ensemble", help="Comma-separated members of an ensemble row (paper Table 3); repeatable.")] = None,
        adv: Annotated[str, typer.Option("--adv", help="Adversarial test sets: names, prefixes, 'all' or 'none'.")] = "all",
        adaptive: Annotated[bool, typer.Option("--adaptive", help="Also run white-box PGD through the whole defense.")] = False,
        eot: Annotated[int, typer.Option("--eot", help="EOT samples per gradient for randomized models.")] = 30,
        steps: Annotated[str, typer.Option("--steps", help="PGD step counts of the adaptive sweep.")] = "10,100",
        restarts: Annotated[str, typer.Option("--restarts", help="PGD restart counts of the adaptive sweep.")] = "1,5",
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
        as_json: JsonOpt = False,
    ) -> None:
        """Transfer tables (paper Tables 1-6), optional adaptive white-box sweeps, report in reports/NAME/."""
        app_state = state(ctx)
        refs = ([model] if model else []) + split_names(models)
        ensembles = [split_names(e) for e in ensemble or []]
        if not refs and not ensembles:
            raise InputError("nothing to evaluate: give --model M, --models a,b,c or --ensemble a,b,c")
        if batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        steps_list = parse_int_list(steps, "--steps")
        restarts_list = parse_int_list(restarts, "--restarts")
        with stage_session(device, precision) as (dist, runtime):
            _evaluate(app_state, dist, runtime, data=data, adv=adv, refs=refs, ensembles=ensembles, defense=defense,
                      defense_variant=defense_variant, name=name, seed=seed, precision=precision,
                      batch_size=batch_size, adaptive=adaptive, eps=eps, eot=eot, steps_list=steps_list,
                      restarts_list=restarts_list, subset=subset, as_json=as_json)


def _evaluate(app_state, dist, runtime, *, data, adv, refs, ensembles, defense, defense_variant, name, seed,
              precision, batch_size, adaptive, eps, eot, steps_list, restarts_list, subset, as_json) -> None:
    """The body of `evaluate` inside its (possibly distributed) session; only rank 0 writes and prints."""
    from defendr_cli.core.io.reader import read_cache_info

    ws = app_state.workspace
    data_path = ws.resolve("data", data) if data else ws.default_data()
    cache_info = read_cache_info(data_path)
    spec = None
    if defense:
        from defendr_cli.core.models.defenses import defense_spec

        spec = defense_spec(defense, defense_variant)
    notes: list[str] = []
    adv_paths = select_adv_sets(ws, adv, cache_info.fingerprint, notes)
    eval_models = load_eval_models(ws, refs, ensembles, device=runtime.device, defense=spec,
                              variant=defense_variant, image_size=cache_info.image_size)
    report_name = name or safe_key("eval", *[m.name for m in eval_models])[:80]
    settings = {"models": [m.name for m in eval_models], "data": str(data_path), "adv": adv,
                "seed": seed, "device": str(runtime.device), "precision": precision, "batch_size": batch_size,
                "defense": spec}
    with stage_reporter(dist, app_state.err_console) as reporter:
        for note in notes:
            reporter.note(note)
        transfer = run_transfer(eval_models, data_path, adv_paths, runtime=runtime, seed=seed,
                                batch_size=batch_size, cache_dir=ws.reports_dir / PREDICTIONS_DIRNAME,
                                reporter=reporter, dist=dist)
        adaptive_result = None
        if adaptive:
            from defendr_cli.core.attacks import parse_eps_list

            eps_values = sweep_eps(transfer["adv_sets"], parse_eps_list(eps) if eps else [])
            if not eps_values:
                eps_values = [AdaptiveEps("8/255", 8 / 255)]
                reporter.note("no cached adversarial set and no --eps: the adaptive sweep uses eps 8/255")
            adaptive_result = run_adaptive(eval_models, data_path, runtime=runtime, eps_values=eps_values,
                                           steps=steps_list, restarts=restarts_list, eot=eot, subset=subset,
                                           seed=seed, batch_size=batch_size, transfer_sets=adv_paths,
                                           reporter=reporter, dist=dist)
            settings.update({"eot": eot, "steps": steps_list, "restarts": restarts_list, "subset": subset})
        if not dist.is_main:
            return
        files = write_report(ws.reports_dir / report_name, name=report_name, transfer=transfer,
                             adaptive=adaptive_result, settings=settings)
    if as_json:
        typer.echo(files.results.read_text(encoding="utf-8"))
        return
    for table in all_tables(transfer, adaptive_result):
        app_state.console.print(rich_table(table))
    cache = transfer["cache"]
    app_state.console.print(f"predictions: {cache['misses']} computed, {cache['hits']} from cache")
    app_state.console.print(f"report: {files.markdown}  (results.json, {len(files.csvs)} CSV tables, "
                            f"{len(files.figures)} figures)")
