"""The adaptive evaluation's images: a seeded subset of the test split, its transfer copies, and
per-image correctness on them.

Images are float32 (N, 3, H, W) in [0, 1] on the CPU; labels int64 (N,); masks bool (N,) numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.jsonable import StoredEps
from defendr_cli.core.evaluation.predictions import seeded_randomness
from defendr_cli.core.io.adversarial import AdvSetReader
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.runtime import Runtime


@dataclass(frozen=True)
class Subset:
    """The seeded test rows attacked (`rows`, sorted), their images and labels; `source_ids` their
    source ids in the clean cache (empty when unknown)."""

    rows: np.ndarray
    images: torch.Tensor
    labels: torch.Tensor
    source_ids: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class TransferCopies:
    """A cached adversarial set's copies of the subset rows it holds: images (n, 3, H, W), labels
    (n,), their positions in the subset (n,) and the set's eps (pixel units)."""

    images: torch.Tensor
    labels: torch.Tensor
    positions: np.ndarray
    eps: StoredEps


def subset_rows(count: int, subset: int | None, seed: int) -> np.ndarray:
    """Sorted seeded choice of `subset` rows out of `count` (all rows when subset is None or >= count)."""
    if subset is None or subset >= count:
        return np.arange(count)
    if subset < 1:
        raise InputError(f"--subset must be at least 1, got {subset}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, count, 7]))
    return np.sort(rng.choice(count, size=subset, replace=False))


def read_subset(data_path: Path, subset: int | None, seed: int) -> Subset:
    """The seeded subset of the clean cache's test split (all rows when `subset` is None)."""
    with SplitReader(data_path, "test") as reader:
        rows = subset_rows(len(reader), subset, seed)
        images = reader.read(rows)
        labels = torch.as_tensor(np.asarray(reader.labels)[rows], dtype=torch.int64)
        source_ids = tuple(str(reader.source_ids[int(row)]) for row in rows)
    return Subset(rows, images, labels, source_ids)


def transfer_copies(paths: Sequence[Path], rows: np.ndarray) -> dict[str, TransferCopies]:
    """{set name: its copies of the subset}; rows: the sorted subset rows of the test split."""
    out = {}
    for path in paths:
        with AdvSetReader(path) as reader:
            picked = np.flatnonzero(np.isin(reader.clean_indices, rows))
            positions = np.searchsorted(rows, np.asarray(reader.clean_indices)[picked])
            out[reader.info.name] = TransferCopies(reader.read(picked),
                                                   torch.as_tensor(reader.labels[picked], dtype=torch.int64),
                                                   positions, reader.info.eps)
    return out


@torch.no_grad()
def correct_mask(module: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime,
                 *, seed: int, batch_size: int) -> np.ndarray:
    """Boolean (N,): argmax(module(images)) == labels, randomness seeded by `seed`."""
    out = []
    with seeded_randomness(seed, runtime):
        for start in range(0, len(images), batch_size):
            x = runtime.to_device(images[start : start + batch_size])
            with runtime.autocast():
                logits = module(x)
            out.append((logits.argmax(1).cpu() == labels[start : start + batch_size]).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)
