"""An ImageNet-layout folder (`train/<wnid>/*.JPEG`) as an image source: classes, files, decoding.

`decode_image` is the per-file work run in a process pool: open with PIL, use JPEG draft mode
(the decoder itself downsamples by 1/2, 1/4 or 1/8 while keeping every side >= the target),
convert any mode (grayscale, CMYK, palette, RGBA, 16-bit) to RGB, resize with antialiasing,
and return uint8 (3, S, S). Any failure comes back as a short reason instead of an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile

from defendr_cli.core.errors import InputError, SourceError

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never silently grey
Image.MAX_IMAGE_PIXELS = 20_000 * 20_000  # refuse decompression bombs beyond this


@dataclass(frozen=True)
class DecodeResult:
    """image uint8 (3,S,S) on success, else `reason` says why the file was skipped."""

    path: str
    image: np.ndarray | None
    reason: str = ""


def train_folder(source: Path) -> Path:
    """The folder holding <wnid>/ class folders: `source` itself or `source/train`."""
    source = Path(source).expanduser()
    if not source.is_dir():
        raise SourceError(f"image source {source} is not a folder (use --source synthetic or an ImageNet train/ folder)")
    nested = source / "train"
    if nested.is_dir() and _class_dirs(nested):  # an ImageNet root holding train/ (and val/...)
        return nested
    return source


def _class_dirs(folder: Path) -> list[str]:
    """Sub-folder names, sorted; hidden ones and symlinks back to `folder` or above it (loops) left out."""
    here = folder.resolve()
    names = []
    for p in folder.iterdir():
        if p.name.startswith(".") or not p.is_dir():
            continue
        if p.is_symlink() and (p.resolve() == here or p.resolve() in here.parents):
            continue
        names.append(p.name)
    return sorted(names)


def printable(text: str) -> str:
    """`text` with bytes that are not UTF-8 (a file name from another encoding) shown as \\xNN escapes,
    so that it can be stored in a cache and printed."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def list_classes(folder: Path) -> list[str]:
    """Class folder names (wnids) in sorted order = ImageNet class index order."""
    wnids = _class_dirs(folder)
    if not wnids:
        raise SourceError(f"no class folders in {folder} (expected train/<wnid>/*.JPEG)")
    return wnids


def read_class_list(path: Path) -> list[str]:
    """wnids from a file, one per line (blank lines and '#' comments ignored; first word of a line)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"--class-list file {path} does not exist")
    wnids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            wnids.append(line.split()[0])
    if not wnids:
        raise InputError(f"--class-list file {path} names no classes")
    duplicates = sorted({w for w in wnids if wnids.count(w) > 1})
    if duplicates:
        raise InputError(f"--class-list names {', '.join(duplicates)} more than once")
    return wnids


def select_classes(available: list[str], classes: int | None, class_list: list[str] | None) -> list[str]:
    """The first `classes` sorted wnids, or exactly `class_list` (in its given order)."""
    if class_list is not None:
        missing = [w for w in class_list if w not in set(available)]
        if missing:
            raise SourceError(f"classes in --class-list not found in the source: {', '.join(missing[:5])}"
                              + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        if classes is not None and classes != len(class_list):
            raise InputError(f"--classes {classes} disagrees with the {len(class_list)} classes of --class-list")
        return list(class_list)
    count = 201 if classes is None else classes
    if count < 1:
        raise InputError(f"--classes must be at least 1, not {count}")
    if count > len(available):
        raise SourceError(f"--classes {count} asked for, but the source has only {len(available)} class folders")
    return available[:count]


def list_images(class_dir: Path) -> list[Path]:
    """Image files of one class (by suffix, any case), sorted by name."""
    return sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = max(float(array.max()), 1.0)
        image = Image.fromarray((array * (255.0 / (65535.0 if peak > 255 else 255.0))).clip(0, 255).astype(np.uint8))
    return image.convert("RGB")


def _draft_size(width: int, height: int, size: int, resize: str) -> tuple[int, int]:
    """The smallest (w, h) the JPEG decoder may reduce to and still resize without upsampling."""
    if resize == "center-crop":
        scale = size / min(width, height)
        return math.ceil(width * scale), math.ceil(height * scale)
    return size, size


def decode_image(path: str, size: int, resize: str = "stretch") -> DecodeResult:
    """Decode one file to uint8 (3, size, size); resize 'stretch' (aspect not kept, the paper's
    rule) or 'center-crop' (short side to `size`, then the central square)."""
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", _draft_size(*image.size, size, resize))
            image.load()
            array = np.array(_to_rgb(image), dtype=np.uint8)  # (h, w, 3), writable
    except Image.DecompressionBombError:
        return DecodeResult(path, None, f"image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels: PIL's "
                                        f"decompression-bomb guard)")
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as exc:
        return DecodeResult(path, None, _reason(exc))
    return DecodeResult(path, resize_uint8(array, size, resize))


def resize_uint8(array: np.ndarray, size: int, resize: str = "stretch") -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (3, size, size): antialiased bilinear (torch's uint8 SIMD path, several
    times faster than PIL's), 'stretch' or 'center-crop' (short side to `size`, central square)."""
    h, w = array.shape[:2]
    if resize == "center-crop":
        scale = size / min(w, h)
        new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    else:
        new_h, new_w = size, size
    tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)  # channels-last strides: the fast path
    if (new_h, new_w) != (h, w):
        tensor = torch.nn.functional.interpolate(tensor, size=(new_h, new_w), mode="bilinear", antialias=True,
                                                 align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(tensor[0, :, top:top + size, left:left + size].numpy())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return exc.strerror  # an error of the file itself (loop, I/O error...), not of its content
    text = str(exc)
    if isinstance(exc, Image.UnidentifiedImageError) or "cannot identify" in text:
        return "not an image"
    if "truncated" in text:
        return "truncated image"
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:80]


def init_worker() -> None:
    """Pool initializer: one torch thread per decoding process (the pool is the parallelism)."""
    torch.set_num_threads(1)


def decode_task(args: tuple[str, int, str]) -> DecodeResult:
    """Pool entry point: decode_image(*args)."""
    return decode_image(*args)
