"""`defendr gradcam --model M --attack ADVSET`: paired clean/adversarial Grad-CAM grids in reports/NAME/."""

from __future__ import annotations

from typing import Annotated

import typer

from defendr_cli.cli.common import DataOpt, DeviceOpt, JsonOpt, SeedOpt, make_runtime, print_json, state
from defendr_cli.cli.progress import RichReporter
from defendr_cli.core.evaluation.predictions import safe_key
from defendr_cli.core.evaluation.selection import resolve_test_sets
from defendr_cli.core.evaluation.subjects import load_eval_model
from defendr_cli.core.explain.paired import SELECTIONS, run_gradcam


def register(app: typer.Typer) -> None:
    @app.command("gradcam")
    def gradcam_command(
        ctx: typer.Context,
        model: Annotated[str, typer.Option("--model", help="Model name or path.")],
        attack: Annotated[str, typer.Option("--attack", help="Adversarial test set: name or unique prefix.")],
        count: Annotated[int, typer.Option("--count", help="Number of test images.")] = 16,
        select: Annotated[str, typer.Option("--select", help=f"{' | '.join(SELECTIONS)}: correct-then-fooled images first, or any.")] = "fooled",
        name: Annotated[str | None, typer.Option("--name", help="Report folder name under reports/.")] = None,
        data: DataOpt = None,
        seed: SeedOpt = 0,
        device: DeviceOpt = "auto",
        batch_size: Annotated[int, typer.Option("--batch-size", help="Images per pass.")] = 16,
        as_json: JsonOpt = False,
    ) -> None:
        """Grad-CAM heat maps on clean test images beside their adversarial copies (PNG grids)."""
        app_state = state(ctx)
        ws = app_state.workspace
        runtime = make_runtime(device, "fp32")
        data_path = ws.resolve("data", data) if data else ws.default_data()
        adv_path = resolve_test_sets(ws, attack, unique=True)[0]
        eval_model = load_eval_model(ws, model, device=runtime.device)
        folder = ws.reports_dir / (name or safe_key("gradcam", eval_model.name, adv_path.stem))
        with RichReporter(app_state.err_console) as reporter:
            result = run_gradcam(eval_model, data_path, adv_path, folder, runtime=runtime, count=count,
                                 select=select, seed=seed, batch_size=batch_size, reporter=reporter)
        result["folder"] = str(folder)
        if as_json:
            print_json(result)
            return
        app_state.console.print(f"{result['count']} images of {result['adv_set']} "
                                f"({result['fooled_available']} correct-then-fooled available)")
        for target in result["targets"]:
            app_state.console.print(f"  {target['label']}: {folder / target['figure']}")
