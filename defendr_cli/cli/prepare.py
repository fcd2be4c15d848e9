"""`defendr prepare` (not built yet: says so in one line and exits 1)."""

from __future__ import annotations

import typer

from defendr_cli.core.errors import StageNotReadyError


def register(app: typer.Typer) -> None:
    @app.command("prepare", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def prepare_command() -> None:
        """Not built yet."""
        raise StageNotReadyError("`defendr prepare` is not built yet in this version")
