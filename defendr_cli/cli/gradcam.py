"""`defendr gradcam --model M --attack ADVSET`: paired clean/adversarial Grad-CAM grids in reports/NAME/."""

from __future__ import annotations

from typing import Annotated

import typer

from defendr_cli.cli.common import DataOpt, DeviceOpt, JsonOpt, SeedOpt, make_runtime, print_json, state
from defendr_cli.cli.progress import RichReporter
from defendr_cli.core.explain.paired import SELECTIONS
from defendr_cli.core.stages.gradcam import GradcamConfig, run_gradcam


def gradcam_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="Model name or path.")],
    attack: Annotated[str, typer.Option("--attack", help="Adversarial test set: name or unique prefix.")],
    count: Annotated[int, typer.Option("--count", help="Number of test images.")] = 16,
    select: Annotated[str, typer.Option(
        "--select", help=f"{' | '.join(SELECTIONS)}: correct-then-fooled images first, or any.")] = "fooled",
    name: Annotated[str | None, typer.Option("--name", help="Report folder name under reports/.")] = None,
    data: DataOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per pass.")] = 16,
    as_json: JsonOpt = False,
) -> None:
    """Grad-CAM heat maps on clean test images beside their adversarial copies (PNG grids)."""
    app_state = state(ctx)
    runtime = make_runtime(device, "fp32")
    config = GradcamConfig(model=model, attack=attack, count=count, select=select, seed=seed,
                           batch_size=batch_size, data=data, name=name)
    with RichReporter(app_state.err_console) as reporter:
        result = run_gradcam(app_state.workspace, config, runtime, reporter=reporter)
    if as_json:
        print_json(result.to_dict())
        return
    app_state.console.print(f"{result.count} images of {result.adv_set} "
                            f"({result.fooled_available} correct-then-fooled available)")
    for target in result.targets:
        app_state.console.print(f"  {target.label}: {result.folder / target.figure}")
    app_state.console.print(f"page: {result.folder / 'report.html'}  (one file, opens offline)")


def register(app: typer.Typer) -> None:
    app.command("gradcam")(gradcam_command)
