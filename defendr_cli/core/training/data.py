"""Training batches: clean, doubled (clean + cached adversarial copies), and paired (clean, adv).

A batch source plans each epoch as a seeded permutation of items, cuts it into batches and reads
them through core.data's readers (in-process, or in `workers` DataLoader processes; each process
opens its own file handles). The plan depends only on (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one.

Data-parallel runs (core.distributed): every rank computes the same plan, then takes its
contiguous share of each batch, so `batch_size` is the global batch and every rank runs the same
number of steps as a single process would. Training sources pad a batch whose size is not a
multiple of the world size by repeating its first items (equal, non-empty shares); validation
sources (`pad_shards=False`) split each batch exactly and skip empty shares, so metrics summed
over ranks equal the single-process ones.

    TrainBatch.images      float32 (n, 3, H, W) in [0, 1]
    TrainBatch.labels      int64 (n,)
    TrainBatch.adv_images  float32 (n, 3, H, W) in [0, 1], the adversarial copy of each image
                           (PairedBatches only; None otherwise)
    TrainBatch.clean_rows  int64 (n,), the clean-split row of each image (paired batches only; None
                           otherwise), so a recipe can look up per-image values it computed once
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.distributed import SINGLE, DistContext, split_range
from defendr_cli.core.errors import InputError, MismatchError, MissingArtefactError
from defendr_cli.core.io.adversarial import AdvSetReader, read_adv_info
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.rows import RowRecord
from defendr_cli.core.workspace import Workspace


@dataclass
class TrainBatch(RowRecord):
    rows_of = "labels"

    images: torch.Tensor
    labels: torch.Tensor
    adv_images: torch.Tensor | None = None
    clean_rows: torch.Tensor | None = None


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed for (run seed, epoch, stream): independent of how the run was interrupted."""
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1)


class _Readers:
    """Lazily opened readers: index 0 the clean split, 1.. the adversarial sets (per process)."""

    def __init__(self, clean_path: Path, split: str, adv_paths: Sequence[Path]) -> None:
        self.clean_path, self.split, self.adv_paths = Path(clean_path), split, [Path(p) for p in adv_paths]
        self._stack: contextlib.ExitStack | None = None
        self._opened: list = []

    def get(self) -> list:
        if self._stack is None:
            self._stack = contextlib.ExitStack()
            self._opened = [self._stack.enter_context(SplitReader(self.clean_path, self.split))]
            clean = self._opened[0]
            for path in self.adv_paths:  # each set checked (schema, pixels, fingerprint) and aligned
                reader = self._stack.enter_context(AdvSetReader(path))
                reader.check_aligned(clean.info.fingerprint, clean.image_shape, clean.labels)
                self._opened.append(reader)
        return self._opened

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._opened = None, []

    def __getstate__(self) -> dict:  # worker processes reopen the files themselves
        return {"clean_path": self.clean_path, "split": self.split, "adv_paths": self.adv_paths,
                "_stack": None, "_opened": []}


class _PlannedBatches(torch.utils.data.Dataset):
    """Batch i of a fixed plan: rows[i] is an (n, 2) array of (source, row) pairs."""

    def __init__(self, readers: _Readers, plan: list[np.ndarray], paired: bool) -> None:
        self.readers, self.plan, self.paired = readers, plan, paired

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> TrainBatch:
        opened = self.readers.get()
        items = self.plan[i]
        if self.paired:
            return self._paired(opened, items)
        images, labels = [], []
        for source in np.unique(items[:, 0]):
            rows = items[items[:, 0] == source, 1]
            images.append(opened[source].read(rows))
            labels.append(torch.as_tensor(np.asarray(opened[source].labels)[rows], dtype=torch.int64))
        return TrainBatch(torch.cat(images), torch.cat(labels))

    @staticmethod
    def _paired(opened: list, items: np.ndarray) -> TrainBatch:
        clean, advs, labels, all_rows = [], [], [], []
        for source in np.unique(items[:, 0]):
            rows = items[items[:, 0] == source, 1]
            reader = opened[source]
            clean_rows = np.asarray(reader.clean_indices)[rows]
            advs.append(reader.read(rows))
            clean.append(opened[0].read(clean_rows))
            labels.append(torch.as_tensor(np.asarray(opened[0].labels)[clean_rows], dtype=torch.int64))
            all_rows.append(torch.as_tensor(clean_rows, dtype=torch.int64))
        return TrainBatch(torch.cat(clean), torch.cat(labels), torch.cat(advs), torch.cat(all_rows))


class BatchSource:
    """Batches of one epoch over a set of items (source, row); see module docstring.

    kind: 'clean' (rows of the clean split), 'doubled' (clean rows + every adversarial set's rows,
    shuffled together) or 'paired' (rows of the adversarial sets, each with its clean original).
    """

    def __init__(self, clean_path: Path, split: str, batch_size: int, *, kind: str = "clean",
                 adv_paths: Sequence[Path] = (), shuffle: bool = True, drop_last: bool = False,
                 workers: int = 0, dist: DistContext = SINGLE, pad_shards: bool = True) -> None:
        if kind not in ("clean", "doubled", "paired"):
            raise ValueError(f"unknown batch source kind {kind}")
        if kind != "clean" and not adv_paths:
            raise InputError(f"{kind} batches need at least one adversarial set (--adv)")
        self.readers = _Readers(clean_path, split, adv_paths if kind != "clean" else ())
        self.kind, self.batch_size, self.shuffle = kind, batch_size, shuffle
        self.drop_last, self.workers = drop_last, workers
        self.dist, self.pad_shards = dist, pad_shards
        opened = self.readers.get()
        items = []
        if kind in ("clean", "doubled"):
            items.append(np.stack([np.zeros(len(opened[0]), np.int64), np.arange(len(opened[0]))], 1))
        for source, reader in enumerate(opened[1:], start=1):
            items.append(np.stack([np.full(len(reader), source, np.int64), np.arange(len(reader))], 1))
        self.items = np.concatenate(items) if items else np.zeros((0, 2), np.int64)

    @property
    def num_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.num_items, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def plan(self, seed: int, epoch: int) -> list[np.ndarray]:
        order = np.arange(self.num_items)
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, stream=1))
            order = torch.randperm(self.num_items, generator=generator).numpy()
        return [self.items[order[i * self.batch_size:(i + 1) * self.batch_size]] for i in range(len(self))]

    def rank_plan(self, seed: int, epoch: int) -> list[np.ndarray]:
        """This rank's share of every batch of `plan` (the whole plan in a single process)."""
        plan = self.plan(seed, epoch)
        if not self.dist.is_distributed:
            return plan
        return [share for share in (shard_items(items, self.dist, pad=self.pad_shards) for items in plan)
                if len(share) or self.pad_shards]

    def epoch(self, seed: int, epoch: int) -> Iterator[TrainBatch]:
        dataset = _PlannedBatches(self.readers, self.rank_plan(seed, epoch), paired=self.kind == "paired")
        if self.workers == 0:
            for i in range(len(dataset)):
                yield dataset[i]
            return
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=self.workers,
                                             collate_fn=lambda batch: batch)
        yield from loader

    def close(self) -> None:
        self.readers.close()


def shard_items(items: np.ndarray, dist: DistContext, *, pad: bool) -> np.ndarray:
    """Rank `dist.rank`'s contiguous share of one batch's items (n, 2).

    pad=True: a batch of n items, n not a multiple of the world size W, is first extended to the
    next multiple by repeating its items from the start, so every rank gets the same number (>= 1).
    pad=False: exact contiguous split; shares differ by at most one item and may be empty.
    """
    world = dist.world_size
    if pad and len(items) % world:
        items = np.resize(items, (len(items) + (-len(items)) % world, items.shape[1]))
    start, stop = split_range(len(items), world, dist.rank)
    return items[start:stop]


def resolve_adv_sets(workspace: Workspace, refs: Sequence[str], *, split: str, clean_fingerprint: str | None,
                     method: str) -> list[Path]:
    """Paths of the adversarial sets named by `refs` (exact names, paths, or name prefixes such as
    'fgsm-eps0.12' matching '<prefix>-<model>-<split>'), checked to be aligned with the clean cache
    (same fingerprint) and made from `split`. MissingArtefactError names the attack command."""
    paths: list[Path] = []
    available = workspace.names("adv")
    for ref in refs:
        exact = ref in available or Path(ref).suffix == ".h5"
        if exact:
            matches = [workspace.resolve("adv", ref)]
        else:
            matches = [workspace.path_for("adv", n, create_dir=False) for n in available
                       if n.startswith(f"{ref}-") and n.endswith(f"-{split}")]
        if not matches:
            raise MissingArtefactError(
                f"no adversarial set '{ref}' of the {split} split in {workspace.adv_dir}",
                hint=f"make it with: defendr attack ... --split {split} (needed by `defendr train {method} --adv {ref}`)",
            )
        for path in matches:
            info = read_adv_info(path)
            if info.split != split:
                raise MismatchError(f"adversarial set '{path.stem}' is of the {info.split} split; "
                                    f"`train {method}` needs copies of the {split} split")
            if clean_fingerprint and info.clean_fingerprint != clean_fingerprint:
                made = f"fingerprint {info.clean_fingerprint}" if info.clean_fingerprint else "no recorded fingerprint"
                raise MismatchError(f"adversarial set '{path.stem}' was not made from this clean cache "
                                    f"({made}, expected {clean_fingerprint})")
            if path not in paths:
                paths.append(path)
    return paths
