"""Run a model over a clean split or an adversarial set once, and cache the predictions on disk.

Predictions are cached per (model key, set key) as small .npz files under
`reports/_predictions/`, so re-rendering a report or adding a model never recomputes what is known.
A model key carries the checkpoint fingerprint, the evaluation-time defense, precision and seed;
a set key carries the clean cache fingerprint and split, or the adversarial file's fingerprint.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.errors import ArtefactBusyError, CorruptArtefactError
from defendr_cli.core.io.prediction_file import read_prediction_file, write_prediction_file
from defendr_cli.core.progress import NullReporter, Reporter, saved_for_test
from defendr_cli.core.runtime import Runtime

PREDICTIONS_DIRNAME = "_predictions"


class BatchLike(Protocol):
    images: torch.Tensor  # float32 (n, 3, H, W) in [0, 1]
    labels: torch.Tensor  # int64 (n,)
    indices: torch.Tensor  # int64 (n,), rows of the clean split


@dataclass(frozen=True)
class Predictions:
    """Predicted classes of one model on one set, aligned by clean-split row.

    preds, labels, indices: int64 arrays (N,), sorted by `indices` (clean split rows).
    """

    preds: np.ndarray
    labels: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.preds)

    def on_rows(self, rows: np.ndarray) -> "Predictions":
        """The predictions for the given clean-split rows (each must be present), in that order."""
        positions = np.searchsorted(self.indices, rows)
        ok = (positions < len(self.indices)) & (self.indices[np.minimum(positions, len(self.indices) - 1)] == rows)
        if not np.all(ok):
            missing = np.asarray(rows)[~ok][:5].tolist()
            raise CorruptArtefactError(f"predictions lack clean rows {missing}")
        return Predictions(self.preds[positions], self.labels[positions], self.indices[positions])


@contextlib.contextmanager
def seeded_randomness(seed: int, runtime: Runtime):
    """Fix torch's global RNG (CPU and the runtime's CUDA device) inside the block, restore it after.

    Randomized defenses draw from the global RNG, so evaluating them under the same seed gives
    the same numbers (the eps=0 sanity check relies on this).
    """
    devices = [runtime.device] if runtime.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def is_stochastic(module: torch.nn.Module, images: torch.Tensor) -> bool:
    """True when two forward passes on the same images (N,3,H,W) in [0,1] differ (a randomized defense)."""
    module.eval()
    first, second = module(images), module(images)
    return not torch.allclose(first.float(), second.float(), atol=1e-4, rtol=1e-4)


def predict(
    model: torch.nn.Module,
    batches: Iterable[BatchLike],
    runtime: Runtime,
    *,
    seed: int = 0,
    total: int | None = None,
    reporter: Reporter | None = None,
    description: str = "predict",
) -> Predictions:
    """argmax of `model` over every batch (model in eval mode, seeded randomness, no graph kept).

    The three int64 columns are written into arrays sized once (`total` rows when given, doubled when
    a batch would overflow), not kept as one small array per batch: glibc serves small arrays from the
    heap, whose top only moves down when everything above it is freed, so thousands of per-batch
    arrays interleaved with the batches' image buffers made resident memory grow with the split."""
    reporter = reporter or NullReporter()
    model.eval()
    columns = _Columns(total or 0)
    with seeded_randomness(seed, runtime), reporter.task(description, total=total) as task:
        for batch in batches:
            with runtime.autocast():
                logits = model(runtime.to_device(batch.images))
            columns.append(logits.argmax(dim=1).cpu().numpy(), batch.labels, batch.indices)
            task.advance(len(batch.labels))
    return _sorted_predictions(*([column] for column in columns.filled()))


class _Columns:
    """Three int64 columns (preds, labels, indices) filled batch by batch into preallocated arrays."""

    def __init__(self, capacity: int) -> None:
        self.rows = 0
        self.data = np.zeros((3, max(int(capacity), 0)), dtype=np.int64)

    def append(self, preds: Any, labels: Any, indices: Any) -> None:
        n = len(preds)
        if self.rows + n > self.data.shape[1]:
            grown = np.zeros((3, max(2 * self.data.shape[1], self.rows + n)), dtype=np.int64)
            grown[:, :self.rows] = self.data[:, :self.rows]
            self.data = grown
        end = self.rows + n
        self.data[0, self.rows:end] = np.asarray(preds, dtype=np.int64)
        self.data[1, self.rows:end] = np.asarray(labels, dtype=np.int64)
        self.data[2, self.rows:end] = np.asarray(indices, dtype=np.int64)
        self.rows = end

    def filled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(self.data[k, :self.rows].copy() for k in range(3))


def _sorted_predictions(preds: list, labels: list, indices: list) -> Predictions:
    """Predictions from per-part int arrays, concatenated and sorted by clean-split row."""
    if not preds or not sum(len(p) for p in preds):
        empty = np.zeros(0, dtype=np.int64)
        return Predictions(empty, empty, empty)
    p, y, i = (np.concatenate(x).astype(np.int64) for x in (preds, labels, indices))
    order = np.argsort(i, kind="stable")
    return Predictions(p[order], y[order], i[order])


def safe_key(*parts: Any) -> str:
    """A filename-safe key joined from parts ('baseline', 'ab12', None -> 'baseline-ab12-none')."""
    text = "-".join("none" if p is None else str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


class PredictionCache:
    """Predictions on disk under `folder`, one .npz per (model key, set key)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    def path(self, model_key: str, set_key: str) -> Path:
        return self.folder / f"{model_key}__{set_key}.npz"

    def load(self, model_key: str, set_key: str) -> Predictions | None:
        path = self.path(model_key, set_key)
        arrays = read_prediction_file(path)  # checked, never unpickled (core/io/prediction_file.py)
        if arrays is None:
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)  # a damaged cache entry is recomputed, never trusted
            return None
        return Predictions(*arrays)

    def store(self, model_key: str, set_key: str, predictions: Predictions) -> None:
        """Save one entry; skipped when another process (e.g. another torchrun rank) is writing the
        same entry right now: the key fixes the content, so its copy is as good as ours. Skipped too
        when a folder sits at the entry's path (the predictions are still returned, just not cached)."""
        if self.path(model_key, set_key).is_dir():
            return
        try:
            with atomic_path(self.path(model_key, set_key)) as tmp, open(tmp, "wb") as handle:
                write_prediction_file(handle, predictions.preds, predictions.labels, predictions.indices)
        except ArtefactBusyError:
            return

    def get_or_compute(self, model_key: str, set_key: str, compute) -> Predictions:
        """Cached predictions, or `compute()` stored then returned."""
        cached = self.load(model_key, set_key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        predictions = compute()
        self.store(model_key, set_key, predictions)
        saved_for_test()
        return predictions
