"""`defendr attack` (not built yet: says so in one line and exits 1)."""

from __future__ import annotations

import typer

from defendr_cli.core.errors import StageNotReadyError


def register(app: typer.Typer) -> None:
    @app.command("attack", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def attack() -> None:
        """Not built yet."""
        raise StageNotReadyError("`defendr attack` is not built yet in this version")
