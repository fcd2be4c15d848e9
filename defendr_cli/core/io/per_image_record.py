"""The per-image record of an evaluation: one row per (image, attack, draw), HDF5, resumable.

File format (documented for users in docs/per_image_record.md): an HDF5 file whose root holds one
1-D dataset per column, all of the same length, in the order of `COLUMNS`; string columns are
fixed-width UTF-8 (`source_id` 128 bytes, `attack` and `broken_by` 32 bytes). Root attributes:
format ('defendr-per-image-record'), format_version (1), suite, budgets (JSON object), eps
(float64 array: 1 value, or 3 per-channel values, pixel units), seed, model_fingerprint, extra
(JSON object), complete (bool) and rows (the number of committed rows).

Writing: `PerImageRecordWriter` appends the rows of finished images to `.<name>.partial` beside
the final path, under the artefact's lock. Each `append` writes the rows, then commits them by
raising the `rows` attribute and flushing, so rows from an interrupted append are dropped when the
file is reopened. Reopening with the same header resumes: `finished` says which image indices are
done. `finalize` marks the file complete and renames it into place atomically. Reading validates
the structure (CorruptArtefactError otherwise) and refuses incomplete records unless asked.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from defendr_cli.core.atomic import atomic_path, write_guard
from defendr_cli.core.errors import ArtefactExistsError, CorruptArtefactError, InputError, MismatchError
from defendr_cli.core.io.h5 import open_h5
from defendr_cli.core.io.schema import Fields, check_storage, damaged_file_errors, read_h5_attrs
from defendr_cli.core.locks import artefact_lock

FORMAT = "defendr-per-image-record"
FORMAT_VERSION = 1
SOURCE_ID_BYTES = 128
NAME_BYTES = 32
HINT = "run defendr evaluate to make it"


@dataclass(frozen=True)
class Column:
    """One column: `name`, numpy `dtype` ('S<n>' for fixed-width UTF-8 strings), what it holds."""

    name: str
    dtype: str
    meaning: str

    @property
    def is_string(self) -> bool:
        return self.dtype.startswith("S")


COLUMNS = (
    Column("image", "int64", "row index of the image in the evaluated split"),
    Column("source_id", f"S{SOURCE_ID_BYTES}", "the image's source id in the clean cache"),
    Column("label", "int64", "true class index"),
    Column("draw", "int32", "draw of a randomized model (0 for a deterministic one)"),
    Column("attack", f"S{NAME_BYTES}", "attack of the suite this row reports"),
    Column("restart", "int32", "restart (or target) of the attack that broke the image, -1 if none"),
    Column("correct_before", "bool", "the model classified the clean image correctly (this draw)"),
    Column("broken", "bool", "this attack broke the image (this draw)"),
    Column("broken_by", f"S{NAME_BYTES}", "the attack that broke the image, '' if none"),
    Column("iteration", "int32", "iteration at which it broke, -1 if none"),
    Column("margin", "float32", "final true logit minus the best other logit"),
    Column("linf", "float32", "L-inf norm of the final perturbation (pixel units)"),
    Column("l2", "float32", "L2 norm of the final perturbation (pixel units)"),
    Column("forward_passes", "int64", "forward passes this attack spent on the image (counted)"),
    Column("backward_passes", "int64", "backward passes this attack spent on the image (counted)"),
)
COLUMN_NAMES = tuple(column.name for column in COLUMNS)
_BY_NAME = {column.name: column for column in COLUMNS}


@dataclass(frozen=True)
class RecordHeader:
    """What the record is of: suite name, budgets (JSON-able dict, e.g. {'apgd-ce': {'steps': 100}}),
    eps (pixel units: float or 3 per-channel values), seed, the model's fingerprint, and `extra`
    (any JSON-able dict). A resumed record must have the same header."""

    suite: str
    budgets: Mapping[str, Any]
    eps: float | Sequence[float]
    seed: int
    model_fingerprint: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def eps_array(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.eps, dtype=np.float64))

    def attrs(self) -> dict[str, Any]:
        """The header as HDF5 attributes."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "suite": self.suite,
                "budgets": json.dumps(self.budgets, sort_keys=True), "eps": self.eps_array(),
                "seed": int(self.seed), "model_fingerprint": self.model_fingerprint,
                "extra": json.dumps(self.extra, sort_keys=True)}

    def matches(self, other: RecordHeader) -> bool:
        return self.attrs()["budgets"] == other.attrs()["budgets"] and self.suite == other.suite \
            and np.array_equal(self.eps_array(), other.eps_array()) and int(self.seed) == int(other.seed) \
            and self.model_fingerprint == other.model_fingerprint \
            and self.attrs()["extra"] == other.attrs()["extra"]


@dataclass
class PerImageRecord:
    """A loaded record: `columns` maps every name of COLUMN_NAMES to a 1-D numpy array (strings as
    numpy unicode arrays), `header` the RecordHeader, `complete` the flag."""

    columns: dict[str, np.ndarray]
    header: RecordHeader
    complete: bool

    def __len__(self) -> int:
        return int(self.columns["image"].shape[0])


def partial_record_path(final: Path | str) -> Path:
    """Where an unfinished record lives while it is written and between interrupted runs."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial")


def _corrupt(path: Path, what: str) -> CorruptArtefactError:
    return CorruptArtefactError(f"{path} is not a valid per-image record: {what}", hint=HINT)


def _read_header(handle: h5py.File, path: Path) -> tuple[RecordHeader, bool, int]:
    """(header, complete, committed rows) from the root attributes; CorruptArtefactError if wrong."""
    attrs = read_h5_attrs(path, handle)
    if attrs.get("format") != FORMAT:
        raise _corrupt(path, f"its format attribute is {attrs.get('format')!r}, not {FORMAT!r}")
    if attrs.get("format_version") != FORMAT_VERSION:
        raise _corrupt(path, f"format version {attrs.get('format_version')!r} is not {FORMAT_VERSION}")
    try:
        header = RecordHeader(suite=str(attrs["suite"]), budgets=json.loads(attrs["budgets"]),
                              eps=[float(v) for v in np.atleast_1d(attrs["eps"])], seed=int(attrs["seed"]),
                              model_fingerprint=str(attrs["model_fingerprint"]), extra=json.loads(attrs["extra"]))
        fields = Fields(path, attrs, "per-image record")  # 'no' is not a flag, '5' not a row count
        complete, rows = fields.flag("complete"), fields.integer("rows")
        fields.numbers("eps", low=0.0)
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(path, f"attribute {exc} is missing or unreadable") from exc
    if len(header.eps) not in (1, 3) or rows < 0:
        raise _corrupt(path, "eps must hold 1 or 3 values and rows must be >= 0")
    return header, complete, rows


def _check_columns(handle: h5py.File, path: Path, rows: int, *, exact: bool) -> None:
    """Every column present, 1-D, of its dtype, with `rows` committed rows (exactly, if `exact`)."""
    for column in COLUMNS:
        dataset = handle.get(column.name)
        if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
            raise _corrupt(path, f"column {column.name} is missing or not 1-D")
        if dataset.dtype.str.lstrip("|<>=") != np.dtype(column.dtype).str.lstrip("|<>="):
            raise _corrupt(path, f"column {column.name} has dtype {dataset.dtype}, not {column.dtype}")
        length = dataset.shape[0]
        if length < rows or (exact and length != rows):
            raise _corrupt(path, f"column {column.name} has {length} rows, the record commits {rows}")
        check_storage(path, dataset, column.name, stored=exact)  # no filter; a complete file stores every byte


def _check_values(columns: Mapping[str, np.ndarray], path: Path) -> None:
    """Indices and counts are >= 0; draw >= 0; restart and iteration >= -1."""
    for name, low in (("image", 0), ("label", 0), ("draw", 0), ("restart", -1), ("iteration", -1),
                      ("forward_passes", 0), ("backward_passes", 0)):
        if columns[name].size and columns[name].min() < low:
            raise _corrupt(path, f"column {name} holds a value below {low}")


def _decoded(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8") for v in values.tolist()], dtype=str) if values.size else \
        np.zeros(0, dtype=str)


def load_per_image_record(path: Path | str, *, allow_incomplete: bool = False) -> PerImageRecord:
    """Read and validate a record (the final file, or a partial one with allow_incomplete=True).

    Returns PerImageRecord(columns: name -> 1-D array (strings decoded), header, complete).
    MissingArtefactError when absent; CorruptArtefactError when it is not a valid record, or is
    incomplete and allow_incomplete is False."""
    path = Path(path)
    with open_h5(path, what="per-image record", hint=HINT) as handle, damaged_file_errors(path, "per-image record"):
        header, complete, rows = _read_header(handle, path)
        if not complete and not allow_incomplete:
            raise _corrupt(path, "it is incomplete (the evaluation was interrupted; resume it)")
        _check_columns(handle, path, rows, exact=complete)
        columns = {column.name: handle[column.name][:rows] for column in COLUMNS}
    _check_values(columns, path)
    try:
        for column in COLUMNS:
            if column.is_string:
                columns[column.name] = _decoded(columns[column.name])
    except UnicodeDecodeError as exc:
        raise _corrupt(path, "a string column is not UTF-8") from exc
    return PerImageRecord(columns, header, complete)


def _encode_strings(name: str, values: Sequence[Any], width: int) -> np.ndarray:
    encoded = [str(v).encode("utf-8") for v in values]
    too_long = [v for v in encoded if len(v) > width]
    if too_long:
        raise InputError(f"column {name} holds {too_long[0][:40]!r}..., longer than its {width} UTF-8 bytes")
    return np.array(encoded, dtype=h5py.string_dtype("utf-8", width))  # 'S<width>' tagged UTF-8 for h5py


def column_arrays(rows: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """`rows` (every column name -> a sequence, all of one length) as arrays of the columns' dtypes;
    InputError for missing or unknown columns, unequal lengths or strings too long."""
    missing = [name for name in COLUMN_NAMES if name not in rows]
    unknown = sorted(set(rows) - set(COLUMN_NAMES))
    if missing or unknown:
        raise InputError(f"per-image rows: missing columns {missing}, unknown columns {unknown}")
    arrays = {}
    for column in COLUMNS:
        values = rows[column.name]
        if column.is_string:
            arrays[column.name] = _encode_strings(column.name, list(np.asarray(values, dtype=object).reshape(-1)),
                                                  int(column.dtype[1:]))
        else:
            arrays[column.name] = np.asarray(values).astype(column.dtype).reshape(-1)
    lengths = {array.shape[0] for array in arrays.values()}
    if len(lengths) != 1:
        raise InputError(f"per-image rows: columns of different lengths {sorted(lengths)}")
    return arrays


def _create_columns(handle: h5py.File, header: RecordHeader) -> None:
    for key, value in header.attrs().items():
        handle.attrs[key] = value
    handle.attrs["complete"] = False
    handle.attrs["rows"] = 0
    for column in COLUMNS:
        dtype = h5py.string_dtype("utf-8", int(column.dtype[1:])) if column.is_string else column.dtype
        handle.create_dataset(column.name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1024,))


def _write_final(final: Path, header: RecordHeader, arrays: Mapping[str, np.ndarray]) -> None:
    """The complete record: contiguous datasets, complete=True, renamed into place atomically."""
    with atomic_path(final, force=True) as tmp:
        with h5py.File(tmp, "w") as handle:
            for key, value in header.attrs().items():
                handle.attrs[key] = value
            handle.attrs["complete"] = True
            handle.attrs["rows"] = int(arrays["image"].shape[0])
            for column in COLUMNS:
                dtype = h5py.string_dtype("utf-8", int(column.dtype[1:])) if column.is_string else column.dtype
                handle.create_dataset(column.name, data=arrays[column.name], dtype=dtype)


class PerImageRecordWriter:
    """Append the rows of finished images; resume an interrupted record; finalize atomically.

    `PerImageRecordWriter(final, header)` holds the artefact's lock until `close()`/`finalize()`
    (also as a context manager; leaving the block without `finalize()` keeps the partial file for
    a later resume). It resumes the partial file beside `final` when one exists with the same
    header (MismatchError otherwise; CorruptArtefactError when it is unreadable; `fresh=True`
    discards it). An existing complete record is an ArtefactExistsError unless `force`.
    `finished`: sorted int64 image indices whose rows are committed.
    """

    def __init__(self, final: Path | str, header: RecordHeader, *, force: bool = False, fresh: bool = False) -> None:
        self.path, self.header = Path(final), header
        self.partial = partial_record_path(self.path)
        if self.path.exists() and not force:
            raise ArtefactExistsError(f"{self.path} already exists", hint="pass --force to overwrite it")
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(artefact_lock(self.path))
        try:
            with write_guard(self.path, self.partial):
                self._handle = self._open(fresh)
        except BaseException:
            self._stack.close()
            raise
        self._stack.callback(self._handle.close)
        rows = int(self._handle.attrs["rows"])
        self._finished = set(np.unique(self._handle["image"][:rows]).tolist())

    def _open(self, fresh: bool) -> h5py.File:
        if fresh and self.partial.exists():
            self.partial.unlink()
        if not self.partial.exists():
            handle = h5py.File(self.partial, "w")
            _create_columns(handle, self.header)
            handle.flush()
            return handle
        try:
            handle = h5py.File(self.partial, "r+")
        except OSError as exc:
            raise _corrupt(self.partial, f"unreadable HDF5 ({exc.__class__.__name__}); start over with a "
                           "fresh evaluation") from exc
        try:
            self._check_resumable(handle)
        except BaseException:
            handle.close()
            raise
        return handle

    def _check_resumable(self, handle: h5py.File) -> None:
        """Same header as this writer's; rows past the committed count are dropped."""
        header, _, rows = _read_header(handle, self.partial)
        _check_columns(handle, self.partial, rows, exact=False)
        if not header.matches(self.header):
            raise MismatchError(f"{self.partial} was written for a different evaluation (suite, budgets, eps, "
                                "seed or model differ): it cannot be resumed", hint="start a fresh evaluation")
        for column in COLUMNS:
            handle[column.name].resize((rows,))

    @property
    def finished(self) -> np.ndarray:
        return np.array(sorted(self._finished), dtype=np.int64)

    @property
    def rows(self) -> int:
        return int(self._handle.attrs["rows"])

    def append(self, rows: Mapping[str, Any]) -> None:
        """Commit the rows (see `column_arrays`) of images that are finished; their image indices
        join `finished`. MismatchError for an image whose rows were committed before."""
        arrays = column_arrays(rows)
        images = set(np.unique(arrays["image"]).tolist())
        again = sorted(images & self._finished)
        if again:
            raise MismatchError(f"images {again[:5]} already have rows in {self.partial}")
        start, count = self.rows, int(arrays["image"].shape[0])
        with write_guard(self.path, self.partial):
            for column in COLUMNS:
                dataset = self._handle[column.name]
                dataset.resize((start + count,))
                dataset[start:] = arrays[column.name]
            self._handle.flush()
            self._handle.attrs["rows"] = start + count  # the commit
            self._handle.flush()
        self._finished |= images

    def finalize(self) -> Path:
        """Write the complete record (contiguous columns, complete=True) at the final path
        atomically, remove the partial file and release the lock. Returns the final path."""
        rows = self.rows
        arrays = {column.name: self._handle[column.name][:rows] for column in COLUMNS}
        self._handle.close()
        _write_final(self.path, self.header, arrays)
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()
        self._stack.close()
        return self.path

    def close(self) -> None:
        """Close without finishing: the partial file stays for a resume."""
        self._stack.close()

    def __enter__(self) -> PerImageRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _csv_cell(value: Any) -> str:
    if isinstance(value, (np.floating, float)):
        return format(float(value), ".9g")  # 9 significant digits round-trip float32
    return str(value)


def to_csv(record: PerImageRecord, path: Path | str) -> Path:
    """The record's columns as CSV (header row of column names, booleans True/False), written
    atomically; `pandas.read_csv(path)` loads it. The header attributes are not in the CSV."""
    path = Path(path)
    with atomic_path(path, force=True) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMN_NAMES)
            columns = [record.columns[name].tolist() for name in COLUMN_NAMES]
            for row in zip(*columns):
                writer.writerow([_csv_cell(value) for value in row])
    return path


def robust_by_image(record: PerImageRecord) -> tuple[np.ndarray, np.ndarray]:
    """(image indices int64 (M,) sorted, robust bool (M,)): an image is robust when it was
    correct before in every row (every draw) and no attack broke it in any row (any draw)."""
    images, inverse = np.unique(record.columns["image"], return_inverse=True)
    held = record.columns["correct_before"] & ~record.columns["broken"]
    robust = np.ones(images.shape[0], dtype=bool)
    np.logical_and.at(robust, inverse.reshape(-1), held)
    return images.astype(np.int64), robust


def robust_accuracy_from_record(record: PerImageRecord) -> float:
    """Fraction in [0, 1] of the record's images that are robust (see `robust_by_image`);
    InputError for a record without rows."""
    images, robust = robust_by_image(record)
    if images.size == 0:
        raise InputError("the per-image record has no rows: no robust accuracy to compute")
    return float(robust.mean())


def merge_records(records: Sequence[PerImageRecord]) -> PerImageRecord:
    """One record from several with the same header (e.g. the shards of a multi-process run):
    rows ordered by image index (stable: each image's rows keep their order). MismatchError when
    the headers differ or an image has rows in two records; InputError for no records."""
    if not records:
        raise InputError("no per-image records to merge")
    header = records[0].header
    if any(not record.header.matches(header) for record in records[1:]):
        raise MismatchError("the per-image records to merge were written for different evaluations")
    seen: set[int] = set()
    for record in records:
        images = set(np.unique(record.columns["image"]).tolist())
        if images & seen:
            raise MismatchError(f"images {sorted(images & seen)[:5]} have rows in two of the records to merge")
        seen |= images
    columns = {name: np.concatenate([record.columns[name] for record in records]) for name in COLUMN_NAMES}
    order = np.argsort(columns["image"], kind="stable")
    return PerImageRecord({name: values[order] for name, values in columns.items()}, header,
                          all(record.complete for record in records))
