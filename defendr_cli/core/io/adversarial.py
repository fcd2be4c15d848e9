"""Adversarial sets: `adv/<name>.h5`, one file per (attack, eps, split), aligned with a clean split.

Layout:

    /images         float16 (default) or uint8 (N, 3, H, W): row i attacks clean row clean_indices[i]
    /labels         int64 (N,) true labels (copied from the clean split)
    /clean_indices  int64 (N,) rows of the clean split (a full set has arange(N))
    /success        bool (N,) per-example attack success on the stored image (untargeted:
                    prediction != attacked label; targeted: prediction == target)
    /clean_pred     int64 (N,) the source model's prediction on the clean image
    /adv_pred       int64 (N,) its prediction on the adversarial image (before storage rounding)
    /targets        int64 (N,) target classes of a targeted attack, -1 when untargeted
    file attributes: format ("defendr-adv-set"), format_version, complete, done (rows written),
        name, attack, eps (pixel units: float or per-channel list), eps_label, eps_space,
        eps_given, steps, step_size, random_start, restarts, label_mode, targeted, loss, seed,
        batch_size, precision, split, source_model, source_model_fingerprint, clean_cache,
        clean_fingerprint, image_size, dtype, count, success_rate (untargeted: the fraction of
        images classified right before the attack that are wrong after it; targeted: the fraction
        classified as their target), clean_accuracy, adv_accuracy, summary, content_fingerprint
        (of the stored images, labels and clean rows; see core/io/adv_fingerprint.py; None-valued
        parameters are left out).

`AdvSetWriter` writes into a stable partial file (`.<name>.h5.partial`) batch by batch, records
the rows done in the `done` attribute so a later run can resume, and renames the file into place
only when every row is written. It computes the content fingerprint while rows arrive and seals
the finished file (`.<name>.h5.seal`), so evaluation never re-reads a set in full to key its caches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from defendr_cli.core.atomic import check_space, check_writable, write_guard
from defendr_cli.core.io.adv_fingerprint import FINGERPRINT_ATTR, AdvContentDigest, write_seal
from defendr_cli.core.io.h5 import Batch, ProcessLocalFile, batch_rows, check_rows, open_h5, read_rows
from defendr_cli.core.locks import artefact_lock
from defendr_cli.core.errors import CorruptArtefactError, InputError, MismatchError
from defendr_cli.core.workspace import Workspace

ADV_FORMAT = "defendr-adv-set"
ADV_FORMAT_VERSION = 1
STORAGE_DTYPES = ("float16", "uint8")
_CHUNK_BYTES = 1 << 20
_PER_ROW = ("labels", "clean_indices", "success", "clean_pred", "adv_pred", "targets")


@dataclass(frozen=True)
class AdvSetInfo:
    """The attributes of an adversarial set. eps in pixel units (float, or per-channel list)."""

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
    steps: int | None = None
    step_size: float | list[float] | None = None
    random_start: bool | None = None
    restarts: int | None = None
    label_mode: str = "true"
    targeted: str = "none"
    loss: str = "ce"
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


def partial_adv_path(final: Path) -> Path:
    """The stable partial file a (resumable) write goes to, beside `final`."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial")


def _attr_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_attrs(handle: h5py.File) -> dict[str, Any]:
    return {key: _attr_value(handle.attrs[key]) for key in handle.attrs.keys()}


def _check_format(path: Path, attrs: dict[str, Any], *, need_complete: bool = True) -> None:
    if attrs.get("format") != ADV_FORMAT:
        raise CorruptArtefactError(f"{path} is not a Defendr adversarial set (format {attrs.get('format')!r})")
    if int(attrs.get("format_version", -1)) != ADV_FORMAT_VERSION:
        raise CorruptArtefactError(f"{path} has adversarial-set format version {attrs.get('format_version')};"
                                   f" this build reads {ADV_FORMAT_VERSION}")
    if need_complete and not bool(attrs.get("complete", False)):
        raise CorruptArtefactError(f"{path} is an incomplete adversarial set",
                                   hint="finish it with: defendr attack ... --resume")


_BOOKKEEPING = ("format", "complete", "done")  # file-format attributes, not the set's settings


def _info_from_attrs(path: Path, attrs: dict[str, Any]) -> AdvSetInfo:
    known = {f.name for f in fields(AdvSetInfo)} - {"path", "extra"}
    try:
        values = {key: attrs[key] for key in known if key in attrs}
        # eps_given, batch_size, precision, software_version and an attack's other options
        extra = {key: value for key, value in attrs.items() if key not in known and key not in _BOOKKEEPING}
        return AdvSetInfo(path=Path(path), extra=extra, **values)
    except TypeError as exc:
        raise CorruptArtefactError(f"{path} is a damaged adversarial set ({exc})") from exc


def _open(path: Path) -> h5py.File:
    return open_h5(path, what="adversarial set", hint="make it with: defendr attack")


def read_adv_info(path: Path | str) -> AdvSetInfo:
    """Attributes of the complete adversarial set at `path` (CorruptArtefactError otherwise)."""
    with _open(Path(path)) as handle:
        attrs = _read_attrs(handle)
    _check_format(Path(path), attrs)
    return _info_from_attrs(Path(path), attrs)


def find_adv_sets(workspace: Workspace, *, split: str | None = None, source_model: str | None = None,
                  prefix: str | None = None) -> list[AdvSetInfo]:
    """Complete adversarial sets in the workspace, sorted by name, filtered by the given fields.

    Files in adv/ that are not readable adversarial sets are left out of the list.
    """
    found = []
    for name in workspace.names("adv"):
        if prefix is not None and not name.startswith(prefix):
            continue
        try:
            info = read_adv_info(workspace.path_for("adv", name, create_dir=False))
        except CorruptArtefactError:
            continue
        if split is not None and info.split != split:
            continue
        if source_model is not None and info.source_model != source_model:
            continue
        found.append(info)
    return found


def to_storage(images: torch.Tensor, dtype: str) -> np.ndarray:
    """float (n,3,H,W) in [0,1] -> float16, or uint8 rounded to the nearest level."""
    images = images.detach().float().cpu().contiguous()
    if dtype == "float16":
        return images.to(torch.float16).numpy()
    if dtype == "uint8":
        return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    raise InputError(f"unknown storage dtype '{dtype}': use one of {', '.join(STORAGE_DTYPES)}")


def round_to_storage(images: torch.Tensor, dtype: str) -> torch.Tensor:
    """What `to_storage` then `from_storage` returns, computed on the images' own device (fp32)."""
    if dtype == "float16":
        return images.detach().to(torch.float16).float()
    if dtype == "uint8":
        return images.detach().float().mul(255.0).round_().clamp_(0, 255).div_(255.0)
    raise InputError(f"unknown storage dtype '{dtype}': use one of {', '.join(STORAGE_DTYPES)}")


def from_storage(rows: np.ndarray) -> torch.Tensor:
    """Stored rows -> float32 tensor in [0,1]."""
    tensor = torch.from_numpy(np.ascontiguousarray(rows))
    return tensor.float().div_(255.0) if tensor.dtype == torch.uint8 else tensor.float()


class AdvSetWriter:
    """Writes one adversarial set batch by batch into its partial file, resumable.

    `params` are the attributes that determine the content (attack parameters, fingerprints,
    seed, batch size...). With `resume=True` an existing partial file with equal `params` is
    reopened and `done` tells how many rows are already written; otherwise a fresh partial file
    is started. `finish(results)` sets the result attributes and renames the file into place.
    """

    def __init__(self, final: Path | str, *, count: int, image_shape: Sequence[int], dtype: str,
                 params: dict[str, Any], resume: bool = False, force: bool = False) -> None:
        if dtype not in STORAGE_DTYPES:
            raise InputError(f"unknown storage dtype '{dtype}': use one of {', '.join(STORAGE_DTYPES)}")
        self.final = Path(final)
        check_writable(self.final, force=force)
        self.partial = partial_adv_path(self.final)
        self.count = int(count)
        self.dtype = dtype
        self.params = {k: v for k, v in params.items() if v is not None}
        self.resumed_from = 0
        with write_guard(self.final):
            self.final.parent.mkdir(parents=True, exist_ok=True)
        self._handle: h5py.File | None = None
        self._digest = AdvContentDigest()
        self._lock = artefact_lock(self.final)  # held until close(): one writer per set
        self._lock.__enter__()
        try:
            with write_guard(self.final, self.partial):
                self._handle = self._reopen() if resume and self.partial.exists() else None
                if self._handle is None:
                    self._handle = self._create(tuple(image_shape))
        except BaseException:
            self.close()
            raise

    @property
    def done(self) -> int:
        return int(self._handle.attrs["done"])

    def _reopen(self) -> h5py.File | None:
        try:
            handle = h5py.File(self.partial, "r+")
        except OSError:
            return None
        attrs = _read_attrs(handle)
        same = attrs.get("format") == ADV_FORMAT and not other_settings(attrs, self.params, dtype=self.dtype,
                                                                         count=self.count)
        if not same:
            handle.close()
            return None
        self.resumed_from = int(attrs["done"])
        self._digest.update_from_file(handle, self.resumed_from)  # the rows already written
        return handle

    def _create(self, image_shape: tuple[int, ...]) -> h5py.File:
        np_dtype = np.float16 if self.dtype == "float16" else np.uint8
        row_bytes = int(np.prod(image_shape)) * np.dtype(np_dtype).itemsize
        check_space(self.final, self.count * (row_bytes + 8 * len(_PER_ROW)))
        handle = h5py.File(self.partial, "w")
        chunk_rows = max(1, min(self.count, _CHUNK_BYTES // max(row_bytes, 1)))
        handle.create_dataset("images", shape=(self.count, *image_shape), dtype=np_dtype,
                              chunks=(chunk_rows, *image_shape) if self.count else None)
        for key in _PER_ROW:
            handle.create_dataset(key, shape=(self.count,), dtype=np.bool_ if key == "success" else np.int64)
        handle.attrs.update({"format": ADV_FORMAT, "format_version": ADV_FORMAT_VERSION, "complete": False,
                             "done": 0, "count": self.count, "dtype": self.dtype})
        handle.attrs.update(self.params)
        handle.flush()
        return handle

    def write(self, start: int, adv: torch.Tensor, *, labels: torch.Tensor, clean_indices: torch.Tensor,
              success: torch.Tensor, clean_pred: torch.Tensor, adv_pred: torch.Tensor,
              targets: torch.Tensor | None) -> None:
        """Write rows [start, start + n) (in order: start must equal `done`) and flush."""
        if start != self.done:
            raise InputError(f"rows must be written in order: expected row {self.done}, got {start}")
        stop = start + adv.shape[0]
        handle = self._handle
        columns = {"labels": labels, "clean_indices": clean_indices, "success": success,
                   "clean_pred": clean_pred, "adv_pred": adv_pred,
                   "targets": targets if targets is not None else torch.full_like(labels, -1)}
        with write_guard(self.final, self.partial):
            stored = to_storage(adv, self.dtype)
            handle["images"][start:stop] = stored
            for key, value in columns.items():
                handle[key][start:stop] = value.detach().cpu().numpy()
            self._digest.update(stored, handle["labels"][start:stop], handle["clean_indices"][start:stop])
            handle.attrs["done"] = stop
            handle.flush()

    def column(self, key: str) -> np.ndarray:
        """A per-row column of the rows written so far (e.g. 'success' for the success rate)."""
        return np.asarray(self._handle[key][: self.done])

    def finish(self, results: dict[str, Any]) -> Path:
        """Set result attributes (success_rate, summary...), mark complete, rename into place."""
        if self.done != self.count:
            raise InputError(f"cannot finish {self.final.name}: {self.done} of {self.count} rows written")
        with write_guard(self.final, self.partial):
            self._handle.attrs.update({k: v for k, v in results.items() if v is not None})
            fingerprint = self._digest.hexdigest()
            self._handle.attrs[FINGERPRINT_ATTR] = fingerprint
            self._handle.attrs["complete"] = True
            self._handle.close()
            os.replace(self.partial, self.final)
            write_seal(self.final, fingerprint)
        return self.final

    def close(self) -> None:
        """Close the partial file and keep it (for --resume); release the set's lock."""
        if self._handle is not None and self._handle.id.valid:
            self._handle.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    def __enter__(self) -> "AdvSetWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def other_settings(attrs: dict[str, Any], params: dict[str, Any], *, dtype: str,
                   count: int | None = None) -> list[str]:
    """The keys of `params` (None values left out), `dtype` and `count` (when given) that the
    attributes `attrs` of a set record with another value."""
    wanted = {key: value for key, value in params.items() if value is not None}
    wanted["dtype"] = dtype
    if count is not None:
        wanted["count"] = int(count)
    return [key for key, value in wanted.items() if not _same(attrs.get(key), value)]


def read_kept_adv_info(path: Path | str, params: dict[str, Any], *, dtype: str) -> AdvSetInfo:
    """`read_adv_info` of a complete set that `--resume` keeps: MismatchError when it was made with
    other settings than `params` and `dtype` (the attributes a new write would record)."""
    path = Path(path)
    with _open(path) as handle:
        attrs = _read_attrs(handle)
    _check_format(path, attrs)
    # a set is kept across software versions: only the attack's own settings must agree
    differ = [key for key in other_settings(attrs, params, dtype=dtype) if key != "software_version"]
    if differ:
        expected = {**params, "dtype": dtype}
        shown = ", ".join(f"{key} {attrs.get(key)!r}, this run {expected[key]!r}" for key in differ)
        raise MismatchError(f"{path.stem} exists with other settings ({shown})", hint="pass --force to rewrite it")
    return _info_from_attrs(path, attrs)


def read_adv_head(path: Path | str, rows: int, columns: Sequence[str] = ()) -> tuple[AdvSetInfo, torch.Tensor,
                                                                                      dict[str, np.ndarray]]:
    """Info, the first `rows` images (float32 in [0, 1]) and those rows of the per-row `columns`
    of the complete set at `path`, read in one open without loading whole columns."""
    path = Path(path)
    with _open(path) as handle:
        attrs = _read_attrs(handle)
        _check_format(path, attrs)
        info = _info_from_attrs(path, attrs)
        images = from_storage(handle["images"][:rows])
        return info, images, {key: np.asarray(handle[key][:rows]) for key in columns}


def _same(stored: Any, wanted: Any) -> bool:
    wanted = _attr_value(np.asarray(wanted)) if isinstance(wanted, (list, tuple)) else wanted
    if isinstance(wanted, float) or isinstance(stored, float):
        return stored is not None and np.allclose(stored, wanted, rtol=0, atol=0)
    return stored == wanted


def check_adv_layout(path: Path, handle: h5py.File, info: AdvSetInfo, labels: np.ndarray,
                     clean_indices: np.ndarray) -> None:
    """CorruptArtefactError, naming the file and dataset, when the stored arrays disagree with the
    attributes: `images` (count, 3, H, W) of the recorded dtype, per-row columns of count rows,
    non-negative labels and clean indices, a finite non-negative eps."""
    images = handle["images"]
    count = int(info.count)
    wanted = np.float16 if info.dtype == "float16" else np.uint8
    if images.ndim != 4 or images.shape[0] != count or images.shape[1] != 3 or images.dtype != wanted:
        raise CorruptArtefactError(f"{path}: dataset 'images' is {images.dtype} {tuple(images.shape)}, expected "
                                   f"{np.dtype(wanted)} ({count}, 3, H, W) as its attributes record")
    for key in _PER_ROW:
        if tuple(handle[key].shape) != (count,):
            raise CorruptArtefactError(f"{path}: dataset '{key}' has shape {tuple(handle[key].shape)}, expected ({count},)")
    if count and (labels.min() < 0 or clean_indices.min() < 0):
        raise CorruptArtefactError(f"{path}: negative labels or clean indices")
    eps = np.asarray(info.eps, dtype=np.float64)
    if not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise CorruptArtefactError(f"{path}: attribute 'eps' is {info.eps!r}, not a finite non-negative value")


class AdvSetReader:
    """Reads one complete adversarial set. Use as a context manager (or call close()).

    .info: AdvSetInfo; .labels: int64 (N,) true labels; .clean_indices: int64 (N,) clean rows;
    .success: bool (N,). The HDF5 file is opened lazily and reopened in a new process.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with _open(self.path) as handle:
            attrs = _read_attrs(handle)
            _check_format(self.path, attrs)
            self.info = _info_from_attrs(self.path, attrs)
            self.labels = np.asarray(handle["labels"][...], dtype=np.int64)
            self.clean_indices = np.asarray(handle["clean_indices"][...], dtype=np.int64)
            self.success = np.asarray(handle["success"][...], dtype=bool)
            self.targets = np.asarray(handle["targets"][...], dtype=np.int64)
            self._shape = tuple(handle["images"].shape)
            check_adv_layout(self.path, handle, self.info, self.labels, self.clean_indices)
        self._file = ProcessLocalFile(self.path, what="adversarial set", hint="make it with: defendr attack")

    def __len__(self) -> int:
        return self._shape[0]

    def __enter__(self) -> "AdvSetReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def read(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 (n,3,H,W) in [0,1] for rows `indices` of this set, in the order given."""
        idx = check_rows(indices, len(self), "adversarial set")
        return from_storage(read_rows(self._file.get()["images"], idx))

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                     indices: Sequence[int] | np.ndarray | None = None) -> Iterator[Batch]:
        """Batches of this set's rows; Batch.indices are the clean-split rows they attack."""
        order = np.arange(len(self), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        for rows in batch_rows(order, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last):
            yield Batch(self.read(rows), torch.from_numpy(self.labels[rows]),
                        torch.from_numpy(self.clean_indices[rows].copy()))
