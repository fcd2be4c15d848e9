"""`defendr prepare`: build a clean cache (data/<name>.h5) from the synthetic source, an ImageNet folder,
class folders or CIFAR-10/100 (binary or python version)."""

from __future__ import annotations

import inspect
from typing import Any

import typer
from rich.table import Table

from defendr_cli.cli.common import ForceOpt, JsonOpt, config_parameters, print_json, state, with_options
from defendr_cli.cli.progress import RichReporter
from defendr_cli.core.data.prepare import PrepareResult
from defendr_cli.core.data.source_detect import FORMAT_CHOICES
from defendr_cli.core.stages.prepare import PrepareConfig, run_prepare

SHOW_SKIPPED = 20


def _summary_table(result: PrepareResult) -> Table:
    info = result.info
    table = Table(title=f"clean cache {info.name}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("path", str(result.path))
    table.add_row("source", info.source)
    table.add_row("classes", f"{info.num_classes} ({info.class_ids[0]} .. {info.class_ids[-1]})")
    table.add_row("images", " / ".join(f"{s} {n}" for s, n in info.split_counts.items()))
    table.add_row("image size", f"{info.image_size}x{info.image_size} ({info.resize})")
    table.add_row("seed", str(info.seed))
    table.add_row("time", f"{result.seconds:.1f} s ({result.images_per_second:,.0f} images/s)")
    table.add_row("fingerprint", info.fingerprint)
    if result.skipped or result.replaced:
        table.add_row("skipped", f"{len(result.skipped)} unreadable file(s), {result.replaced} replaced "
                                 f"by another image of the class")
    if result.short_classes:
        table.add_row("short classes", ", ".join(f"{c} ({n})" for c, n in result.short_classes.items()))
    return table


# PrepareConfig field -> the help of its option (--field-name; type and default are the field's)
OPTIONS: dict[str, Any] = {
    "source": "'synthetic' (built-in dataset), an ImageNet-layout folder train/<wnid>/*.JPEG, "
              "class folders <class>/*.jpg, or a CIFAR-10/100 folder (binary or python version).",
    "format": f"What --source holds: {' | '.join(FORMAT_CHOICES)} (auto: detected from its files).",
    "classes": "Number of classes (at least 2): the first N in sorted folder / label order "
               "(default 201 for ImageNet, 10 for synthetic, all for class folders and CIFAR).",
    "class_list": "File with one wnid / class folder name per line (instead of --classes).",
    "per_class": "Images per class (default 70; CIFAR: all of them).",
    "split": "train,val,test images per class, e.g. 54,6,10 (default: those proportions; CIFAR: "
             "test from its test set, val carved out of its training set).",
    "image_size": "Side of the square images in pixels (default 299 for a folder, 32 for synthetic and CIFAR).",
    "resize": "stretch (the paper) or center-crop (keep aspect, crop the middle).",
    "seed": "Seed for image choice / synthetic drawing.",
    "workers": "Decoding processes (default: the CPU count).",
    "allow_short": "Keep classes with fewer images than --per-class (fewer rows).",
    "name": "Cache name (default derived from the parameters).",
    "force": ForceOpt,
}


def prepare_command(ctx: typer.Context, **values: Any) -> None:
    """Build a clean cache in the workspace's data/ folder (HDF5, uint8, train/val/test splits)."""
    app_state = state(ctx)
    as_json = values.pop("as_json")
    config = PrepareConfig(**values)
    with RichReporter(app_state.err_console, enabled=not as_json) as reporter:
        result = run_prepare(app_state.workspace, config, reporter=reporter)
    if as_json:
        print_json(result.to_dict())
        return
    console = app_state.console
    console.print(_summary_table(result))
    for skipped in result.skipped[:SHOW_SKIPPED]:
        console.print(f"  skipped {skipped.path}: {skipped.reason}", markup=False, highlight=False)
    if len(result.skipped) > SHOW_SKIPPED:
        console.print(f"  ... and {len(result.skipped) - SHOW_SKIPPED} more (see --json)")
    for note in result.notes:
        console.print(note, markup=False, highlight=False)


with_options(prepare_command, [
    *config_parameters(PrepareConfig, OPTIONS),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=JsonOpt, default=False),
])


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare_command)
