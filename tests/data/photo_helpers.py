"""A tiny ImageNet-layout folder of real photographs (scikit-image's data module ships them).

One photograph per class (astronaut, cat, coffee cup, rocket, motorcycle, ...), `per_class` different
crops of it saved as JPEG under root/train/<wnid>/, so the images are real camera pictures with
real texture statistics, not drawn patterns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "retina")


def _photo(name: str) -> np.ndarray:
    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo pairs and the like: the first picture
        image = image[0]
    return np.asarray(image[..., :3], dtype=np.uint8)


def _crops(image: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` overlapping crops of 3/4 of each side, from the top-left corner towards the bottom-right."""
    height, width = image.shape[:2]
    h, w = 3 * height // 4, 3 * width // 4
    steps = max(1, count - 1)
    return [image[(height - h) * i // steps:(height - h) * i // steps + h,
                  (width - w) * i // steps:(width - w) * i // steps + w] for i in range(count)]


def make_photo_imagenet_folder(root: Path, *, classes: int = 4, per_class: int = 3) -> Path:
    """root/train/n0000000<c>/ with `per_class` JPEG crops of photograph c; returns root/train."""
    if classes > len(PHOTOS):
        raise ValueError(f"only {len(PHOTOS)} photographs are available")
    train = Path(root) / "train"
    for c, name in enumerate(PHOTOS[:classes]):
        folder = train / f"n{c + 1:08d}"
        folder.mkdir(parents=True)
        for i, crop in enumerate(_crops(_photo(name), per_class)):
            Image.fromarray(crop).save(folder / f"n{c + 1:08d}_{i}.JPEG", quality=92)
    return train
