"""`prepare` as one function: a clean cache from a data source, chosen by a small table keyed by source kind.

    run_prepare(workspace, PrepareConfig(source="synthetic", classes=10, per_class=70)) -> PrepareResult

A source kind is a name ('synthetic', 'imagenet', 'folder', 'cifar10-bin', ...);
core.data.source_detect.resolve_source maps what the user gave (the word 'synthetic' or a path,
plus `--format`) to it. Adding a source adds one entry to `SOURCE_KINDS`: a function
(workspace, config, source path, kind, reporter) -> PrepareResult.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from defendr_cli.core.data.cifar_prepare import prepare_cifar
from defendr_cli.core.data.folder_prepare import prepare_folder
from defendr_cli.core.data.imagenet_prepare import prepare_imagenet
from defendr_cli.core.data.prepare import PrepareResult, prepare_synthetic
from defendr_cli.core.data.source_detect import SOURCE_KINDS as KNOWN_KINDS
from defendr_cli.core.data.source_detect import resolve_source
from defendr_cli.core.errors import InputError
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.workspace import Workspace, validate_name

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class PrepareConfig:
    """What to build. source: 'synthetic', an ImageNet-layout folder (train/<wnid>/*.JPEG), class
    folders (<class>/*.jpg) or a CIFAR-10/100 folder; format: 'auto' (detected) or the kind.

    classes / image_size None: the source's default (10 classes of 32 px for synthetic, 201 of
    299 px for ImageNet, all classes for class folders and CIFAR, CIFAR at 32 px). per_class None:
    70 (all images for CIFAR). split: 'train,val,test' images per class or None (54/6/10 scaled;
    CIFAR: its test set, val carved out of train). resize: 'stretch' | 'center-crop' (image
    folders). name None: derived from the parameters.
    """

    source: str = SYNTHETIC
    format: str = "auto"
    classes: int | None = None
    class_list: Path | None = None
    per_class: int | None = None
    split: str | None = None
    image_size: int | None = None
    resize: str = "stretch"
    seed: int = 0
    workers: int | None = None
    allow_short: bool = False
    name: str | None = None
    force: bool = False


def _synthetic(workspace: Workspace, config: PrepareConfig, source: Path, kind: str,
               reporter: Reporter) -> PrepareResult:
    if config.class_list is not None:
        raise InputError("--class-list applies to an image folder, not to --source synthetic")
    if config.resize != "stretch":
        raise InputError("--resize applies to an image folder; synthetic images are drawn at size")
    return prepare_synthetic(workspace, classes=10 if config.classes is None else config.classes,
                             per_class=config.per_class, image_size=config.image_size or 32, split=config.split,
                             seed=config.seed, force=config.force, reporter=reporter, name=config.name)


def _image_folders(workspace: Workspace, config: PrepareConfig, source: Path, kind: str,
                   reporter: Reporter) -> PrepareResult:
    prepare = prepare_imagenet if kind == "imagenet" else prepare_folder
    return prepare(workspace, source, classes=config.classes, class_list=config.class_list,
                   per_class=config.per_class, split=config.split, image_size=config.image_size or 299,
                   resize=config.resize, seed=config.seed, workers=config.workers, allow_short=config.allow_short,
                   force=config.force, reporter=reporter, name=config.name)


def _cifar(workspace: Workspace, config: PrepareConfig, source: Path, kind: str, reporter: Reporter) -> PrepareResult:
    if config.class_list is not None:
        raise InputError("--class-list applies to an image folder; for CIFAR use --classes N")
    return prepare_cifar(workspace, source, kind=kind, classes=config.classes, per_class=config.per_class,
                         split=config.split, image_size=config.image_size or 32, resize=config.resize,
                         seed=config.seed, force=config.force, reporter=reporter, name=config.name)


SourcePreparer = Callable[[Workspace, PrepareConfig, Path, str, Reporter], PrepareResult]
SOURCE_KINDS: dict[str, SourcePreparer] = {
    SYNTHETIC: _synthetic,
    "imagenet": _image_folders,
    "folder": _image_folders,
    **{kind: _cifar for kind in KNOWN_KINDS if kind.startswith("cifar")},
}


def run_prepare(workspace: Workspace, config: PrepareConfig, *, reporter: Reporter | None = None) -> PrepareResult:
    """Build `data/<name>.h5` (uint8 images, train/val/test splits) from `config.source`."""
    if config.name is not None:
        validate_name(config.name)
    detected = resolve_source(config.source, config.format)
    return SOURCE_KINDS[detected.kind](workspace, config, Path(detected.path) if detected.path else Path(),
                                       detected.kind, reporter or NullReporter())
