"""PNG figures of a report (matplotlib, Agg backend): confusion matrix (paper Figure 15),
accuracy vs eps per model, adaptive vs transfer bars. Each function writes one file atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from defendr_cli.core.atomic import atomic_path  # noqa: E402
from defendr_cli.core.evaluation.report.adaptive_tables import ComparisonRow  # noqa: E402


def _save(fig, path: Path) -> Path:
    """Write `fig` atomically as PNG and release it (also when saving fails)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def confusion_png(matrix: list[list[int]], class_names: list[str], path: Path, *, title: str) -> Path:
    """Rows: prediction on the clean image; columns: prediction on its adversarial copy."""
    counts = np.asarray(matrix, dtype=np.float64)
    k = len(counts)
    size = min(12.0, 3.0 + 0.25 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(np.log1p(counts), cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, label="log(1 + images)")
    ax.set_ylabel("predicted class (clean image)")
    ax.set_xlabel("predicted class (adversarial image)")
    ax.set_title(title)
    if k <= 30:
        ax.set_xticks(range(k), [n[:12] for n in class_names], rotation=90, fontsize=7)
        ax.set_yticks(range(k), [n[:12] for n in class_names], fontsize=7)
    return _save(fig, path)


def accuracy_vs_eps_png(curves: dict[str, list[tuple[float, float]]], path: Path, *, title: str) -> Path:
    """One line per curve name: points (eps in pixel units, accuracy in [0, 1])."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        points = sorted(points)
        ax.plot([255 * e for e, _ in points], [100 * a for _, a in points], marker="o", label=name)
    ax.set_xlabel("eps (x/255, pixel units)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def comparison_bars_png(rows: list[ComparisonRow], path: Path, *, title: str) -> Path:
    """Grouped bars: transfer vs adaptive accuracy (in [0, 1]) per (model, set) row."""
    labels = [f"{r.model}\n{r.set}" for r in rows]
    transfer = [100 * (r.transfer or 0.0) for r in rows]
    adaptive = [100 * (r.adaptive or 0.0) if r.adaptive is not None else np.nan for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.5))
    ax.bar(x - 0.2, transfer, 0.4, label="transfer (paper protocol)")
    ax.bar(x + 0.2, adaptive, 0.4, label="adaptive white-box")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)
