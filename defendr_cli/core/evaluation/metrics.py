"""Accuracy metrics over predicted and true class indices (numpy int arrays, one entry per image).

Accuracies are fractions in [0, 1]; the report formats them as percentages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from defendr_cli.core.errors import MismatchError


def _check_same_length(*arrays: np.ndarray) -> None:
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise MismatchError(f"prediction arrays differ in length: {sorted(lengths)}")


def accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of `preds == labels` (both int arrays of shape (N,)); NaN for N == 0."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    _check_same_length(preds, labels)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(preds == labels))


def per_class_accuracy(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each true class, shape (num_classes,); NaN where a class has no images."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    _check_same_length(preds, labels)
    totals = np.bincount(labels, minlength=num_classes).astype(np.float64)
    hits = np.bincount(labels[preds == labels], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def confusion_matrix(rows: np.ndarray, cols: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): entry [i, j] = number of images with rows==i, cols==j.

    For the paper's Figure 15, rows are predictions on clean images and cols predictions on
    their adversarial copies.
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    _check_same_length(rows, cols)
    flat = np.bincount(rows * num_classes + cols, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def half_mask(count: int, seed: int) -> np.ndarray:
    """Boolean (count,) with exactly count // 2 True entries at seeded positions.

    The same (count, seed) always gives the same mask, whatever model is evaluated, so every
    model sees the same "50% adversarial" test set.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, count, 50]))
    mask = np.zeros(count, dtype=bool)
    mask[rng.permutation(count)[: count // 2]] = True
    return mask


def mixed_accuracy(clean_preds: np.ndarray, adv_preds: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Accuracy on the "50% adversarial" set: a seeded half of the rows take the adversarial prediction.

    All three arrays are aligned (row i of each is the same test image).
    """
    clean_preds, adv_preds, labels = map(np.asarray, (clean_preds, adv_preds, labels))
    _check_same_length(clean_preds, adv_preds, labels)
    mask = half_mask(len(labels), seed)
    return accuracy(np.where(mask, adv_preds, clean_preds), labels)


@dataclass(frozen=True)
class ClassScore:
    """One class's accuracy for Tables 5-6: index, name, accuracy in [0, 1], images counted."""

    index: int
    name: str
    accuracy: float
    count: int


def best_and_worst_classes(
    preds: np.ndarray, labels: np.ndarray, class_names: list[str], k: int = 10
) -> tuple[list[ClassScore], list[ClassScore]]:
    """The k most and k least accurate classes (classes without images are skipped).

    Ties are broken by class index so the tables are deterministic. When there are fewer than
    2k classes, k shrinks to half of them so the two tables do not repeat classes.
    """
    num_classes = len(class_names)
    per_class = per_class_accuracy(preds, labels, num_classes)
    counts = np.bincount(np.asarray(labels), minlength=num_classes)
    present = [i for i in range(num_classes) if counts[i] > 0]
    k = min(k, max(1, len(present) // 2))
    scores = [ClassScore(i, class_names[i], float(per_class[i]), int(counts[i])) for i in present]
    best = sorted(scores, key=lambda s: (-s.accuracy, s.index))[:k]
    worst = sorted(scores, key=lambda s: (s.accuracy, s.index))[:k]
    return best, worst


def eps_scalar(eps: object) -> float:
    """A number for plotting or sorting an eps that may be per-channel (mean of the channels)."""
    if isinstance(eps, (list, tuple, np.ndarray, torch.Tensor)):
        return float(np.mean(np.asarray(eps, dtype=np.float64)))
    return float(eps)
