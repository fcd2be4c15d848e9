"""`prepare` from CIFAR-10 / CIFAR-100 (binary or python version): train and test as they come.

The cache's test split comes from the CIFAR test set, its train and val splits from the CIFAR
training set: validation is carved out of train. Per class (label order, class ids = the CIFAR
class names), the images of each CIFAR part are shuffled with a generator seeded by (seed,
class index); train takes the first `split.train` training images, val the next `split.val`,
test the first `split.test` test images. Without --split / --per-class the whole dataset is
used, with a tenth of each class's training images as val (CIFAR-10: 45000 / 5000 / 10000).
Images stay 32x32 unless `image_size` says otherwise (then resized with antialiasing).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.atomic import check_writable
from defendr_cli.core.data.cifar_source import CIFAR_LAYOUTS, CIFAR_SIDE, CifarData, read_cifar
from defendr_cli.core.data.prepare import PrepareResult, cache_name, check_class_count, check_image_size
from defendr_cli.core.data.source_detect import detect_format
from defendr_cli.core.data.splits import SplitSpec, parse_split
from defendr_cli.core.errors import InputError, SourceError
from defendr_cli.core.io.cache import RESIZE_RULES, CacheWriter
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.workspace import Workspace

VAL_FRACTION = 0.1  # of each class's training images, when no split is given
_RESIZE_BATCH = 1024


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (n, 3, h, w) -> uint8 (n, 3, size, size), antialiased bilinear (square in, square out)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = np.empty((images.shape[0], 3, size, size), dtype=np.uint8)
    for start in range(0, images.shape[0], _RESIZE_BATCH):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start:start + _RESIZE_BATCH])).float()
        resized = torch.nn.functional.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True,
                                                  align_corners=False)
        out[start:start + len(chunk)] = resized.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def cifar_split(data: CifarData, num_classes: int, per_class: int | None,
                split: SplitSpec | str | None) -> SplitSpec:
    """Images per class in each split; checks the CIFAR parts hold enough of every class."""
    train_have = int(np.bincount(data.train.labels, minlength=num_classes)[:num_classes].min())
    test_have = int(np.bincount(data.test.labels, minlength=num_classes)[:num_classes].min())
    if split is None and per_class is None:
        val = max(1, round(train_have * VAL_FRACTION))
        return SplitSpec(train_have - val, val, test_have)
    spec = split if isinstance(split, SplitSpec) else parse_split(split, per_class)
    if spec.train + spec.val > train_have or spec.test > test_have:
        raise SourceError(f"the {data.layout.title} has {train_have} training and {test_have} test images per class "
                          f"(the smallest class), but split {spec} asks for {spec.train + spec.val} and {spec.test}")
    return spec


def _class_rows(labels: np.ndarray, label: int, seed: int, part: int) -> np.ndarray:
    rows = np.flatnonzero(labels == label)
    return rows[np.random.default_rng([seed & 0xFFFFFFFF, label, part]).permutation(len(rows))]


def prepare_cifar(workspace: Workspace, source: Path, *, kind: str | None = None, classes: int | None = None,
                  per_class: int | None = None, split: SplitSpec | str | None = None, image_size: int = CIFAR_SIDE,
                  resize: str = "stretch", seed: int = 0, force: bool = False, reporter: Reporter | None = None,
                  name: str | None = None, path: Path | None = None) -> PrepareResult:
    """Build `data/<name>.h5` from a CIFAR folder (e.g. cifar-10-batches-bin or its parent folder).

    kind: 'cifar10-bin' | 'cifar10-py' | 'cifar100-bin' | 'cifar100-py' (None: detected);
    classes: the first N classes in label order (default all); per_class / split: images per class
    as for the other sources (default: everything, see the module docstring); image_size in pixels
    (default 32, the CIFAR size). Raises SourceError for missing, damaged or refused files or too
    few images, InputError for bad values, ArtefactExistsError when the cache exists and `force`
    is False.
    """
    reporter = reporter or NullReporter()
    if resize not in RESIZE_RULES:
        raise InputError(f"unknown --resize '{resize}': use {' or '.join(RESIZE_RULES)}")
    check_image_size(image_size)
    if kind is None:
        detected = detect_format(source)
        kind, source = detected.kind, detected.path
    if kind not in CIFAR_LAYOUTS:
        raise SourceError(f"{source} is not a CIFAR folder (it looks like {kind})")
    layout = CIFAR_LAYOUTS[kind]
    count = layout.num_classes if classes is None else classes
    check_class_count(count)
    if count > layout.num_classes:
        raise InputError(f"--classes {count} asked for, but {layout.title} has {layout.num_classes} classes")
    started = time.perf_counter()
    with reporter.task(f"read {layout.title}", total=None):
        data = read_cifar(Path(source), kind)
    spec = cifar_split(data, count, per_class, split)
    name = name or cache_name(layout.family, count, spec.per_class, image_size, resize=resize, seed=seed)
    out = Path(path) if path is not None else workspace.path_for("data", name)
    check_writable(out, force=force)
    names = data.class_names[:count]
    with CacheWriter(out, image_size=image_size, resize=resize, class_ids=names, class_names=names,
                     split_counts=spec.counts(count), seed=seed,
                     source=f"{layout.title} {data.folder.resolve()}", source_kind=layout.family,
                     force=force) as writer, reporter.task("write cache", total=count) as task:
        for label in range(count):
            train_rows = _class_rows(data.train.labels, label, seed, 0)
            chosen = {"train": ("train", train_rows[:spec.train]),
                      "val": ("train", train_rows[spec.train:spec.train + spec.val]),
                      "test": ("test", _class_rows(data.test.labels, label, seed, 1)[:spec.test])}
            for split_name, (part_name, rows) in chosen.items():
                if len(rows):
                    part = getattr(data, part_name)
                    writer.append(split_name, resize_batch(part.images[rows], image_size),
                                  np.full(len(rows), label, dtype=np.int64), [part.source_ids[r] for r in rows])
            task.advance(1)
    seconds = time.perf_counter() - started
    info = read_cache_info(out)
    notes = [f"class ids are the {layout.title.split()[0]} class names; test split = the CIFAR test set, "
             f"val carved out of the CIFAR training set"]
    return PrepareResult(path=out, info=info, seconds=seconds, images=sum(info.split_counts.values()), notes=notes)
