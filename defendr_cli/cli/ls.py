"""`defendr ls`: the workspace's clean caches, adversarial sets, models and reports, one line each."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from defendr_cli.cli.common import JsonOpt, print_json, state
from defendr_cli.cli.info import _size_text
from defendr_cli.core.stages.info import run_ls

_TITLES = {"data": "clean caches (data/)", "adv": "adversarial sets (adv/)", "model": "models (models/)",
           "report": "reports (reports/)"}


def ls_command(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Argument(help="Only this kind: data, adv, models or reports.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the artefacts in the workspace with a one-line summary each."""
    app_state = state(ctx)
    result = run_ls(app_state.workspace, kind)
    if as_json:
        print_json(result.to_dict())
        return
    console = app_state.console
    if not result.entries:
        console.print(f"no artefacts in {result.root} (start with: defendr prepare)", markup=False,
                      highlight=False)
        return
    for group in result.kinds:
        rows = [e for e in result.entries if e.kind == group]
        if not rows:
            continue
        table = Table(title=_TITLES[group], title_justify="left")
        table.add_column("name", overflow="fold", max_width=44)
        table.add_column("size", justify="right", no_wrap=True)
        table.add_column("summary", ratio=1, min_width=24)
        for entry in rows:
            style = None if entry.readable else "red"
            table.add_row(entry.name, _size_text(entry.size_bytes), entry.summary, style=style)
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("ls")(ls_command)
