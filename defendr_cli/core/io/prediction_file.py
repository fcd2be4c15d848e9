"""The prediction cache's entries (`reports/_predictions/<model key>__<set key>.npz`), read as
untrusted files: an entry that is not exactly what `write_prediction_file` writes is reported as
None, so the caller deletes it and recomputes it ("recomputed, never trusted").

An entry is a zip (.npz) of three 1-D integer arrays of one length: `preds`, `labels`, `indices`
(clean-split rows, strictly increasing). Reading never unpickles (allow_pickle=False), never opens
a FIFO or device, reads at most SMALL_FILE_BYTES, and checks every array's declared size against
the bytes actually stored before allocating it (a truncated, bit-flipped, empty or forged entry
is None, never BadZipFile, EOFError or a huge allocation).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.io.files import SMALL_FILE_BYTES, read_small_file

PREDICTION_KEYS = ("preds", "labels", "indices")
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
               CorruptArtefactError, RuntimeError)


def write_prediction_file(handle: BinaryIO, preds: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> None:
    """Write one entry (int64 arrays (N,), indices sorted) into the open binary file `handle`."""
    np.savez(handle, **{key: np.asarray(value, dtype=np.int64) for key, value in
                        zip(PREDICTION_KEYS, (preds, labels, indices))})


def read_prediction_file(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(preds, labels, indices) int64 (N,) of the entry at `path`, or None when it is absent or is
    not a sound entry (see the module docstring); never raises for a damaged entry."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        raw = read_small_file(path, what="prediction cache entry")
        arrays = _arrays(raw)
    except _UNREADABLE:
        return None
    return arrays


def _arrays(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        names = [info.filename for info in archive.infolist()]
        if sorted(names) != sorted(f"{key}.npy" for key in PREDICTION_KEYS):
            return None  # missing, extra or duplicated members
        columns = [_member(archive, f"{key}.npy") for key in PREDICTION_KEYS]
    if any(column is None for column in columns):
        return None
    preds, labels, indices = columns
    if not (len(preds) == len(labels) == len(indices)):
        return None
    if len(indices) and (indices[0] < 0 or np.any(np.diff(indices) <= 0) or preds.min() < 0 or labels.min() < 0):
        return None
    return preds, labels, indices


def _member(archive: zipfile.ZipFile, name: str) -> np.ndarray | None:
    """A 1-D integer array stored as `name`, read with its declared size checked first."""
    info = archive.getinfo(name)
    if info.file_size > SMALL_FILE_BYTES:
        return None
    with archive.open(info) as member:
        data = member.read(SMALL_FILE_BYTES + 1)
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(buffer)
    if len(shape) != 1 or dtype.kind not in "iu" or dtype.hasobject:
        return None
    if shape[0] * dtype.itemsize != len(data) - buffer.tell():
        return None
    return np.frombuffer(data, dtype=dtype, count=shape[0], offset=buffer.tell()).astype(np.int64)
