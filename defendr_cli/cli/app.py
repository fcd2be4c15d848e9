"""The `defendr` Typer application: global options and subcommand registration.

Each subcommand lives in its own module exposing `register(app)`; this file only wires them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from defendr_cli import __version__
from defendr_cli.cli import attack, ensemble, evaluate, gradcam, import_model, info, ls, prepare, reproduce, train
from defendr_cli.cli._errors import DefendrGroup
from defendr_cli.cli.common import AppState
from defendr_cli.core.memory import tune_allocator
from defendr_cli.core.workspace import WORKDIR_ENV, Workspace

app = typer.Typer(
    cls=DefendrGroup,
    name="defendr",
    help="Train, attack, defend, evaluate and explain image classifiers under adversarial examples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"defendr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", "-w", envvar=WORKDIR_ENV, help="Workspace folder (default ./defendr-work)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Stages exchange HDF5 caches and checkpoints inside one workspace folder."""
    ctx.obj = AppState(workspace=Workspace.from_option(workdir), debug=debug)


for module in (prepare, import_model, attack, train, ensemble, evaluate, gradcam, reproduce, info, ls):
    module.register(app)


def main() -> None:
    """Console-script entry point (also `python -m defendr_cli`, which torchrun runs)."""
    tune_allocator()
    app()
