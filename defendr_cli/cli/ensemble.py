"""`defendr ensemble NAME --members a,b,c`: write a manifest checkpoint models/NAME.pt.

The manifest references its members by name and fingerprint (no weights of its own); loading it
reloads the members and refuses a changed or missing one. See core.models.ensemble.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from defendr_cli.cli.common import ForceOpt, JsonOpt, print_json, state
from defendr_cli.core.models.ensemble import COMBINE_RULES, parse_weights
from defendr_cli.core.stages.ensemble import EnsembleConfig, run_ensemble


def ensemble_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the ensemble (models/NAME.pt).")],
    members: Annotated[str, typer.Option("--members", "-m", help="Comma-separated member model names or paths.")],
    weights: Annotated[str | None, typer.Option(
        "--weights", help="Comma-separated weights, one per member (default equal).")] = None,
    combine: Annotated[str, typer.Option(
        "--combine", help=f"{' | '.join(COMBINE_RULES)}: average softmax probabilities (paper §4.4) or logits.")
    ] = "probs",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Combine trained models into one: argmax of the sum of row-normalized softmax scores."""
    app_state = state(ctx)
    config = EnsembleConfig(name=name, members=[m.strip() for m in members.split(",") if m.strip()],
                            weights=parse_weights(weights), combine=combine, force=force)
    result = run_ensemble(app_state.workspace, config)
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"ensemble '{name}' ({result.combine})")
    table.add_column("member")
    table.add_column("fingerprint")
    table.add_column("weight", justify="right")
    for member in result.members:
        table.add_row(member.name, member.fingerprint, f"{member.weight:.3f}")
    app_state.console.print(table)
    app_state.console.print(f"wrote {result.path}")


def register(app: typer.Typer) -> None:
    app.command("ensemble")(ensemble_command)
