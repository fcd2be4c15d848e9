"""`prepare` from an ImageNet-layout folder: choose classes and images, decode in a pool, write the cache.

Per class (index order = sorted wnids, or the --class-list order), the files are shuffled with a
generator seeded by (seed, crc32(wnid)), so a class's choice does not depend on the other classes.
The first `per_class` files are decoded in a process pool; a file that cannot be decoded is
skipped, listed, and replaced by the next file of the shuffled order (decoded in this process:
failures are rare). Within a class the images fill train, then val, then test.

Without --allow-short, a class with fewer usable images than --per-class stops the run (before
decoding when the folder itself has too few files) and no file is written; rows stream into the
cache class by class. With --allow-short, a short class keeps what it has, split in the same
proportions; the decoded images are then held in memory until the counts are known.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from defendr_cli.core.atomic import check_writable
from defendr_cli.core.io.cache import RESIZE_RULES, CacheWriter
from defendr_cli.core.data.class_names import class_names_for
from defendr_cli.core.data.imagenet_source import (DecodeResult, decode_image, decode_task, init_worker,
                                                   list_classes,
                                                   list_images, printable, read_class_list, select_classes,
                                                   train_folder)
from defendr_cli.core.data.prepare import (PrepareResult, SkippedFile, cache_name, check_class_count,
                                          check_image_size)
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.data.splits import SplitSpec, parse_split
from defendr_cli.core.errors import InputError, SourceError
from defendr_cli.core.progress import NullReporter, Reporter, Task
from defendr_cli.core.workspace import Workspace


@dataclass
class _ClassPlan:
    index: int
    wnid: str
    candidates: list[Path]  # shuffled; the first `need` are decoded first, the rest are spares
    need: int


@dataclass
class _ClassImages:
    plan: _ClassPlan
    images: list[np.ndarray] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    replaced: int = 0


def class_split(spec: SplitSpec, count: int) -> SplitSpec:
    """The split of a class that has `count` images (the full spec when count == per_class)."""
    if count >= spec.per_class:
        return spec
    val = round(count * spec.val / spec.per_class)
    test = round(count * spec.test / spec.per_class)
    return SplitSpec(count - val - test, val, test)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _plans(folder: Path, wnids: list[str], per_class: int, seed: int, allow_short: bool) -> list[_ClassPlan]:
    plans, short = [], []
    for index, wnid in enumerate(wnids):
        files = list_images(folder / wnid)
        rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(wnid.encode("utf-8", "surrogateescape"))])
        order = [files[i] for i in rng.permutation(len(files))]
        plans.append(_ClassPlan(index, wnid, order, min(per_class, len(files))))
        if len(files) < per_class:
            short.append(f"{printable(wnid)} ({len(files)})")
    if short and not allow_short:
        raise SourceError(f"{len(short)} class(es) have fewer than {per_class} images: {', '.join(short[:5])}"
                          + (" ..." if len(short) > 5 else "")
                          + "; lower --per-class or pass --allow-short")
    return plans


def _decode_classes(plans: list[_ClassPlan], folder: Path, size: int, resize: str, workers: int,
                    task: Task) -> Iterator[_ClassImages]:
    """Decoded images class by class, in plan order; spares replace files that fail."""
    jobs = [(str(p), size, resize) for plan in plans for p in plan.candidates[:plan.need]]
    pool = None
    if workers > 1 and len(jobs) > 1:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        pool = multiprocessing.get_context(method).Pool(min(workers, len(jobs)), initializer=init_worker)
    try:
        results = pool.imap(decode_task, jobs, chunksize=4) if pool is not None else map(decode_task, jobs)
        for plan in plans:
            got = _ClassImages(plan)
            for _ in range(plan.need):
                _accept(got, next(results), folder)
                task.advance(1)
            spares = iter(plan.candidates[plan.need:])
            while len(got.images) < plan.need and (spare := next(spares, None)) is not None:
                if _accept(got, decode_image(str(spare), size, resize), folder):
                    got.replaced += 1
            yield got
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _accept(got: _ClassImages, result: DecodeResult, folder: Path) -> bool:
    relative = printable(os.path.relpath(result.path, folder))
    if result.image is None:
        got.skipped.append(SkippedFile(relative, result.reason))
        return False
    got.images.append(result.image)
    got.paths.append(relative)
    return True


def _write_class(writer: CacheWriter, got: _ClassImages, spec: SplitSpec) -> None:
    count = len(got.images)
    if count == 0:
        return
    images = np.stack(got.images)
    for split_name, (lo, hi) in class_split(spec, count).bounds().items():
        if hi > lo:
            writer.append(split_name, images[lo:hi], np.full(hi - lo, got.plan.index, dtype=np.int64),
                          got.paths[lo:hi])


def prepare_imagenet(workspace: Workspace, source: Path, *, classes: int | None = None,
                     class_list: Path | None = None, per_class: int | None = 70, split: SplitSpec | str | None = None,
                     image_size: int = 299, resize: str = "stretch", seed: int = 0, workers: int | None = None,
                     allow_short: bool = False, force: bool = False, reporter: Reporter | None = None,
                     name: str | None = None, path: Path | None = None) -> PrepareResult:
    """Build `data/<name>.h5` from an ImageNet-layout folder (`source` or `source/train`).

    classes: the first N sorted wnids (default 201), or the wnids of `class_list` (a file);
    per_class images per class chosen with `seed`, split per `split` (default 54/6/10 scaled);
    image_size in pixels; resize 'stretch' | 'center-crop'; workers decoding processes (default
    the CPU count). Raises SourceError for an unusable folder or a short class (unless
    allow_short), ArtefactExistsError when the cache exists and `force` is False.
    """
    if resize not in RESIZE_RULES:
        raise InputError(f"unknown --resize '{resize}': use {' or '.join(RESIZE_RULES)}")
    check_image_size(image_size)
    spec = split if isinstance(split, SplitSpec) else parse_split(split, per_class)
    folder = train_folder(source)
    wnids = select_classes(list_classes(folder), classes,
                           read_class_list(class_list) if class_list is not None else None)
    check_class_count(len(wnids))
    kind = "imagenet" if class_list is None else "imagenet-list"
    name = name or cache_name(kind, len(wnids), spec.per_class, image_size, resize=resize, seed=seed)
    out = Path(path) if path is not None else workspace.path_for("data", name)
    names, names_origin = class_names_for(wnids, folder)
    return prepare_class_folders(folder, wnids, names, out, spec=spec, image_size=image_size, resize=resize,
                                 seed=seed, workers=workers, allow_short=allow_short, force=force,
                                 reporter=reporter, source=f"ImageNet-layout folder {folder.resolve()}",
                                 source_kind="imagenet", notes=[names_origin])


def prepare_class_folders(folder: Path, class_dirs: list[str], class_names: list[str], out: Path, *,
                          spec: SplitSpec, image_size: int, resize: str, seed: int, workers: int | None,
                          allow_short: bool, force: bool, reporter: Reporter | None, source: str,
                          source_kind: str, notes: list[str]) -> PrepareResult:
    """Decode `folder/<class_dirs[i]>/*` (label i, class id = the folder name) into the cache `out`.

    The shared engine of every class-folder source (ImageNet layout, generic class folders): the
    per-class seeded choice, the decoding pool, replacement of unreadable files, short classes.
    `notes` are returned in the result (e.g. where the class names came from).
    """
    reporter = reporter or NullReporter()
    check_writable(out, force=force)
    plans = _plans(folder, class_dirs, spec.per_class, seed, allow_short)
    workers = default_workers() if workers is None else max(1, workers)
    started = time.perf_counter()
    collected: list[_ClassImages] = []
    writer_args = dict(image_size=image_size, resize=resize, class_ids=[printable(c) for c in class_dirs],
                       class_names=[printable(n) for n in class_names],
                       seed=seed, source=source, source_kind=source_kind, force=force)

    with reporter.task("decode images", total=sum(p.need for p in plans)) as task, \
            contextlib.closing(_decode_classes(plans, folder, image_size, resize, workers, task)) as decoded:
        if allow_short:
            collected = list(decoded)
            counts = {s: 0 for s in ("train", "val", "test")}
            for got in collected:
                for s, (lo, hi) in class_split(spec, len(got.images)).bounds().items():
                    counts[s] += hi - lo
            with CacheWriter(out, split_counts=counts, **writer_args) as writer:
                for got in collected:
                    _write_class(writer, got, spec)
        else:
            with CacheWriter(out, split_counts=spec.counts(len(class_dirs)), **writer_args) as writer:
                for got in decoded:
                    collected.append(_ClassImages(got.plan, [], [], got.skipped, got.replaced))
                    if len(got.images) < spec.per_class:
                        raise SourceError(
                            f"class {printable(got.plan.wnid)} has only {len(got.images)} readable images of the "
                            f"{spec.per_class} needed ({len(got.skipped)} unreadable); lower --per-class "
                            f"or pass --allow-short")
                    _write_class(writer, got, spec)
    seconds = time.perf_counter() - started
    skipped = [s for got in collected for s in got.skipped]
    short = {printable(got.plan.wnid): len(got.images) for got in collected if allow_short and len(got.images) < spec.per_class}
    notes = list(notes)
    if short:
        notes.append(f"{len(short)} class(es) kept with fewer than {spec.per_class} images (--allow-short)")
    info = read_cache_info(out)
    return PrepareResult(path=out, info=info, seconds=seconds, images=sum(info.split_counts.values()), skipped=skipped,
                         replaced=sum(got.replaced for got in collected), short_classes=short, notes=notes)
