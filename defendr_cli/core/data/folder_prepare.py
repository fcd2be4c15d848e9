"""`prepare` from a generic class-folder layout: root/<class name>/*.jpg|png (or root/train/<class>/...).

Class names are the folder names, any names at all (spaces, accents, other scripts), in sorted
order; they are both the class ids and the class names of the cache. Everything else is the
ImageNet path: the same seeded choice of images per class, the same decoding pool and resizing,
unreadable files skipped, listed and replaced, short classes refused unless allow_short.
"""

from __future__ import annotations

from pathlib import Path

from defendr_cli.core.data.imagenet_prepare import prepare_class_folders
from defendr_cli.core.data.imagenet_source import list_classes, read_class_list, select_classes, train_folder
from defendr_cli.core.data.prepare import PrepareResult, cache_name, check_class_count, check_image_size
from defendr_cli.core.data.splits import SplitSpec, parse_split
from defendr_cli.core.errors import InputError
from defendr_cli.core.io.cache import RESIZE_RULES
from defendr_cli.core.progress import Reporter
from defendr_cli.core.workspace import Workspace


def prepare_folder(workspace: Workspace, source: Path, *, classes: int | None = None,
                   class_list: Path | None = None, per_class: int | None = 70,
                   split: SplitSpec | str | None = None, image_size: int = 299, resize: str = "stretch",
                   seed: int = 0, workers: int | None = None, allow_short: bool = False, force: bool = False,
                   reporter: Reporter | None = None, name: str | None = None,
                   path: Path | None = None) -> PrepareResult:
    """Build `data/<name>.h5` from class folders in `source` (or `source/train`).

    classes: the first N class folders in sorted order (default: all of them), or the names of
    `class_list` (a file, one name per line); per_class, split, image_size (pixels), resize
    ('stretch' | 'center-crop'), seed, workers and allow_short as for prepare_imagenet. Raises
    InputError for fewer than 2 classes or bad values, SourceError for an unusable folder or a
    short class, ArtefactExistsError when the cache exists and `force` is False.
    """
    if resize not in RESIZE_RULES:
        raise InputError(f"unknown --resize '{resize}': use {' or '.join(RESIZE_RULES)}")
    check_image_size(image_size)
    spec = split if isinstance(split, SplitSpec) else parse_split(split, per_class)
    folder = train_folder(source)
    available = list_classes(folder)
    chosen = select_classes(available, len(available) if classes is None and class_list is None else classes,
                            read_class_list(class_list) if class_list is not None else None)
    check_class_count(len(chosen))
    kind = "folder" if class_list is None else "folder-list"
    name = name or cache_name(kind, len(chosen), spec.per_class, image_size, resize=resize, seed=seed)
    out = Path(path) if path is not None else workspace.path_for("data", name)
    return prepare_class_folders(folder, chosen, list(chosen), out, spec=spec, image_size=image_size,
                                 resize=resize, seed=seed, workers=workers, allow_short=allow_short, force=force,
                                 reporter=reporter, source=f"class folders {folder.resolve()}", source_kind="folder",
                                 notes=["class ids and names are the class folder names, in sorted order"])
