"""`defendr import NAME --arch SOURCE:ARCH --weights FILE | --exported FILE.pt2`: bring your own model.

Thin layer over core.stages.import_model.run_import: writes models/NAME.pt (kind "imported"),
then prints what was decided (outputs, class map, normalization, Grad-CAM layer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from defendr_cli.cli.common import DataOpt, ForceOpt, JsonOpt, print_json, state
from defendr_cli.core.stages.import_model import ImportConfig, run_import


def import_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the imported model (models/NAME.pt).")],
    arch: Annotated[str | None, typer.Option(
        "--arch", help="torchvision:NAME (any torchvision classifier) or timm:NAME (needs timm).")] = None,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="State dict .pth/.pt (read weights_only) or .safetensors.")] = None,
    exported: Annotated[Path | None, typer.Option(
        "--exported", help="A torch.export program (.pt2) instead of --arch/--weights.")] = None,
    normalize: Annotated[str | None, typer.Option(
        "--normalize", help="imagenet | none | m1,m2,m3/s1,s2,s3, applied as the model's first layer "
        "(default: imagenet for torchvision, the model's own for timm, none for --exported).")] = None,
    class_map: Annotated[Path | None, typer.Option(
        "--class-map", help="JSON or two-column text: cache class id -> model output index.")] = None,
    data: DataOpt = None,
    cam_layer: Annotated[str | None, typer.Option(
        "--cam-layer", help="Grad-CAM layer as a dotted module path (default: the architecture's last conv stage).")] = None,
    image_size: Annotated[int | None, typer.Option(
        "--image-size", help="Input size in pixels when no cache is bound (default: the cache's).")] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a torchvision/timm model with local weights, or a torch.export program, as a Defendr model."""
    app_state = state(ctx)
    config = ImportConfig(name=name, arch=arch, weights=weights, exported=exported, normalize=normalize,
                          class_map=class_map, data=data, cam_layer=cam_layer, image_size=image_size, force=force)
    result = run_import(app_state.workspace, config)
    if as_json:
        print_json({"name": result.name, "path": str(result.path), "source": result.source, "arch": result.arch,
                    "num_outputs": result.num_outputs, "num_classes": result.num_classes,
                    "normalize": result.normalize, "cam_layer": result.cam_layer, "data": result.data_name,
                    "image_size": result.image_size,
                    "class_map": result.class_map.to_dict() if result.class_map else None,
                    "summary": result.summary, "notes": result.notes})
        return
    console = app_state.console
    console.print(f"wrote {result.path}", markup=False, highlight=False)
    console.print(f"  {result.summary}", markup=False, highlight=False)
    for note in result.notes:
        console.print(f"  {note}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
