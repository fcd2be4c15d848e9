"""Content fingerprints of adversarial sets: computed while writing, trusted after a cheap check.

The content fingerprint covers what a model's predictions on a set depend on: the stored image
bytes (storage dtype, row order), the labels and the clean-split rows (int64). `AdvSetWriter`
computes it incrementally and records it as the file attribute `content_fingerprint`, then writes
a seal beside the set (`.<name>.h5.seal`, JSON): the fingerprint, the file's size and modification
time, and a digest of a few sampled image rows plus the labels and clean rows.

`checked_fingerprint(path, handle)` returns the recorded fingerprint when the seal still matches
(size, mtime and the sampled rows: reads a few rows, never the whole set). Otherwise (the file was
edited in place, replaced, copied without its seal) it re-hashes the whole content once per process
through the handle the caller then reads from (read once, hash what was read): when that equals
the recorded attribute it renews the seal, and when it differs the set is refused
(CorruptArtefactError): content that is not what was written is never used, nor cached under any
key. Sets written before the attribute existed fall back to `file_fingerprint` (sha256 of the
file's bytes). `adv_set_fingerprint(path)` does the same on a file it opens itself.
"""

from __future__ import annotations

from collections.abc import Callable
import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from defendr_cli.core.errors import CorruptArtefactError, DefendrError
from defendr_cli.core.fingerprint import FINGERPRINT_CHARS, file_fingerprint
from defendr_cli.core.io.files import read_json_file
from defendr_cli.core.io.h5 import open_h5
from defendr_cli.core.io.schema import damaged_file_errors

FINGERPRINT_ATTR = "content_fingerprint"
DONE_DIGEST_ATTR = "rows_digest"  # of a partial file's rows [0, done), checked when it is reopened
SAMPLED_ROWS = 8
SEAL_BYTES = 4096  # a seal is a few fields of JSON
_BLOCK_BYTES = 32 << 20
RowCheck = Callable[[int, np.ndarray], None]  # (first row, stored image rows) -> None or raise


class AdvContentDigest:
    """Incremental content fingerprint of an adversarial set: sha256 of the stored image bytes,
    of the int64 labels and of the int64 clean rows, each in row order, combined (16 hex)."""

    def __init__(self) -> None:
        self._parts = {key: hashlib.sha256() for key in ("images", "labels", "clean_indices")}

    def update(self, images: np.ndarray, labels: np.ndarray, clean_indices: np.ndarray) -> None:
        """Rows in order: images in their storage dtype (n,3,H,W), labels and clean rows (n,)."""
        self._parts["images"].update(np.ascontiguousarray(images).data)
        self._parts["labels"].update(np.ascontiguousarray(labels, dtype="<i8").data)
        self._parts["clean_indices"].update(np.ascontiguousarray(clean_indices, dtype="<i8").data)

    def update_from_file(self, handle: h5py.File, stop: int, check_rows: RowCheck | None = None) -> None:
        """Feed rows [0, stop) as stored in an open set (resuming a write, or verifying); each block
        of images is first given to `check_rows(first_row, block)` when given (e.g. a pixel check)."""
        images = handle["images"]
        row_bytes = max(1, int(np.prod(images.shape[1:])) * images.dtype.itemsize)
        step = max(1, _BLOCK_BYTES // row_bytes)
        for start in range(0, stop, step):
            end = min(stop, start + step)
            block = images[start:end]
            if check_rows is not None:
                check_rows(start, block)
            self.update(block, handle["labels"][start:end], handle["clean_indices"][start:end])

    def hexdigest(self) -> str:
        total = hashlib.sha256()
        for key, part in self._parts.items():
            total.update(f"{key}:{part.hexdigest()};".encode())
        return total.hexdigest()[:FINGERPRINT_CHARS]


def seal_path(path: Path | str) -> Path:
    """Where the seal of the set at `path` lives: `.<name>.h5.seal` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.seal")


def sampled_rows(count: int, samples: int = SAMPLED_ROWS) -> np.ndarray:
    """The rows the cheap check reads: first, last and evenly spaced ones between (sorted, unique)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, count - 1, num=min(samples, count)).round().astype(np.int64))


def sample_digest(handle: h5py.File) -> str:
    """sha256 (16 hex) of the sampled image rows, the whole labels and clean-row columns, and the
    images' dtype and shape."""
    images = handle["images"]
    digest = hashlib.sha256(f"{images.dtype.str}:{tuple(images.shape)};".encode())
    for row in sampled_rows(images.shape[0]):
        digest.update(np.ascontiguousarray(images[int(row)]).data)
    for key in ("labels", "clean_indices"):
        digest.update(np.ascontiguousarray(handle[key][...], dtype="<i8").data)
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def write_seal(path: Path | str, fingerprint: str, handle: h5py.File | None = None) -> None:
    """Seal the set at `path` as it is now (size, mtime, sampled rows, read through `handle` when
    given). Best effort: a folder that cannot be written only costs a full re-hash later."""
    path = Path(path)
    stat = path.stat()
    if handle is not None:
        sample = sample_digest(handle)
    else:
        with open_h5(path, what="adversarial set") as opened:
            sample = sample_digest(opened)
    seal = {"fingerprint": fingerprint, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sample": sample}
    target = seal_path(path)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(seal))
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)


def _read_seal(path: Path) -> dict | None:
    """The seal beside `path`, or None when absent or not a sound seal (a FIFO is never opened)."""
    try:
        return read_json_file(seal_path(path), what="seal", max_bytes=SEAL_BYTES)
    except DefendrError:
        return None


def compute_adv_fingerprint(path: Path | str, check_rows: RowCheck | None = None) -> str:
    """The content fingerprint recomputed from every stored row (reads the whole set)."""
    digest = AdvContentDigest()
    with open_h5(Path(path), what="adversarial set") as handle:
        digest.update_from_file(handle, handle["images"].shape[0], check_rows)
    return digest.hexdigest()


def recorded_adv_fingerprint(path: Path | str) -> str | None:
    """The `content_fingerprint` attribute of the set (None for sets written before it existed)."""
    with open_h5(Path(path), what="adversarial set") as handle:
        return _recorded(Path(path), handle)


def _recorded(path: Path, handle: h5py.File) -> str | None:
    value = handle.attrs.get(FINGERPRINT_ATTR)
    value = value.decode(errors="replace") if isinstance(value, bytes) else value
    if value is not None and not isinstance(value, str):
        raise CorruptArtefactError(f"{path} is a damaged adversarial set: '{FINGERPRINT_ATTR}' is {value!r}, "
                                   f"expected a string")
    return value


# file identity -> (fingerprint re-hashed and found equal, whether its rows were checked as well)
_VERIFIED: dict[tuple[str, int, int, int], tuple[str, bool]] = {}


def checked_fingerprint(path: Path | str, handle: h5py.File, *, check_rows: RowCheck | None = None) -> str:
    """The content fingerprint of the set open as `handle` (see the module docstring): the recorded
    one after the cheap seal check, else after re-hashing every row through `handle` (each block
    given to `check_rows` first). CorruptArtefactError, naming the file, when the content does not
    hash to the recorded fingerprint."""
    path = Path(path)
    recorded = _recorded(path, handle)
    if recorded is None:
        return file_fingerprint(path)
    stat = path.stat()
    seal = _read_seal(path)
    if (seal is not None and seal.get("fingerprint") == recorded and seal.get("size") == stat.st_size
            and seal.get("mtime_ns") == stat.st_mtime_ns and seal.get("sample") == sample_digest(handle)):
        return recorded
    identity = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    known, checked = _VERIFIED.get(identity, ("", False))
    if known == recorded and (checked or check_rows is None):
        return recorded
    computed = _rehash(handle, check_rows)
    if computed != recorded:
        raise CorruptArtefactError(f"{path}: its content does not match its recorded fingerprint (recorded "
                                   f"{recorded}, computed {computed}): it was changed after it was written",
                                   hint="make it again with: defendr attack ... --force")
    _VERIFIED[identity] = (recorded, check_rows is not None)
    write_seal(path, recorded, handle)
    return recorded


def _rehash(handle: h5py.File, check_rows: RowCheck | None) -> str:
    """The content fingerprint of every row of the open set (the one full read)."""
    digest = AdvContentDigest()
    digest.update_from_file(handle, handle["images"].shape[0], check_rows)
    return digest.hexdigest()


def adv_set_fingerprint(path: Path | str) -> str:
    """`checked_fingerprint` of the set at `path`, opened here (CorruptArtefactError on a mismatch)."""
    path = Path(path).resolve()
    with open_h5(path, what="adversarial set") as handle, damaged_file_errors(path, "adversarial set"):
        return checked_fingerprint(path, handle)
