"""Reading clean caches written by `core.io.cache`: info, random batches, a torch Dataset.

Rows are fetched in sorted order (duplicates read once) and returned in the order asked for.
A split is served from one of three backings, chosen on first use in each process:

* memory  - the whole split's uint8 images loaded once (default when it is < IN_MEMORY_BYTES);
* pread   - positional reads (os.preadv) of sorted index runs straight from the contiguous HDF5
            dataset into the batch: the OS page cache does the caching, and since no page of the
            file is mapped into the process, resident memory stays one batch deep however large
            the split (a memmap's touched pages count as resident: an epoch over a 3 GB split
            grew the process by 3 GB);
* hdf5    - hyperslab reads of sorted index runs (never h5py fancy indexing), for chunked files.

The file handle is opened lazily and reopened when the process id changes, so a reader created
in the parent works inside forked DataLoader workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from defendr_cli.core.io.cache import FORMAT_NAME, FORMAT_VERSION, SPLITS
from defendr_cli.core.errors import CorruptArtefactError, InputError
from defendr_cli.core.io.h5 import Batch, as_str_list, batch_rows, check_rows, open_h5, read_sorted_runs, sorted_runs
from defendr_cli.core.io.schema import Fields, check_dataset, damaged_file_errors, read_h5_attrs

IN_MEMORY_BYTES = 1 << 28  # auto in-memory load for splits smaller than 256 MiB (bounded, not data-sized)


@dataclass(frozen=True)
class CacheInfo:
    """The attributes of a clean cache. image_size in pixels (square); split_counts per split."""

    path: Path
    format_version: int
    image_size: int
    resize: str
    class_ids: list[str]
    class_names: list[str]
    num_classes: int
    split_counts: dict[str, int]
    seed: int
    source: str
    fingerprint: str
    source_kind: str = ""
    summary: str = ""
    size_bytes: int = 0

    @property
    def name(self) -> str:
        return self.path.stem

    def to_dict(self) -> dict:
        return {
            "name": self.name, "path": str(self.path), "format": FORMAT_NAME,
            "format_version": self.format_version, "image_size": self.image_size, "resize": self.resize,
            "num_classes": self.num_classes, "class_ids": self.class_ids, "class_names": self.class_names,
            "split_counts": self.split_counts, "seed": self.seed, "source": self.source,
            "source_kind": self.source_kind, "fingerprint": self.fingerprint, "summary": self.summary,
            "size_bytes": self.size_bytes,
        }


def info_from_handle(path: Path, handle: h5py.File) -> CacheInfo:
    """The clean cache's attributes checked by `cache_fields` and its datasets by `check_cache_layout`."""
    info = cache_fields(Path(path), read_h5_attrs(Path(path), handle))
    check_cache_layout(path, handle, info)
    return info


def cache_fields(path: Path, attrs: dict) -> CacheInfo:
    """The schema of a clean cache's attributes: CorruptArtefactError naming the file and the attribute
    for a foreign format, another version, an incomplete file, or a value of the wrong type."""
    fields = Fields(path, attrs, "clean cache")
    fmt = attrs.get("format")
    if fmt != FORMAT_NAME:
        raise CorruptArtefactError(f"{path} is not a Defendr clean cache (format {fmt!r})")
    version = fields.integer("format_version")
    if version != FORMAT_VERSION:
        raise CorruptArtefactError(f"{path} has clean-cache format version {version}; this build reads {FORMAT_VERSION}")
    if not fields.flag("complete", False):
        raise CorruptArtefactError(f"{path} is an incomplete clean cache (its writing was interrupted)",
                                   hint="make it again with: defendr prepare --force")
    counts = fields.json_object("split_counts")
    if set(counts) - set(SPLITS) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                            for v in counts.values()):
        raise fields.bad("split_counts", f"a JSON object of non-negative row counts per split ({', '.join(SPLITS)})")
    class_ids = fields.texts("class_ids")
    return CacheInfo(
        path=Path(path), format_version=version, image_size=fields.integer("image_size", minimum=1),
        resize=fields.text("resize"), class_ids=class_ids, class_names=fields.texts("class_names"),
        num_classes=len(class_ids), split_counts={s: int(counts.get(s, 0)) for s in SPLITS},
        seed=fields.integer("seed"), source=fields.text("source"), fingerprint=fields.text("fingerprint"),
        source_kind=fields.text("source_kind", ""), summary=fields.text("summary", ""),
        size_bytes=Path(path).stat().st_size,
    )


def check_cache_layout(path: Path, handle: h5py.File, info: CacheInfo) -> None:
    """CorruptArtefactError, naming the file and dataset, unless every split holds `images` uint8
    (N, 3, S, S) with S the recorded image size, `labels` (N,) integers in [0, classes),
    `source_ids` (N,) strings, N equal to the recorded count, every dataset fully stored and
    unfiltered (see core.io.schema.check_dataset; the labels are read: 8 bytes per image)."""
    size, classes = info.image_size, info.num_classes
    if size < 1 or classes < 1 or len(info.class_names) != classes:
        raise CorruptArtefactError(f"{path}: attributes record image size {size} and {classes} classes "
                                   f"with {len(info.class_names)} names")
    for split in SPLITS:
        count = info.split_counts.get(split, 0)
        expected = (count, 3, size, size)
        images = handle.get(f"{split}/images")
        if isinstance(images, h5py.Dataset) and (tuple(images.shape or ()) != expected or images.dtype != np.uint8):
            raise CorruptArtefactError(
                f"{path}: dataset '{split}/images' is {images.dtype} {tuple(images.shape or ())}, expected uint8 "
                f"{expected} (N, 3, H, W) as its attributes record")
        check_dataset(path, handle, f"{split}/images", kinds="u", shape=expected, what="clean cache")
        labels = check_dataset(path, handle, f"{split}/labels", kinds="iu", shape=(count,), what="clean cache")
        check_dataset(path, handle, f"{split}/source_ids", kinds="OSU", shape=(count,), what="clean cache")
        values = np.asarray(labels[...])
        if values.size and (values.min() < 0 or values.max() >= classes):
            raise CorruptArtefactError(f"{path}: dataset '{split}/labels' holds values outside 0..{classes - 1} "
                                       f"(the cache records {classes} classes)")


def read_cache_info(path: Path | str) -> CacheInfo:
    """Attributes of the clean cache at `path`; CorruptArtefactError for foreign/partial files."""
    with open_h5(Path(path)) as handle, damaged_file_errors(path, "clean cache"):
        return info_from_handle(Path(path), handle)


@dataclass
class _Backing:
    pid: int
    handle: h5py.File | None
    array: np.ndarray | None  # in-memory (N,3,H,W) uint8; None -> pread or hdf5 runs
    dataset: h5py.Dataset | None
    mode: str = field(default="hdf5")
    fd: int | None = None  # pread: this process's descriptor of the file
    offset: int = 0  # pread: byte offset of the images dataset in the file


class SplitReader:
    """Reads one split of a clean cache. Use as a context manager (or call close()).

    in_memory: True loads the whole split into RAM; False never does; None (default) loads it
    when its images take less than IN_MEMORY_BYTES, else streams it (pread, or hdf5 for chunked files).
    """

    def __init__(self, path: Path | str, split: str, in_memory: bool | None = None) -> None:
        if split not in SPLITS:
            raise InputError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
        self.path = Path(path)
        self.split = split
        self.in_memory = in_memory
        with open_h5(self.path) as handle, damaged_file_errors(self.path, "clean cache"):
            self.info = info_from_handle(self.path, handle)
            group = handle[split]
            self.labels: np.ndarray = np.asarray(group["labels"][...], dtype=np.int64)
            self.source_ids: list[str] = as_str_list(group["source_ids"][...])
            self._shape = tuple(group["images"].shape)
        self._backing: _Backing | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "SplitReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        backing, self._backing = self._backing, None
        if backing is not None and backing.pid == os.getpid():
            if backing.handle is not None:
                backing.handle.close()
            if backing.fd is not None:
                os.close(backing.fd)

    def __getstate__(self) -> dict:  # picklable for spawn-started DataLoader workers
        state = self.__dict__.copy()
        state["_backing"] = None
        return state

    def __len__(self) -> int:
        return self._shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._shape[1:]  # (3, H, W)

    @property
    def backing_mode(self) -> str:
        """'memory', 'pread' or 'hdf5' (opens the split if needed)."""
        return self._open().mode

    def _open(self) -> _Backing:
        backing = self._backing
        if backing is not None and backing.pid == os.getpid():
            return backing
        if backing is not None and backing.array is not None:
            # Forked child: the in-memory array is inherited and valid; h5py handles are not
            # fork-safe, and pread reopens its own descriptor below.
            self._backing = _Backing(os.getpid(), None, backing.array, None, backing.mode)
            return self._backing
        handle = open_h5(self.path)
        try:
            backing = self._backing_from(handle)
        except BaseException as exc:
            handle.close()
            if isinstance(exc, (OSError, KeyError, RuntimeError, ValueError)):
                raise CorruptArtefactError(f"{self.path}: split '{self.split}' cannot be read "
                                           f"({exc.__class__.__name__}: {exc})") from exc
            raise
        self._backing = backing
        return backing

    def _backing_from(self, handle: h5py.File) -> _Backing:
        """Load the split into memory, stream it with pread, or keep reading through `handle`."""
        dataset = handle[self.split]["images"]
        nbytes = int(np.prod(self._shape))
        load = self.in_memory if self.in_memory is not None else nbytes < IN_MEMORY_BYTES
        if load:
            array = np.empty(self._shape, dtype=np.uint8)
            if self._shape[0]:
                dataset.read_direct(array)
            handle.close()
            return _Backing(os.getpid(), None, array, None, "memory")
        offset = dataset.id.get_offset() if dataset.chunks is None and dataset.compression is None else None
        if offset is not None and self._shape[0]:
            handle.close()
            fd = os.open(self.path, os.O_RDONLY)
            return _Backing(os.getpid(), None, None, None, "pread", fd=fd, offset=int(offset))
        return _Backing(os.getpid(), handle, None, dataset, "hdf5")

    # -- reading -----------------------------------------------------------------------------
    def _check(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
        return check_rows(indices, len(self), f"split '{self.split}'")

    def read_uint8(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 (n,3,H,W) rows in the order given (duplicates allowed)."""
        idx = self._check(indices)
        backing = self._open()
        if backing.mode == "memory":
            return np.take(backing.array, idx, axis=0)  # one gather in the order asked for
        unique, inverse = np.unique(idx, return_inverse=True)
        if backing.fd is not None:
            rows = self._pread_runs(backing, unique)
        else:
            rows = read_sorted_runs(backing.dataset, unique)
        if unique.size == idx.size and np.array_equal(unique, idx):
            return rows
        return np.take(rows, inverse.reshape(-1), axis=0)

    def _pread_runs(self, backing: _Backing, unique: np.ndarray) -> np.ndarray:
        """uint8 rows `unique` (sorted, unique), one positional read per run of consecutive rows."""
        rows = np.empty((unique.size, *self._shape[1:]), dtype=np.uint8)
        row_bytes = int(np.prod(self._shape[1:]))
        flat = memoryview(rows.reshape(-1))
        at = 0
        for start, stop in sorted_runs(unique):
            pread_exact(backing.fd, flat[at * row_bytes:(at + stop - start) * row_bytes],
                        backing.offset + start * row_bytes, self.path)
            at += stop - start
        return rows

    def read(self, indices: Sequence[int] | np.ndarray | torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """float32 (n,3,H,W) in [0,1] (= uint8 / 255), rows in the order given.

        out: an optional float32 CPU tensor of at least n rows to fill and return (its first n rows);
        reusing one buffer avoids the page faults of a fresh large allocation per batch (about 3x
        faster at 299 px), but the caller must be done with the previous batch.
        """
        raw = torch.from_numpy(self.read_uint8(indices))
        if out is None:
            return raw.to(torch.float32).div_(255.0)
        if out.dtype != torch.float32 or out.shape[1:] != raw.shape[1:] or out.shape[0] < raw.shape[0]:
            raise InputError(f"read(out=...) needs a float32 tensor of shape (>={raw.shape[0]}, {', '.join(map(str, raw.shape[1:]))})")
        target = out[: raw.shape[0]]
        return target.copy_(raw).div_(255.0)

    def read_labels(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.labels[self._check(indices)])

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                     indices: Sequence[int] | np.ndarray | None = None) -> Iterator[Batch]:
        """Batches over `indices` (default all rows), shuffled with `seed` when asked."""
        order = np.arange(len(self), dtype=np.int64) if indices is None else self._check(indices)
        for rows in batch_rows(order, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last):
            yield Batch(self.read(rows), torch.from_numpy(self.labels[rows]), torch.from_numpy(rows.copy()))


def pread_exact(fd: int, buffer: memoryview, offset: int, path: Path) -> None:
    """Fill `buffer` from byte `offset` of the file (short reads continued); CorruptArtefactError
    when the file ends first (a truncated cache)."""
    done = 0
    while done < len(buffer):
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if got <= 0:
            raise CorruptArtefactError(f"{path} ends inside its image data (truncated file)",
                                       hint="make it again with: defendr prepare --force")
        done += got


class CacheDataset(torch.utils.data.Dataset):
    """A torch Dataset over one split: item -> (image float32 (3,H,W) in [0,1], label int64).

    Implements `__getitems__`, so a DataLoader with a batch sampler reads each batch in one
    sorted pass; each worker process reopens the file by itself.
    """

    def __init__(self, path: Path | str, split: str, in_memory: bool | None = None) -> None:
        self.reader = SplitReader(path, split, in_memory=in_memory)

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.reader.read([index])[0]
        return image, torch.tensor(int(self.reader.labels[index]))

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        images = self.reader.read(indices)
        labels = torch.from_numpy(self.reader.labels[np.asarray(indices, dtype=np.int64)])
        return list(zip(images, labels))
