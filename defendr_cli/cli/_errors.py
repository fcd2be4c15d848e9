"""Typed library errors -> one line on stderr and exit code 1, in one place.

Typer keeps exit code 2 for usage errors. `--debug` re-raises so the traceback is shown.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from defendr_cli.cli.option_ranges import install_range_checks
from defendr_cli.core.errors import DefendrError

_ERROR_PREFIX = {
    "MissingArtefactError": "missing",
    "ArtefactExistsError": "exists",
    "CorruptArtefactError": "corrupt",
    "MismatchError": "mismatch",
    "InputError": "invalid input",
    "SourceError": "source",
    "TrainingDivergedError": "diverged",
    "ArtefactBusyError": "busy",
    "WriteError": "write",
}


def format_error(exc: DefendrError) -> str:
    """'error (missing): no model 'alp' at ... (make it with: defendr train alp)'."""
    kind = _ERROR_PREFIX.get(type(exc).__name__, "error")
    return f"error ({kind}): {exc}"


class DefendrGroup(TyperGroup):
    """The root command group: turns DefendrError (and OSError from the file system) into exit 1.

    Before running a subcommand it installs the range check of every numeric option
    (cli/option_ranges.py), so an out-of-range value is a one-line InputError, not a usage panel.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            install_range_checks(self)
            return super().invoke(ctx)
        except (DefendrError, OSError) as exc:
            state = ctx.obj
            if state is not None and getattr(state, "debug", False):
                raise
            message = format_error(exc) if isinstance(exc, DefendrError) else f"error (file system): {exc}"
            typer.echo(message, err=True)
            raise typer.Exit(1) from None
