"""Writing clean caches: one HDF5 file per prepared dataset.

Layout of `data/<name>.h5`:

    /train/images      uint8 (N, 3, H, W), contiguous, uncompressed (fast hyperslab/memmap reads)
    /train/labels      int64 (N,)
    /train/source_ids  variable-length UTF-8 strings (N,): the source path or synthetic id
    /val/..., /test/...  the same
    file attributes:   format ("defendr-clean-cache"), format_version, image_size, resize,
                       class_ids, class_names, split_counts (JSON), seed, source, fingerprint,
                       summary, complete

`CacheWriter` streams rows into each split in order and computes the content fingerprint while
writing; the file is written under a temporary name (core.atomic) and renamed into place only
after every row has been written and the attributes set, so a crash never leaves a file that
looks valid at the final path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import InputError
from defendr_cli.core.fingerprint import FINGERPRINT_CHARS

FORMAT_NAME = "defendr-clean-cache"
FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
RESIZE_RULES: tuple[str, ...] = ("stretch", "center-crop")

_STRING_DTYPE = h5py.string_dtype(encoding="utf-8")


class ContentDigest:
    """Incremental content fingerprint of a cache: per split, sha256 of the image bytes and of
    the int64 label bytes in row order; the fingerprint is sha256 over those digests (16 hex).

    Used by the writer while rows arrive and by `verify_cache` to recompute it from the file.
    """

    def __init__(self) -> None:
        self._images = {split: hashlib.sha256() for split in SPLITS}
        self._labels = {split: hashlib.sha256() for split in SPLITS}

    def update(self, split: str, images: np.ndarray, labels: np.ndarray) -> None:
        self._images[split].update(np.ascontiguousarray(images, dtype=np.uint8).data)
        self._labels[split].update(np.ascontiguousarray(labels, dtype="<i8").data)

    def hexdigest(self) -> str:
        total = hashlib.sha256()
        for split in SPLITS:
            total.update(f"{split}:{self._images[split].hexdigest()}:{self._labels[split].hexdigest()};".encode())
        return total.hexdigest()[:FINGERPRINT_CHARS]


def cache_summary(*, source_kind: str, num_classes: int, split_counts: dict[str, int],
                  image_size: int, resize: str, seed: int) -> str:
    """One line for `defendr ls`: 'clean cache: synthetic, 10 classes, 32px stretch, train/val/test 540/60/100, seed 0'."""
    counts = "/".join(str(split_counts.get(s, 0)) for s in SPLITS)
    return (f"clean cache: {source_kind}, {num_classes} classes, {image_size}px {resize}, "
            f"train/val/test {counts}, seed {seed}")


class CacheWriter:
    """Write a clean cache atomically, split rows appended in order.

    Example:
        with CacheWriter(path, image_size=32, resize="stretch", class_ids=ids, class_names=names,
                         split_counts={"train": 540, "val": 60, "test": 100}, seed=0,
                         source="synthetic (seed 0)", source_kind="synthetic", force=False) as w:
            w.append("train", images_uint8, labels, source_ids)   # (n,3,32,32) uint8, (n,) int
            ...
    Every split must receive exactly `split_counts[split]` rows before the block ends, else the
    partial file is deleted and InputError raised. `force=False` refuses an existing file
    (ArtefactExistsError) before anything is written.
    """

    def __init__(self, path: Path | str, *, image_size: int, resize: str, class_ids: Sequence[str],
                 class_names: Sequence[str], split_counts: dict[str, int], seed: int, source: str,
                 source_kind: str, force: bool = False) -> None:
        if resize not in RESIZE_RULES:
            raise InputError(f"unknown resize rule '{resize}': use {' or '.join(RESIZE_RULES)}")
        if len(class_ids) != len(class_names):
            raise InputError("class_ids and class_names must have the same length")
        self.path = Path(path)
        self.image_size = int(image_size)
        self.resize = resize
        self.class_ids = [str(c) for c in class_ids]
        self.class_names = [str(n) for n in class_names]
        self.split_counts = {s: int(split_counts.get(s, 0)) for s in SPLITS}
        self.seed = int(seed)
        self.source = source
        self.source_kind = source_kind
        self.force = force
        self.fingerprint: str | None = None
        self._written = {s: 0 for s in SPLITS}
        self._digest = ContentDigest()
        self._atomic = None
        self._file: h5py.File | None = None

    def __enter__(self) -> "CacheWriter":
        images_bytes = sum(self.split_counts.values()) * 3 * self.image_size ** 2
        self._atomic = atomic_path(self.path, force=self.force, needed_bytes=images_bytes)
        tmp = self._atomic.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
            self._file.attrs["format"] = FORMAT_NAME
            self._file.attrs["format_version"] = FORMAT_VERSION
            self._file.attrs["complete"] = False
            size = self.image_size
            for split in SPLITS:
                n = self.split_counts[split]
                group = self._file.create_group(split)
                # Contiguous (no chunks, no compression): rows are read by hyperslab or memmap.
                group.create_dataset("images", shape=(n, 3, size, size), dtype=np.uint8)
                group.create_dataset("labels", shape=(n,), dtype=np.int64)
                group.create_dataset("source_ids", shape=(n,), dtype=_STRING_DTYPE)
        except BaseException as exc:
            self._abort(exc)
            raise
        return self

    def append(self, split: str, images: np.ndarray, labels: np.ndarray | Sequence[int],
               source_ids: Sequence[str]) -> None:
        """Append rows to `split`: images uint8 (n,3,H,W) with H=W=image_size, labels (n,), ids (n,)."""
        if self._file is None:
            raise RuntimeError("CacheWriter.append outside its `with` block")
        if split not in SPLITS:
            raise InputError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
        images = np.ascontiguousarray(images)
        labels = np.asarray(labels, dtype=np.int64)
        n = images.shape[0]
        expected = (n, 3, self.image_size, self.image_size)
        if images.dtype != np.uint8 or images.shape != expected:
            raise InputError(f"images must be uint8 {expected}, got {images.dtype} {images.shape}")
        if labels.shape != (n,) or len(source_ids) != n:
            raise InputError("labels and source_ids must have one entry per image")
        if n and (labels.min() < 0 or labels.max() >= len(self.class_ids)):
            raise InputError(f"labels must lie in [0, {len(self.class_ids)})")
        start = self._written[split]
        if start + n > self.split_counts[split]:
            raise InputError(f"too many rows for split '{split}' ({start + n} > {self.split_counts[split]})")
        group = self._file[split]
        group["images"][start:start + n] = images
        group["labels"][start:start + n] = labels
        group["source_ids"][start:start + n] = [str(s) for s in source_ids]
        self._digest.update(split, images, labels)
        self._written[split] = start + n

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            try:
                missing = {s: self.split_counts[s] - self._written[s] for s in SPLITS
                           if self._written[s] != self.split_counts[s]}
                if missing:
                    raise InputError(f"cache {self.path.name} incomplete: rows missing per split {missing}")
                self._finish_attributes()
                self._file.close()
                self._file = None
            except BaseException as err:
                self._abort(err)
                raise
            self._atomic.__exit__(None, None, None)
        else:
            self._abort(exc)

    def _finish_attributes(self) -> None:
        attrs = self._file.attrs
        self.fingerprint = self._digest.hexdigest()
        attrs["image_size"] = self.image_size
        attrs["resize"] = self.resize
        attrs["class_ids"] = np.array(self.class_ids, dtype=_STRING_DTYPE)
        attrs["class_names"] = np.array(self.class_names, dtype=_STRING_DTYPE)
        attrs["split_counts"] = json.dumps(self.split_counts)
        attrs["seed"] = self.seed
        attrs["source"] = self.source
        attrs["source_kind"] = self.source_kind
        attrs["fingerprint"] = self.fingerprint
        attrs["summary"] = cache_summary(source_kind=self.source_kind, num_classes=len(self.class_ids),
                                         split_counts=self.split_counts, image_size=self.image_size,
                                         resize=self.resize, seed=self.seed)
        attrs["complete"] = True

    def _abort(self, exc: BaseException) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # the file is being deleted anyway; keep the original error
                pass
            self._file = None
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            try:
                atomic.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException as again:
                if again is not exc:
                    raise
