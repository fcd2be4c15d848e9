"""`prepare` as one function: a clean cache from a data source, chosen by a small table keyed by source kind.

    run_prepare(workspace, PrepareConfig(source="synthetic", classes=10, per_class=70)) -> PrepareResult

A source kind is a name ('synthetic', 'imagenet'); `source_kind(config.source)` maps what the user
gave (the word 'synthetic' or a folder path) to it. Adding a source adds one entry to
`SOURCE_KINDS`: a function (workspace, config, reporter) -> PrepareResult.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from defendr_cli.core.data.imagenet_prepare import prepare_imagenet
from defendr_cli.core.data.prepare import PrepareResult, prepare_synthetic
from defendr_cli.core.errors import InputError
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.workspace import Workspace

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class PrepareConfig:
    """What to build. source: 'synthetic' or an ImageNet-layout folder (train/<wnid>/*.JPEG).

    classes / image_size None: the source's default (10 classes of 32 px for synthetic, 201 of
    299 px for a folder). split: 'train,val,test' images per class or None (54/6/10 scaled).
    resize: 'stretch' | 'center-crop' (folders only). name None: derived from the parameters.
    """

    source: str = SYNTHETIC
    classes: int | None = None
    class_list: Path | None = None
    per_class: int = 70
    split: str | None = None
    image_size: int | None = None
    resize: str = "stretch"
    seed: int = 0
    workers: int | None = None
    allow_short: bool = False
    name: str | None = None
    force: bool = False


def _prepare_synthetic(workspace: Workspace, config: PrepareConfig, reporter: Reporter) -> PrepareResult:
    if config.class_list is not None:
        raise InputError("--class-list applies to an ImageNet folder, not to --source synthetic")
    if config.resize != "stretch":
        raise InputError("--resize applies to an ImageNet folder; synthetic images are drawn at size")
    return prepare_synthetic(workspace, classes=config.classes or 10, per_class=config.per_class,
                             image_size=config.image_size or 32, split=config.split, seed=config.seed,
                             force=config.force, reporter=reporter, name=config.name)


def _prepare_imagenet(workspace: Workspace, config: PrepareConfig, reporter: Reporter) -> PrepareResult:
    return prepare_imagenet(workspace, Path(config.source).expanduser(), classes=config.classes,
                            class_list=config.class_list, per_class=config.per_class, split=config.split,
                            image_size=config.image_size or 299, resize=config.resize, seed=config.seed,
                            workers=config.workers, allow_short=config.allow_short, force=config.force,
                            reporter=reporter, name=config.name)


SOURCE_KINDS: dict[str, Callable[[Workspace, PrepareConfig, Reporter], PrepareResult]] = {
    SYNTHETIC: _prepare_synthetic,
    "imagenet": _prepare_imagenet,
}


def source_kind(source: str) -> str:
    """'synthetic' for the built-in source, 'imagenet' for a folder path."""
    return SYNTHETIC if source == SYNTHETIC else "imagenet"


def run_prepare(workspace: Workspace, config: PrepareConfig, *, reporter: Reporter | None = None) -> PrepareResult:
    """Build `data/<name>.h5` (uint8 images, train/val/test splits) from `config.source`."""
    return SOURCE_KINDS[source_kind(config.source)](workspace, config, reporter or NullReporter())
