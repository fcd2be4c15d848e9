"""Builds a small ImageNet-layout folder of real image files for prepare tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _pattern(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:height, 0:width]
    image = (base + 80 * np.sin(xx / (3 + seed % 5))[..., None] + 60 * np.cos(yy / 4)[..., None]) % 256
    return image.astype(np.uint8)


def make_imagenet_folder(root: Path, *, per_class: int = 6, with_problems: bool = True) -> Path:
    """root/train/<wnid>/ with `per_class` good JPEGs per class (varied sizes) plus, when asked:
    grayscale JPEG, CMYK JPEG, PNG (RGB), palette PNG, RGBA PNG, a truncated JPEG and a text file
    named .JPEG in class n00000002, and an empty class folder n00000004. Returns root/train."""
    train = root / "train"
    wnids = ["n00000001", "n00000002", "n00000003"]
    for c, wnid in enumerate(wnids):
        folder = train / wnid
        folder.mkdir(parents=True)
        for i in range(per_class):
            width, height = 40 + 7 * i, 30 + 5 * ((i + c) % 3)
            Image.fromarray(_pattern(100 * c + i, width, height)).save(folder / f"{wnid}_{i}.JPEG", quality=90)
    (train / "n00000004").mkdir()
    if with_problems:
        folder = train / "n00000002"
        Image.fromarray(_pattern(7, 50, 40)).convert("L").save(folder / "gray.JPEG")
        Image.fromarray(_pattern(8, 50, 40)).convert("CMYK").save(folder / "cmyk.JPEG")
        Image.fromarray(_pattern(9, 44, 44)).save(folder / "rgb.png")
        Image.fromarray(_pattern(10, 44, 44)).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "pal.png")
        rgba = Image.fromarray(_pattern(11, 44, 44)).convert("RGBA")
        rgba.putalpha(128)
        rgba.save(folder / "alpha.png")
        good = folder / "full.JPEG"
        Image.fromarray(_pattern(12, 64, 48)).save(good, quality=95)
        data = good.read_bytes()
        (folder / "truncated.JPEG").write_bytes(data[: len(data) // 2])
        good.unlink()
        (folder / "notes.JPEG").write_text("this is not an image\n")
        (folder / "readme.txt").write_text("ignored: not an image suffix\n")
    return train


def make_class_folders(root: Path, classes: list[str], *, per_class: int = 4, suffix: str = ".jpg") -> Path:
    """root/<class>/img_<i><suffix> with `per_class` small images each (varied sizes); returns root.
    Image i of class c has a flat colour (10 * c + 1, 20 * i + 1, 7) so tests can tell them apart."""
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (24 + 3 * i, 18 + 2 * c), flat_colour(c, i)).save(folder / f"img_{i}{suffix}")
    return root


def flat_colour(c: int, i: int) -> tuple[int, int, int]:
    return (10 * c + 1, 20 * i + 1, 7)


def save_flat(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    """A flat-colour image file of `size` (w, h); the format follows the suffix."""
    Image.new("RGB", size, colour).save(path)
    return path
