"""PNG grids of paired Grad-CAM maps (paper Figures 12-14): one row per image.

Columns: clean image | clean heat map overlay (predicted class) | adversarial image |
adversarial overlay (predicted class) | difference of the maps (adversarial - clean, in [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from defendr_cli.core.atomic import atomic_path  # noqa: E402


@dataclass
class PairedCam:
    """One row: images (3, H, W) in [0, 1], maps (H, W) in [0, 1], class names."""

    clean: np.ndarray
    adv: np.ndarray
    clean_map: np.ndarray
    adv_map: np.ndarray
    true_name: str
    clean_pred: str
    adv_pred: str
    row: int


def _hwc(image: np.ndarray) -> np.ndarray:
    return np.clip(np.transpose(image, (1, 2, 0)), 0, 1)


def paired_grid_png(rows: list[PairedCam], path: Path, *, title: str) -> Path:
    """Write the grid of `rows` to `path` (atomically) and return it."""
    fig, axes = plt.subplots(len(rows), 5, figsize=(12.5, 2.6 * len(rows) + 0.6), squeeze=False)
    for i, r in enumerate(rows):
        cells = [
            (_hwc(r.clean), None, f"#{r.row} true: {r.true_name}"),
            (_hwc(r.clean), r.clean_map, f"clean -> {r.clean_pred}"),
            (_hwc(r.adv), None, "adversarial"),
            (_hwc(r.adv), r.adv_map, f"adv -> {r.adv_pred}"),
        ]
        for j, (image, heat, label) in enumerate(cells):
            ax = axes[i][j]
            ax.imshow(image, interpolation="nearest")
            if heat is not None:
                ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
            ax.set_title(label[:40], fontsize=8)
            ax.axis("off")
        ax = axes[i][4]
        ax.imshow(r.adv_map - r.clean_map, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="bilinear")
        ax.set_title("difference (adv - clean)", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the title
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            fig.savefig(handle, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path
