"""The schema of an adversarial set (`adv/<name>.h5`, layout in core/io/adversarial.py): its
attributes (`adv_set_fields`), its datasets (`check_adv_layout`), its pixel values
(`check_pixels`) and its alignment with a clean split (`check_adv_aligned`).

Each check raises ONE error that names the file: CorruptArtefactError when the set contradicts
itself (a string where the format version is, `complete='no'`, NaN or 7.0 pixels, duplicate or
negative clean rows, a group where a dataset is), MismatchError when it is sound but made for
another clean cache (other fingerprint, image size, rows or labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from defendr_cli.core.errors import CorruptArtefactError, MismatchError
from defendr_cli.core.io.adv_fingerprint import DONE_DIGEST_ATTR, FINGERPRINT_ATTR
from defendr_cli.core.io.schema import Fields, check_dataset

ADV_FORMAT = "defendr-adv-set"
ADV_FORMAT_VERSION = 1
STORAGE_DTYPES = ("float16", "uint8")
PER_ROW = ("labels", "clean_indices", "success", "clean_pred", "adv_pred", "targets")
_PER_ROW_KINDS = {"labels": "iu", "clean_indices": "iu", "success": "b", "clean_pred": "iu", "adv_pred": "iu",
                  "targets": "iu"}


@dataclass(frozen=True, kw_only=True)
class AttackRunSettings:
    """How an attack ran besides its eps: what the attack stage takes (`AttackStageConfig`,
    core/stages/attack_config.py) and what an adversarial set records (`AdvSetInfo`).

    steps, step_size, random_start, restarts: None for an attack without the option (in a stage
    config before validation: the attack's default). step_size is in the config's eps space there,
    in pixel units (a per-channel list where eps is one) in a set. label_mode: 'true' | 'predicted';
    targeted: 'none' | 'random' | 'least-likely'; loss: the attack's objective ('ce' unless the
    attack takes another).
    """

    steps: int | None = None
    step_size: float | list[float] | None = None
    random_start: bool | None = None
    restarts: int | None = None
    label_mode: str = "true"
    targeted: str = "none"
    loss: str = "ce"


@dataclass(frozen=True, kw_only=True)
class AdvSetInfo(AttackRunSettings):
    """The attributes of an adversarial set. eps in pixel units (float, or per-channel list); the
    run's settings are the AttackRunSettings fields."""

    name: str
    path: Path
    attack: str
    eps: float | list[float]
    eps_label: str
    eps_space: str
    split: str
    source_model: str
    source_model_fingerprint: str
    clean_fingerprint: str
    success_rate: float
    dtype: str
    count: int
    seed: int
    clean_cache: str = ""
    image_size: int = 0
    clean_accuracy: float | None = None
    adv_accuracy: float | None = None
    summary: str = ""
    content_fingerprint: str = ""
    format_version: int = ADV_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["path"] = str(self.path)
        out.update(self.extra)
        return out


_BOOKKEEPING = ("format", "complete", "done", DONE_DIGEST_ATTR)  # file-format attributes, not settings


def adv_set_fields(path: Path, attrs: dict[str, Any], *, need_complete: bool = True) -> AdvSetInfo:
    """The schema of an adversarial set's attributes: the AdvSetInfo they describe, or ONE
    CorruptArtefactError naming the file and the attribute (foreign format, other version,
    incomplete, a value of the wrong type: a string version, `complete='no'`, a NaN eps...)."""
    schema = Fields(path, attrs, "adversarial set")
    if attrs.get("format") != ADV_FORMAT:
        raise CorruptArtefactError(f"{path} is not a Defendr adversarial set (format {attrs.get('format')!r})")
    version = schema.integer("format_version")
    if version != ADV_FORMAT_VERSION:
        raise CorruptArtefactError(f"{path} has adversarial-set format version {version}; this build reads "
                                   f"{ADV_FORMAT_VERSION}")
    complete = schema.flag("complete", False)
    if need_complete and not complete:
        raise CorruptArtefactError(f"{path} is an incomplete adversarial set",
                                   hint="finish it with: defendr attack ... --resume")
    count = schema.integer("count", minimum=0)
    if complete and schema.integer("done", count, minimum=0) != count:
        raise schema.bad("done", f"{count} (the row count) in a complete set")
    values = {key: schema.text(key) for key in _TEXT_FIELDS}
    values.update(dtype=schema.text("dtype", choices=STORAGE_DTYPES), count=count, seed=schema.integer("seed"),
                  eps=schema.numbers("eps", low=0.0), success_rate=schema.number("success_rate", low=0.0, high=1.0),
                  format_version=version)
    values.update({key: schema.text(key) for key in _OPTIONAL_TEXT if key in attrs})
    optional = {"steps": schema.integer("steps", None, minimum=0), "restarts": schema.integer("restarts", None, minimum=0),
                "step_size": schema.numbers("step_size", None, low=0.0), "random_start": schema.flag("random_start", None),
                "image_size": schema.integer("image_size", 0, minimum=0),
                "clean_accuracy": schema.number("clean_accuracy", None, low=0.0, high=1.0),
                "adv_accuracy": schema.number("adv_accuracy", None, low=0.0, high=1.0)}
    values.update({key: value for key, value in optional.items() if value is not None})
    known = {f.name for f in fields(AdvSetInfo)} - {"path", "extra"}
    # eps_given, batch_size, precision, software_version and an attack's other options
    extra = {key: value for key, value in attrs.items() if key not in known and key not in _BOOKKEEPING}
    return AdvSetInfo(path=Path(path), extra=extra, **values)


_TEXT_FIELDS = ("name", "attack", "eps_label", "eps_space", "split", "source_model", "source_model_fingerprint",
                "clean_fingerprint")
_OPTIONAL_TEXT = ("label_mode", "targeted", "loss", "clean_cache", "summary", FINGERPRINT_ATTR)


def check_adv_layout(path: Path, handle: h5py.File, info: AdvSetInfo, *,
                     stored: bool = True) -> dict[str, np.ndarray]:
    """The per-row columns of the set (labels, clean_indices, targets int64; success bool), read
    once, after checking that `images` is (count, 3, S, S) of the recorded dtype with S the recorded
    image size, that every column is (count,), and that labels are >= 0 and clean rows >= 0 and
    distinct: CorruptArtefactError naming the file and dataset otherwise. `stored=False` skips the
    storage check (a partial file has unwritten chunks)."""
    count, size = int(info.count), int(info.image_size)
    images = check_dataset(path, handle, "images", kinds="u" if info.dtype == "uint8" else "f",
                           shape=(count, 3, size or None, size or None), what="adversarial set", stored=stored)
    wanted = np.dtype(np.float16 if info.dtype == "float16" else np.uint8)
    if images.dtype != wanted or images.shape[2] != images.shape[3]:
        raise CorruptArtefactError(f"{path}: dataset 'images' is {images.dtype} {tuple(images.shape)}, expected "
                                   f"{wanted} ({count}, 3, H, H) as its attributes record")
    columns = {}
    for key in PER_ROW:
        dataset = check_dataset(path, handle, key, kinds=_PER_ROW_KINDS[key], shape=(count,),
                                what="adversarial set", stored=stored)
        columns[key] = np.asarray(dataset[...], dtype=bool if key == "success" else np.int64)
    labels, rows = columns["labels"], columns["clean_indices"]
    if count and (labels.min() < 0 or rows.min() < 0):
        raise CorruptArtefactError(f"{path}: negative labels or clean indices")
    if count and np.unique(rows).size != count:
        raise CorruptArtefactError(f"{path}: dataset 'clean_indices' names {count - np.unique(rows).size} clean "
                                   f"row(s) twice; each row of a set attacks a different clean image")
    return columns


def check_pixels(path: Path, images: torch.Tensor, first_row: int | None = None) -> torch.Tensor:
    """`images` (float, (n, 3, H, W)) when every value is finite and in [0, 1]; CorruptArtefactError
    naming the file (and the first bad row when the rows are consecutive from `first_row`)."""
    if images.dtype == torch.uint8 or images.numel() == 0:
        return images
    ok = torch.isfinite(images) & (images >= 0) & (images <= 1)
    if bool(ok.all()):
        return images
    bad = int((~ok.flatten(1).all(dim=1)).nonzero()[0, 0])
    value = float(images[bad][~ok[bad]][0])
    where = f"row {first_row + bad}" if first_row is not None else "a row"
    raise CorruptArtefactError(f"{path}: {where} holds the pixel value {value} (pixels are finite values in [0, 1])")


def check_adv_aligned(info: AdvSetInfo, clean_indices: np.ndarray, labels: np.ndarray, image_shape: tuple,
                      *, cache_fingerprint: str, clean_image_shape: tuple, clean_labels: np.ndarray) -> None:
    """MismatchError, naming the set, unless it was made from this clean cache (recorded fingerprint
    present and equal), its images have the clean split's size, its clean rows lie in the split and
    its labels are the clean labels of those rows."""
    name = info.name
    if not info.clean_fingerprint or info.clean_fingerprint != cache_fingerprint:
        made = f"fingerprint {info.clean_fingerprint}" if info.clean_fingerprint else "no recorded fingerprint"
        raise MismatchError(f"adversarial set '{name}' was not made from this clean cache ({made}, this cache is "
                            f"{cache_fingerprint})", hint="re-run defendr attack on this cache or choose the matching --data")
    if tuple(image_shape) != tuple(clean_image_shape):
        raise MismatchError(f"adversarial set '{name}' holds images of shape {tuple(image_shape)}, the clean split "
                            f"{tuple(clean_image_shape)}")
    if len(clean_indices) and (clean_indices.min() < 0 or clean_indices.max() >= len(clean_labels)):
        raise MismatchError(f"adversarial set '{name}' refers to rows outside the clean {info.split} split "
                            f"({len(clean_labels)} rows)")
    if not np.array_equal(labels, clean_labels[clean_indices]):
        raise MismatchError(f"adversarial set '{name}' has labels that differ from the clean {info.split} split: "
                            f"it was made for other classes")
