"""Which kind of image source a `--source` path is, from the files it holds.

Kinds: 'synthetic' (the word itself), 'cifar10-bin', 'cifar10-py', 'cifar100-bin', 'cifar100-py'
(the folder, or its one unpacked CIFAR subfolder such as cifar-10-batches-py/), 'imagenet' (class
folders, in the folder or its train/, all named like wnids n01440764), 'folder' (class folders
with any other names). A class folder is a subfolder holding at least one image file.

    detect_format(source) -> DetectedSource(kind, path)
    resolve_source(source, fmt="auto"|"imagenet"|"folder"|"cifar10"|"cifar100"|"synthetic") -> DetectedSource
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from defendr_cli.core.data.cifar_source import CIFAR_LAYOUTS
from defendr_cli.core.data.imagenet_source import IMAGE_SUFFIXES
from defendr_cli.core.errors import InputError, SourceError

SOURCE_KINDS = ("synthetic", "imagenet", "folder", "cifar10-bin", "cifar10-py", "cifar100-bin", "cifar100-py")
FORMAT_CHOICES = ("auto", "imagenet", "folder", "cifar10", "cifar100", "synthetic")
WNID = re.compile(r"^n\d{8}$")
_SHOW = 4


@dataclass(frozen=True)
class DetectedSource:
    """kind: one of SOURCE_KINDS; path: the folder to read (None for synthetic)."""

    kind: str
    path: Path | None


def _cifar_kind(folder: Path) -> str | None:
    for kind, layout in CIFAR_LAYOUTS.items():
        if all((folder / name).is_file() for name in (*layout.train, *layout.test)):
            return kind
    return None


def _has_image(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(Path(e.name).suffix.lower() in IMAGE_SUFFIXES and e.is_file() for e in entries)
    except OSError:
        return False


def _class_folders(folder: Path) -> list[str]:
    try:
        subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []
    return sorted(p.name for p in subdirs if _has_image(p))


def _found(folder: Path) -> str:
    """'3 files (a.txt, b.csv, c.bin), 2 folders without images (x, y)' for error messages."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        return f"an unreadable folder ({exc.strerror or exc})"
    if not entries:
        return "an empty folder"
    files = [p.name for p in entries if p.is_file()]
    dirs = [p.name for p in entries if p.is_dir()]
    parts = []
    for count, what, names in ((len(files), "file(s)", files), (len(dirs), "folder(s) without images", dirs)):
        if count:
            shown = ", ".join(names[:_SHOW]) + (", ..." if count > _SHOW else "")
            parts.append(f"{count} {what} ({shown})")
    return " and ".join(parts) or "no files or folders"


def detect_format(source: str | Path) -> DetectedSource:
    """The kind of `source`; SourceError (one line, naming what was found) when nothing matches."""
    if str(source) == "synthetic":
        return DetectedSource("synthetic", None)
    folder = Path(source).expanduser()
    if folder.is_file():
        raise SourceError(f"{folder} is a file, not a folder: unpack the archive first (e.g. tar xzf) and pass "
                          f"the folder it makes")
    if not folder.is_dir():
        raise SourceError(f"image source {folder} does not exist (use --source synthetic or a data folder)")
    kind = _cifar_kind(folder)
    if kind is not None:
        return DetectedSource(kind, folder)
    nested = [(k, folder / layout.folder_name) for k, layout in CIFAR_LAYOUTS.items()
              if (folder / layout.folder_name).is_dir() and _cifar_kind(folder / layout.folder_name) == k]
    if len(nested) == 1:
        return DetectedSource(*nested[0])
    if len(nested) > 1:
        raise SourceError(f"{folder} holds several CIFAR versions ({', '.join(p.name for _, p in nested)}): "
                          f"pass the one you mean as --source")
    for candidate in (folder / "train", folder):
        classes = _class_folders(candidate) if candidate.is_dir() else []
        if classes:
            kind = "imagenet" if all(WNID.match(c) for c in classes) else "folder"
            return DetectedSource(kind, folder)
    raise SourceError(f"cannot tell what {folder} holds: found {_found(folder)}; expected CIFAR-10/100 files, "
                      f"an ImageNet train/<wnid>/ layout or <class>/ folders of images (see --format)")


def resolve_source(source: str | Path, fmt: str = "auto") -> DetectedSource:
    """`source` read as `fmt` ('auto' detects; 'cifar10' / 'cifar100' detect the binary or python version).

    Raises InputError for an unknown `fmt`, SourceError when the files do not match it.
    """
    if fmt not in FORMAT_CHOICES:
        raise InputError(f"unknown --format '{fmt}': use one of {', '.join(FORMAT_CHOICES)}")
    if fmt == "synthetic" or (fmt == "auto" and str(source) == "synthetic"):
        if str(source) != "synthetic":
            raise InputError(f"--format synthetic takes --source synthetic, not {source}")
        return DetectedSource("synthetic", None)
    if fmt in ("imagenet", "folder"):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise SourceError(f"image source {folder} is not a folder (use --source synthetic or a data folder)")
        return DetectedSource(fmt, folder)
    detected = detect_format(source)
    if fmt != "auto" and not detected.kind.startswith(fmt + "-"):
        raise SourceError(f"--format {fmt} given, but {source} looks like {detected.kind}")
    return detected
