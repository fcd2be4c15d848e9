"""`defendr info [CACHE]`: a clean cache's splits, counts, classes and attributes; --verify re-checks it.
`defendr info --model NAME`: a checkpoint's kind, data, provenance and (imported models) class map."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from defendr_cli.cli.common import JsonOpt, print_json, state
from defendr_cli.cli.progress import RichReporter
from defendr_cli.core.io.reader import CacheInfo
from defendr_cli.core.stages.info import ModelInfo, run_info, run_model_info

SHOW_CLASSES = 12


def _size_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _info_table(info: CacheInfo) -> Table:
    table = Table(title=f"clean cache {info.name}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("path", str(info.path))
    table.add_row("size", _size_text(info.size_bytes))
    table.add_row("format", f"defendr-clean-cache v{info.format_version}")
    table.add_row("source", info.source)
    table.add_row("image size", f"{info.image_size}x{info.image_size} ({info.resize})")
    for split, count in info.split_counts.items():
        table.add_row(split, f"{count} images")
    table.add_row("seed", str(info.seed))
    table.add_row("fingerprint", info.fingerprint)
    table.add_row("classes", str(info.num_classes))
    return table


def _class_table(info: CacheInfo) -> Table:
    table = Table(title="classes", title_justify="left")
    table.add_column("index", justify="right")
    table.add_column("id")
    table.add_column("name")
    shown = list(range(info.num_classes))
    if info.num_classes > SHOW_CLASSES:
        shown = shown[: SHOW_CLASSES - 2] + shown[-2:]
    for position, index in enumerate(shown):
        if position and index != shown[position - 1] + 1:
            table.add_row("...", "...", f"({info.num_classes - len(shown)} more; --json lists all)")
        table.add_row(str(index), info.class_ids[index], info.class_names[index])
    return table


def _model_tables(described: ModelInfo) -> list[Table]:
    values = described.to_dict()
    table = Table(title=f"model {values['name']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key in ("path", "kind", "method", "summary", "data", "classes", "image_size", "source", "arch",
                "outputs", "cam_layer"):
        if values.get(key) not in (None, ""):
            table.add_row(key.replace("_", " "), str(values[key]))
    for parent in values["parents"]:
        table.add_row(parent.get("role", "parent"), f"{parent.get('name')} ({parent.get('fingerprint')})")
    tables = [table]
    pairs = described.class_map_pairs()
    if pairs:
        how = (values.get("class_map") or {}).get("how", "")
        mapping = Table(title=f"class map ({how}): cache class -> model output", title_justify="left")
        for column in ("index", "id", "name", "output"):
            mapping.add_column(column)
        for index, (class_id, name, output) in enumerate(pairs[:SHOW_CLASSES]):
            mapping.add_row(str(index), class_id, name, str(output))
        if len(pairs) > SHOW_CLASSES:
            mapping.add_row("...", "...", f"({len(pairs) - SHOW_CLASSES} more; --json lists all)", "")
        tables.append(mapping)
    return tables


def info_command(
    ctx: typer.Context,
    cache: Annotated[str | None, typer.Argument(
        help="Clean cache name (in data/) or path; default the workspace's only cache.")] = None,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Re-read every image and label of the cache and of its adversarial sets and check "
                         "their content fingerprints.")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="Describe this model checkpoint instead (kind, data, parents, class map).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a clean cache's splits, counts, classes and attributes (or a model's, with --model)."""
    app_state = state(ctx)
    if model is not None:
        described = run_model_info(app_state.workspace, model)
        if as_json:
            print_json(described.to_dict())
        else:
            for table in _model_tables(described):
                app_state.console.print(table)
        return
    with RichReporter(app_state.err_console, enabled=verify and not as_json) as reporter:
        result = run_info(app_state.workspace, cache, verify=verify, reporter=reporter)
    report = result.verify
    if as_json:
        print_json(result.to_dict())
    else:
        console = app_state.console
        console.print(_info_table(result.info))
        console.print(_class_table(result.info))
        if report is not None and report.ok:
            console.print(f"verified: {report.rows} images and labels match fingerprint {report.recorded} "
                          f"({report.seconds:.1f} s)", markup=False, highlight=False)
        for r in result.adv_verify:
            console.print(f"adversarial set {r.path.stem}: {r.rows} rows "
                          f"{'match' if r.ok else 'DO NOT match'} fingerprint {r.recorded or '(none recorded)'}",
                          markup=False, highlight=False)
    result.raise_if_corrupt()


def register(app: typer.Typer) -> None:
    app.command("info")(info_command)
