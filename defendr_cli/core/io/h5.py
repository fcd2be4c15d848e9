"""HDF5 helpers shared by every artefact reader: opening, row selection, sorted-run reads, batches.

Rows are always read as hyperslabs of sorted runs (never h5py fancy indexing, which collapses to
~80 images/s on per-image chunks) and returned in the order asked for. `ProcessLocalFile` opens a
file lazily and reopens it when the process id changes, so a reader made in a parent process
works inside forked or spawned DataLoader workers (h5py handles are not fork-safe).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from defendr_cli.core.errors import CorruptArtefactError, InputError
from defendr_cli.core.io.files import require_regular_file

RowIndices = Sequence[int] | np.ndarray | torch.Tensor


def open_h5(path: Path, *, what: str = "clean cache", hint: str = "make one with: defendr prepare") -> h5py.File:
    """Open an HDF5 artefact read-only; MissingArtefactError (with `hint`) or CorruptArtefactError
    (also for a FIFO, device or folder at `path`: those are never opened, see core.io.files)."""
    path = Path(path)
    require_regular_file(path, what=what, hint=hint)
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise CorruptArtefactError(f"{path} is not a readable HDF5 {what} ({exc.__class__.__name__})") from exc


def as_str_list(value) -> list[str]:
    """An HDF5 string array or list (bytes or str items) as a list of str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).tolist()]


@dataclass
class Batch:
    """images float32 (n,3,H,W) in [0,1]; labels int64 (n,); indices int64 (n,) rows of the split."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor


def check_rows(indices: RowIndices, count: int, where: str) -> np.ndarray:
    """int64 (n,) row indices; InputError when one is outside [0, count)."""
    idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= count):
        raise InputError(f"row index out of range for {where} of {count} images")
    return idx


def sorted_runs(sorted_unique: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of consecutive values in a sorted array of unique row indices."""
    if sorted_unique.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_unique) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [sorted_unique.size]))
    return [(int(sorted_unique[a]), int(sorted_unique[b - 1]) + 1) for a, b in zip(starts, stops)]


def read_sorted_runs(dataset: h5py.Dataset, unique: np.ndarray) -> np.ndarray:
    """Rows `unique` (sorted, unique int64) of `dataset`, read as one hyperslab per run."""
    rows = np.empty((unique.size, *dataset.shape[1:]), dtype=dataset.dtype)
    at = 0
    try:
        for start, stop in sorted_runs(unique):
            dataset.read_direct(rows, np.s_[start:stop], np.s_[at:at + stop - start])
            at += stop - start
    except (OSError, RuntimeError, ValueError) as exc:  # a damaged chunk or heap in the file
        raise CorruptArtefactError(f"{dataset.file.filename}: dataset '{dataset.name}' cannot be read "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return rows


def read_rows(dataset: h5py.Dataset, idx: np.ndarray) -> np.ndarray:
    """Rows `idx` (int64, any order, duplicates allowed) of `dataset`, in the order given."""
    unique, inverse = np.unique(idx, return_inverse=True)
    rows = read_sorted_runs(dataset, unique)
    if unique.size == idx.size and np.array_equal(unique, idx):
        return rows
    return np.take(rows, inverse.reshape(-1), axis=0)


def batch_rows(order: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0,
               drop_last: bool = False) -> Iterator[np.ndarray]:
    """Consecutive slices of `order` (int64 rows) of `batch_size`, after a seeded shuffle if asked."""
    if batch_size < 1:
        raise InputError("batch size must be at least 1")
    if shuffle:
        order = order[np.random.default_rng(seed).permutation(order.size)]
    for start in range(0, order.size, batch_size):
        rows = order[start:start + batch_size]
        if drop_last and rows.size < batch_size:
            return
        yield rows


def file_identity(path: Path) -> tuple[int, int, int, int]:
    """(device, inode, size, modification time in ns) of `path`: equal while the file is unchanged."""
    info = os.stat(path)
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class ProcessLocalFile:
    """A read-only h5py handle opened on first use in each process (see module docstring).

    `get()` returns the open handle of this process; `close()` closes it if this process opened
    it; pickling drops the handle (the unpickled copy reopens the file itself). `handle` hands over
    a handle already open in this process (the one a reader checked); with `identity` (see
    `file_identity`) a reopen refuses a file that was replaced or changed since it was checked.
    """

    def __init__(self, path: Path, *, what: str, hint: str, handle: h5py.File | None = None,
                 identity: tuple[int, int, int, int] | None = None) -> None:
        self.path, self.what, self.hint = Path(path), what, hint
        self.identity = identity
        self._pid: int | None = os.getpid() if handle is not None else None
        self._handle: h5py.File | None = handle

    def get(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            handle = open_h5(self.path, what=self.what, hint=self.hint)
            if self.identity is not None and file_identity(self.path) != self.identity:
                handle.close()
                raise CorruptArtefactError(f"{self.path} changed since it was checked; run the command again")
            self._handle, self._pid = handle, os.getpid()
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"] = None
        return state
