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
        parameters are left out), rows_digest (the same digest over the rows [0, done) written so
        far: a partial file whose rows do not hash to it is refused on --resume and by info --verify).
    The schema of all this (types, shapes, pixel range, alignment) is core/io/adv_schema.py.

`AdvSetWriter` writes into a stable partial file (`.<name>.h5.partial`) batch by batch, records
the rows done in the `done` attribute so a later run can resume, and renames the file into place
only when every row is written. It computes the content fingerprint while rows arrive and seals
the finished file (`.<name>.h5.seal`), so evaluation never re-reads a set in full to key its caches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from defendr_cli.core.atomic import check_space, check_writable, write_guard
from defendr_cli.core.io.adv_fingerprint import (DONE_DIGEST_ATTR, FINGERPRINT_ATTR, AdvContentDigest,
                                                 checked_fingerprint, write_seal)
from defendr_cli.core.io.h5 import Batch, ProcessLocalFile, batch_rows, check_rows, file_identity, open_h5, read_rows
from defendr_cli.core.io.adv_schema import (ADV_FORMAT, ADV_FORMAT_VERSION, PER_ROW, STORAGE_DTYPES, AdvSetInfo,
                                            adv_set_fields, check_adv_aligned, check_adv_layout, check_pixels)
from defendr_cli.core.io.files import is_regular_file
from defendr_cli.core.io.schema import damaged_file_errors, plain_value, read_h5_attrs
from defendr_cli.core.locks import artefact_lock
from defendr_cli.core.errors import CorruptArtefactError, InputError, MismatchError, MissingArtefactError
from defendr_cli.core.workspace import Workspace

_CHUNK_BYTES = 1 << 20


def partial_adv_path(final: Path) -> Path:
    """The stable partial file a (resumable) write goes to, beside `final`."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial")


def _read_attrs(handle: h5py.File, path: Path | None = None) -> dict[str, Any]:
    return read_h5_attrs(Path(path or handle.filename), handle)


def _open(path: Path) -> h5py.File:
    return open_h5(path, what="adversarial set", hint="make it with: defendr attack")


def read_adv_info(path: Path | str) -> AdvSetInfo:
    """Attributes of the complete adversarial set at `path` (CorruptArtefactError otherwise)."""
    with _open(Path(path)) as handle, damaged_file_errors(path, "adversarial set"):
        attrs = _read_attrs(handle, Path(path))
    return adv_set_fields(Path(path), attrs)


def find_adv_sets(workspace: Workspace, *, split: str | None = None, source_model: str | None = None,
                  prefix: str | None = None, skipped: list[str] | None = None) -> list[AdvSetInfo]:
    """Complete adversarial sets in the workspace, sorted by name, filtered by the given fields.

    Files in adv/ that are not readable adversarial sets are left out of the list; with `skipped`,
    one line per such file (its name and why) is appended to it.
    """
    found = []
    for name in workspace.names("adv"):
        if prefix is not None and not name.startswith(prefix):
            continue
        try:
            info = read_adv_info(workspace.path_for("adv", name, create_dir=False))
        except (CorruptArtefactError, MissingArtefactError) as exc:
            if skipped is not None:
                skipped.append(f"skipped adversarial set '{name}': {exc}")
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
        """The partial file opened for appending when it was made with the same settings, after
        checking its layout and that the rows it says are written hash to the digest recorded with
        them (CorruptArtefactError otherwise: a raised `done`, edited rows); None to start afresh."""
        if not is_regular_file(self.partial):
            return None
        try:
            handle = h5py.File(self.partial, "r+")
        except OSError:
            return None
        try:
            attrs = _read_attrs(handle, self.partial)
            if attrs.get("format") != ADV_FORMAT or other_settings(attrs, self.params, dtype=self.dtype,
                                                                   count=self.count):
                handle.close()
                return None
            self.resumed_from = check_partial_rows(self.partial, handle, attrs, self._digest)
        except BaseException:
            handle.close()
            raise
        return handle

    def _create(self, image_shape: tuple[int, ...]) -> h5py.File:
        np_dtype = np.float16 if self.dtype == "float16" else np.uint8
        row_bytes = int(np.prod(image_shape)) * np.dtype(np_dtype).itemsize
        check_space(self.final, self.count * (row_bytes + 8 * len(PER_ROW)))
        if self.partial.is_symlink() or (self.partial.exists() and not is_regular_file(self.partial)):
            if self.partial.is_dir() and not self.partial.is_symlink():
                raise CorruptArtefactError(f"{self.partial} is a folder where the partial set goes: remove it")
            self.partial.unlink()  # a FIFO or a link at our own temporary path: writing through it could
            # block for ever or truncate the file the link points to
        handle = h5py.File(self.partial, "w")
        chunk_rows = max(1, min(self.count, _CHUNK_BYTES // max(row_bytes, 1)))
        handle.create_dataset("images", shape=(self.count, *image_shape), dtype=np_dtype,
                              chunks=(chunk_rows, *image_shape) if self.count else None)
        for key in PER_ROW:
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
            handle.attrs[DONE_DIGEST_ATTR] = self._digest.hexdigest()  # checked when the file is reopened
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


def check_partial_rows(path: Path, handle: h5py.File, attrs: dict[str, Any], digest: AdvContentDigest) -> int:
    """`done` of a partial set after feeding its rows [0, done) to `digest` and checking them against
    the digest recorded with them (DONE_DIGEST_ATTR): CorruptArtefactError naming the file when
    `done` is not a row count, the layout is damaged, or the rows are not the ones written."""
    count = attrs.get("count")
    done = attrs.get("done")
    if not isinstance(count, int) or not isinstance(done, int) or isinstance(done, bool) or not 0 <= done <= count:
        raise CorruptArtefactError(f"{path}: 'done' is {done!r}, not a row count of this partial set of {count!r} rows",
                                   hint=_RESTART)
    for key in ("images", *PER_ROW):
        member = handle.get(key)
        if not isinstance(member, h5py.Dataset) or not member.shape or member.shape[0] != count:
            raise CorruptArtefactError(f"{path}: the partial set's dataset '{key}' is missing or damaged", hint=_RESTART)
    with damaged_file_errors(path, "partial adversarial set"):
        digest.update_from_file(handle, done)
    recorded = attrs.get(DONE_DIGEST_ATTR)
    if done and recorded != digest.hexdigest():
        raise CorruptArtefactError(f"{path}: its {done} written rows do not match the digest recorded with them "
                                   f"(edited, or 'done' changed by hand)", hint=_RESTART)
    return done


_RESTART = "delete it, or run the attack again without --resume to start the set afresh"


def read_kept_adv_info(path: Path | str, params: dict[str, Any], *, dtype: str) -> AdvSetInfo:
    """`read_adv_info` of a complete set that `--resume` keeps: MismatchError when it was made with
    other settings than `params` and `dtype` (the attributes a new write would record)."""
    path = Path(path)
    with _open(path) as handle:
        attrs = _read_attrs(handle, path)
    info = adv_set_fields(path, attrs)
    # a set is kept across software versions: only the attack's own settings must agree
    differ = [key for key in other_settings(attrs, params, dtype=dtype) if key != "software_version"]
    if differ:
        expected = {**params, "dtype": dtype}
        shown = ", ".join(f"{key} {attrs.get(key)!r}, this run {expected[key]!r}" for key in differ)
        raise MismatchError(f"{path.stem} exists with other settings ({shown})", hint="pass --force to rewrite it")
    return info


def read_adv_head(path: Path | str, rows: int, columns: Sequence[str] = ()) -> tuple[AdvSetInfo, torch.Tensor,
                                                                                      dict[str, np.ndarray]]:
    """Info, the first `rows` images (float32 in [0, 1]) and those rows of the per-row `columns`
    of the complete set at `path`, read in one open, after checking its layout and pixels."""
    path = Path(path)
    with _open(path) as handle, damaged_file_errors(path, "adversarial set"):
        info = adv_set_fields(path, _read_attrs(handle, path))
        stored = check_adv_layout(path, handle, info)
        images = check_pixels(path, from_storage(handle["images"][:rows]), 0)
        return info, images, {key: stored[key][:rows] for key in columns}


def _same(stored: Any, wanted: Any) -> bool:
    wanted = plain_value(np.asarray(wanted)) if isinstance(wanted, (list, tuple)) else wanted
    if isinstance(wanted, float) or isinstance(stored, float):
        return stored is not None and np.allclose(stored, wanted, rtol=0, atol=0)
    return stored == wanted


class AdvSetReader:
    """Reads one complete adversarial set. Use as a context manager (or call close()).

    .info: AdvSetInfo; .labels: int64 (N,) true labels; .clean_indices: int64 (N,) clean rows;
    .success: bool (N,); .fingerprint: the content fingerprint (core.io.adv_fingerprint), checked
    on open through the same handle the rows are then read from: read once, hash what was read.
    Opening refuses (CorruptArtefactError, one line naming the file) attributes of the wrong type,
    a damaged layout, duplicate clean rows, and content that does not match its recorded
    fingerprint; `read` refuses rows holding NaN, inf or values outside [0, 1]. A process that
    reopens the file (DataLoader workers) refuses a file replaced since it was checked.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        handle = _open(self.path)
        try:
            self._check_on_open(handle)
        except BaseException:
            handle.close()
            raise
        self._file = ProcessLocalFile(self.path, what="adversarial set", hint="make it with: defendr attack",
                                      handle=handle, identity=self._identity)

    def _check_on_open(self, handle: h5py.File) -> None:
        """Schema, layout, per-row columns and fingerprint (with every pixel when re-hashed), all
        read through `handle`; a damaged file is one CorruptArtefactError."""
        with damaged_file_errors(self.path, "adversarial set"):
            self._identity = file_identity(self.path)
            self.info = adv_set_fields(self.path, _read_attrs(handle, self.path))
            columns = check_adv_layout(self.path, handle, self.info)
            self.labels, self.clean_indices = columns["labels"], columns["clean_indices"]
            self.success, self.targets = columns["success"], columns["targets"]
            self._shape = tuple(handle["images"].shape)
            self.fingerprint = checked_fingerprint(self.path, handle, check_rows=self._check_block)

    def _check_block(self, start: int, rows: np.ndarray) -> None:
        check_pixels(self.path, from_storage(rows), start)

    def __len__(self) -> int:
        return self._shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._shape[1:]  # (3, H, W)

    def __enter__(self) -> "AdvSetReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def check_aligned(self, cache_fingerprint: str, clean_image_shape: tuple, clean_labels: np.ndarray) -> None:
        """MismatchError unless this set was made from the clean split described (see check_adv_aligned)."""
        check_adv_aligned(self.info, self.clean_indices, self.labels, self.image_shape,
                          cache_fingerprint=cache_fingerprint, clean_image_shape=tuple(clean_image_shape),
                          clean_labels=np.asarray(clean_labels, dtype=np.int64))

    def read(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 (n,3,H,W) in [0,1] for rows `indices` of this set, in the order given."""
        idx = check_rows(indices, len(self), "adversarial set")
        with damaged_file_errors(self.path, "adversarial set"):
            rows = read_rows(self._file.get()["images"], idx)
        return check_pixels(self.path, from_storage(rows))

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                     indices: Sequence[int] | np.ndarray | None = None) -> Iterator[Batch]:
        """Batches of this set's rows; Batch.indices are the clean-split rows they attack."""
        order = np.arange(len(self), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        for rows in batch_rows(order, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last):
            yield Batch(self.read(rows), torch.from_numpy(self.labels[rows]),
                        torch.from_numpy(self.clean_indices[rows].copy()))
