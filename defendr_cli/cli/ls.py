"""`defendr ls`: the workspace's clean caches, adversarial sets, models and reports, one line each."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from defendr_cli.cli.common import JsonOpt, print_json, state
from defendr_cli.cli.info import _size_text
from defendr_cli.core.io.catalog import KIND_ORDER, list_artefacts
from defendr_cli.core.errors import InputError

_TITLES = {"data": "clean caches (data/)", "adv": "adversarial sets (adv/)", "model": "models (models/)",
           "report": "reports (reports/)"}
_KIND_ALIASES = {"data": "data", "adv": "adv", "model": "model", "models": "model", "report": "report",
                 "reports": "report"}


def register(app: typer.Typer) -> None:
    @app.command("ls")
    def ls_command(
        ctx: typer.Context,
        kind: Annotated[str | None, typer.Argument(
            help="Only this kind: data, adv, models or reports.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List the artefacts in the workspace with a one-line summary each."""
        app_state = state(ctx)
        workspace = app_state.workspace
        if kind is not None and kind not in _KIND_ALIASES:
            raise InputError(f"unknown kind '{kind}': use data, adv, models or reports")
        kinds = (_KIND_ALIASES[kind],) if kind else KIND_ORDER
        entries = list_artefacts(workspace, kinds)
        if as_json:
            print_json({"workspace": str(workspace.root), "artefacts": [e.to_dict() for e in entries]})
            return
        console = app_state.console
        if not entries:
            console.print(f"no artefacts in {workspace.root} (start with: defendr prepare)", markup=False,
                          highlight=False)
            return
        for group in kinds:
            rows = [e for e in entries if e.kind == group]
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
