"""`prepare`: build a clean cache in a workspace; the shared result type and checks of every source.

    prepare_synthetic(ws, classes=10, per_class=70, image_size=32)      -> PrepareResult  (here)
    prepare_imagenet(ws, source, classes=201, per_class=70, ...)         -> PrepareResult  (imagenet_prepare)
    prepare_folder(ws, source, classes=None, per_class=70, ...)          -> PrepareResult  (folder_prepare)
    prepare_cifar(ws, source, per_class=None, split=None, ...)           -> PrepareResult  (cifar_prepare)
    detect_format(source) -> DetectedSource (which of the above reads `source`)      (source_detect)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from defendr_cli.core.atomic import check_writable
from defendr_cli.core.io.cache import CacheWriter
from defendr_cli.core.io.reader import CacheInfo, read_cache_info
from defendr_cli.core.data.splits import SplitSpec, parse_split
from defendr_cli.core.data.synthetic import generate_class_images, synthetic_classes
from defendr_cli.core.errors import InputError
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.workspace import Workspace


@dataclass
class SkippedFile:
    """A source image that could not be used; `reason` is one short phrase."""

    path: str
    reason: str


@dataclass
class PrepareResult:
    """What `prepare` made: the cache, how long it took, and what it had to skip or cut short."""

    path: Path
    info: CacheInfo
    seconds: float
    images: int
    skipped: list[SkippedFile] = field(default_factory=list)
    replaced: int = 0
    short_classes: dict[str, int] = field(default_factory=dict)  # class id -> images found
    notes: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "path": str(self.path), "name": self.info.name, "images": self.images,
            "seconds": round(self.seconds, 3), "images_per_second": round(self.images_per_second, 1),
            "split_counts": self.info.split_counts, "fingerprint": self.info.fingerprint,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "replaced": self.replaced, "short_classes": self.short_classes, "notes": self.notes,
        }


def cache_name(source_kind: str, classes: int, per_class: int, image_size: int, *,
               resize: str = "stretch", seed: int = 0) -> str:
    """Name from parameters: 'synthetic-c10-n70-32px', 'imagenet-c201-n70-299px-crop-seed3'."""
    name = f"{source_kind}-c{classes}-n{per_class}-{image_size}px"
    if resize == "center-crop":
        name += "-crop"
    if seed:
        name += f"-seed{seed}"
    return name


def check_image_size(image_size: int) -> None:
    if not 8 <= image_size <= 1024:
        raise InputError(f"--image-size must be between 8 and 1024 pixels, not {image_size}")


MIN_CLASSES = 2


def check_class_count(count: int) -> None:
    """A cache needs at least two classes: nothing can be learned or attacked on one."""
    if count < MIN_CLASSES:
        raise InputError(f"a clean cache needs at least {MIN_CLASSES} classes, not {count}: "
                         f"nothing can be learned or attacked on it (raise --classes or add class folders)")


def prepare_synthetic(workspace: Workspace, classes: int = 10, per_class: int | None = 70,
                      image_size: int = 32, split: SplitSpec | str | None = None, seed: int = 0,
                      force: bool = False, reporter: Reporter | None = None, *,
                      name: str | None = None, path: Path | None = None) -> PrepareResult:
    """Draw the synthetic dataset into `workspace/data/<name>.h5` (or `path`).

    classes: 2..MAX_CLASSES (fewer is an InputError); per_class images per class, split per `split` ('54,6,10' or a
    SplitSpec; default the paper's proportions); image_size in pixels. Deterministic in `seed`.
    Raises ArtefactExistsError when the cache exists and `force` is False.
    """
    reporter = reporter or NullReporter()
    spec = split if isinstance(split, SplitSpec) else parse_split(split, per_class)
    if per_class is not None and spec.per_class != per_class:
        raise InputError(f"split {spec} adds up to {spec.per_class} images per class, not {per_class}")
    check_image_size(image_size)
    check_class_count(classes)
    class_list = synthetic_classes(classes)
    name = name or cache_name("synthetic", classes, spec.per_class, image_size, seed=seed)
    out = Path(path) if path is not None else workspace.path_for("data", name)
    check_writable(out, force=force)
    started = time.perf_counter()
    bounds = spec.bounds()
    with CacheWriter(out, image_size=image_size, resize="stretch",
                     class_ids=[c.class_id for c in class_list], class_names=[c.name for c in class_list],
                     split_counts=spec.counts(classes), seed=seed,
                     source=f"synthetic (built-in procedural dataset, seed {seed})", source_kind="synthetic",
                     force=force) as writer, reporter.task("draw synthetic images", total=classes) as task:
        for cls in class_list:
            images = generate_class_images(cls.index, spec.per_class, image_size, seed)
            for split_name, (lo, hi) in bounds.items():
                if hi > lo:
                    ids = [f"synthetic/seed{seed}/{cls.class_id}/{j:05d}" for j in range(lo, hi)]
                    writer.append(split_name, images[lo:hi], np.full(hi - lo, cls.index, dtype=np.int64), ids)
            task.advance(1)
    seconds = time.perf_counter() - started
    info = read_cache_info(out)
    return PrepareResult(path=out, info=info, seconds=seconds, images=spec.per_class * classes)
