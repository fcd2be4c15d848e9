"""Preview grid of an adversarial set (the paper's Figures 6-9), written beside the set as PNG.

Rows are the first few examples; columns: clean image, adversarial image, perturbation
amplified to the full range (0.5 + (adv - clean) / (2 * max|adv - clean|)), with the source
model's predicted class names on the clean and adversarial images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defendr_cli.core.atomic import atomic_path
from defendr_cli.core.io.adversarial import read_adv_head
from defendr_cli.core.io.reader import SplitReader

PREVIEW_ROWS = 4


def preview_path(set_path: Path) -> Path:
    """adv/<name>.h5 -> adv/<name>.png"""
    return Path(set_path).with_suffix(".png")


def amplified(perturbation: np.ndarray) -> np.ndarray:
    """(H, W, 3) perturbation in [-1, 1] -> image in [0, 1] with 0 at mid-grey, max |.| at 0 or 1."""
    scale = float(np.abs(perturbation).max())
    if scale == 0.0:
        return np.full_like(perturbation, 0.5)
    return np.clip(0.5 + perturbation / (2.0 * scale), 0.0, 1.0)


def write_preview(set_path: Path, clean_reader: SplitReader, class_names: list[str], rows: int = PREVIEW_ROWS) -> Path:
    """Draw the grid for the set at `set_path` (clean rows from `clean_reader`, a SplitReader)."""
    import matplotlib  # heavy optional import: loaded only when a preview is drawn

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    info, adv_images, columns = read_adv_head(set_path, rows, ("clean_indices", "clean_pred", "adv_pred"))
    count = adv_images.shape[0]
    adv = adv_images.numpy()
    clean = clean_reader.read(columns["clean_indices"]).numpy()
    clean_pred, adv_pred = columns["clean_pred"], columns["adv_pred"]

    def name(k: int) -> str:
        return class_names[k] if 0 <= k < len(class_names) else str(k)

    fig, axes = plt.subplots(max(count, 1), 3, figsize=(7.5, 2.6 * max(count, 1)), squeeze=False)
    for r in range(count):
        clean_img = clean[r].transpose(1, 2, 0)
        adv_img = adv[r].transpose(1, 2, 0)
        panels = [(clean_img, f"clean: {name(int(clean_pred[r]))}"),
                  (adv_img, f"adversarial: {name(int(adv_pred[r]))}"),
                  (amplified(adv_img - clean_img), "perturbation (amplified)")]
        for c, (image, title) in enumerate(panels):
            axes[r][c].imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            axes[r][c].set_title(title, fontsize=8)
            axes[r][c].axis("off")
    fig.suptitle(info.summary or info.name, fontsize=8, wrap=True)
    fig.tight_layout()
    out = preview_path(set_path)
    with atomic_path(out, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
