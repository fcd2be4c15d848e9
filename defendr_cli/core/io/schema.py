"""Typed access to the attributes of an artefact that may lie, and the HDF5 dataset checks.

Every value read from an artefact's attributes goes through `Fields`: a wrong type, a NaN, a
string where a flag is expected (`complete='no'`), a JSON list where an object is expected all
become ONE CorruptArtefactError that names the file and the attribute, never a TypeError or a
traceback from deep inside a stage. `check_dataset` checks that an HDF5 member is a dataset (not a
group) of the expected kind, rank and shape, without a compression filter (Defendr never writes
one: a filter lets a small file declare gigabytes) and with its storage actually in the file, so a
declared shape of 10^9 rows is refused before anything is allocated.

The schema of each artefact lives beside its reader: clean caches (`core.io.reader`),
adversarial sets (`core.io.adversarial`), checkpoint payloads and ensemble manifests
(`core.io.checkpoint`), prediction cache entries (`core.io.prediction_file`), report results
(`core.io.report_file`).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from defendr_cli.core.errors import CorruptArtefactError

MISSING = object()
# what h5py raises for damaged metadata or data (a bit flip in an attribute heap gives RuntimeError)
H5_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError)


def plain_value(value: Any) -> Any:
    """An HDF5 attribute value as plain Python: arrays as lists, bytes as str, numpy scalars as items."""
    if isinstance(value, np.ndarray):
        return [plain_value(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value.tolist()
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


@contextlib.contextmanager
def damaged_file_errors(path: Path | str, what: str) -> Iterator[None]:
    """Turn what h5py raises for a damaged file inside the block (H5_READ_ERRORS) into ONE
    CorruptArtefactError naming the file; Defendr's own errors pass through unchanged."""
    try:
        yield
    except H5_READ_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise CorruptArtefactError(f"{path}: this {what} cannot be read, it is damaged "
                                   f"({type(exc).__name__}: {reason[:120]})") from exc


def read_h5_attrs(path: Path, handle: h5py.File | h5py.Group) -> dict[str, Any]:
    """Every attribute of `handle` as plain values; CorruptArtefactError when one cannot be read."""
    out = {}
    try:
        for key in handle.attrs.keys():
            out[key] = plain_value(handle.attrs[key])
    except H5_READ_ERRORS as exc:
        raise CorruptArtefactError(f"{path}: an attribute cannot be read ({type(exc).__name__}: {exc})") from exc
    return out


class Fields:
    """Typed reads of a mapping of attributes of the artefact `path` (a `what`, e.g. 'adversarial set').

    Each getter returns the value converted to the named type, `default` when the key is absent
    (CorruptArtefactError when there is no default), and CorruptArtefactError naming the file and
    the key for a value of another type.
    """

    def __init__(self, path: Path | str, values: Mapping[str, Any], what: str) -> None:
        self.path, self.values, self.what = Path(path), values, what

    def bad(self, key: str, expected: str) -> CorruptArtefactError:
        shown = repr(self.values.get(key, None))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return CorruptArtefactError(f"{self.path} is a damaged {self.what}: '{key}' is {shown}, expected {expected}")

    def _get(self, key: str, default: Any) -> Any:
        if key in self.values:
            return self.values[key]
        if default is MISSING:
            raise CorruptArtefactError(f"{self.path} is a damaged {self.what}: it lacks '{key}'")
        return default

    def _typed(self, key: str, default: Any, valid: Callable[[Any], bool], expected: str,
               convert: Callable[[Any], Any] = lambda value: value) -> Any:
        """The value of `key` converted by `convert` when `valid` accepts it; `default` (as it is)
        when the key is absent; CorruptArtefactError `bad(key, expected)` otherwise."""
        value = self._get(key, default)
        if value is default and key not in self.values:
            return value
        if not valid(value):
            raise self.bad(key, expected)
        return convert(value)

    def text(self, key: str, default: Any = MISSING, *, choices: Sequence[str] | None = None) -> str:
        return self._typed(key, default, lambda v: isinstance(v, str) and (choices is None or v in choices),
                           f"one of {', '.join(choices)}" if choices else "a string")

    def integer(self, key: str, default: Any = MISSING, *, minimum: int | None = None) -> int:
        def valid(value: Any) -> bool:
            return not isinstance(value, bool) and isinstance(value, int) and (minimum is None or value >= minimum)

        return self._typed(key, default, valid, "an integer" + (f" >= {minimum}" if minimum is not None else ""), int)

    def number(self, key: str, default: Any = MISSING, *, low: float | None = None,
               high: float | None = None) -> float:
        """A finite float (ints accepted) within [low, high] when given."""
        return self._typed(key, default,
                           lambda v: is_finite_number(v) and (low is None or v >= low) and (high is None or v <= high),
                           "a finite number" + (f" in [{low}, {high}]" if low is not None and high is not None else ""),
                           float)

    def numbers(self, key: str, default: Any = MISSING, *, low: float | None = None) -> float | list[float]:
        """A finite float or a non-empty list of finite floats (e.g. a per-channel eps)."""
        def valid(value: Any) -> bool:
            items = value if isinstance(value, list) else [value]
            return bool(items) and all(is_finite_number(v) and (low is None or v >= low) for v in items)

        return self._typed(key, default, valid,
                           "a finite number or a list of them" + (f", each >= {low}" if low is not None else ""),
                           lambda v: [float(x) for x in v] if isinstance(v, list) else float(v))

    def flag(self, key: str, default: Any = MISSING) -> bool:
        """A boolean; a string such as 'no' or 'false' is not one (it would read as True)."""
        return self._typed(key, default, lambda v: isinstance(v, bool), "a boolean")

    def texts(self, key: str, default: Any = MISSING) -> list[str]:
        return self._typed(key, default, lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                           "a list of strings", list)

    def json_object(self, key: str, default: Any = MISSING) -> dict:
        """A JSON text (or an already decoded mapping) holding an object."""
        def decoded(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            try:
                return json.loads(value, parse_constant=_no_constant)
            except ValueError:
                return None

        return self._typed(key, default, lambda v: isinstance(decoded(v), dict), "a JSON object", decoded)

    def mapping(self, key: str, default: Any = MISSING) -> dict:
        return self._typed(key, default, lambda v: isinstance(v, dict), "a mapping")

    def sequence(self, key: str, default: Any = MISSING) -> list:
        return self._typed(key, default, lambda v: isinstance(v, (list, tuple)), "a list", list)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def is_finite_number(value: Any) -> bool:
    """True for an int or float (not a bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_dataset(path: Path, handle: h5py.Group, key: str, *, kinds: str, shape: Sequence[int | None],
                  what: str, stored: bool = True) -> h5py.Dataset:
    """The dataset `key` of `handle`, CorruptArtefactError naming the file and the key unless it is
    a dataset (not a group, not absent) whose dtype kind is one of `kinds` (numpy kind letters,
    e.g. 'iu' integers, 'b' bool, 'f' float, 'O' strings), of `shape` (None = any length), stored
    without a filter and (unless `stored` is False) with all its bytes present in the file."""
    try:
        member = handle.get(key)
    except H5_READ_ERRORS as exc:
        raise CorruptArtefactError(f"{path}: '{key}' of this {what} cannot be read ({type(exc).__name__})") from exc
    if member is None:
        raise CorruptArtefactError(f"{path} is a damaged {what}: it lacks the dataset '{key}'")
    if not isinstance(member, h5py.Dataset):
        raise CorruptArtefactError(f"{path} is a damaged {what}: '{key}' is a {type(member).__name__.lower()}, "
                                   f"not a dataset")
    dims = tuple(member.shape) if member.shape is not None else None
    wanted = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    if (dims is None or len(dims) != len(shape) or any(s is not None and s != d for s, d in zip(shape, dims))
            or member.dtype.kind not in kinds):
        raise CorruptArtefactError(f"{path}: dataset '{key}' is {member.dtype} {dims}, expected {_kind_words(kinds)} "
                                   f"{wanted}")
    check_storage(path, member, key, stored=stored)
    return member


def check_storage(path: Path, dataset: h5py.Dataset, key: str, *, stored: bool = True) -> None:
    """CorruptArtefactError when `dataset` uses a filter (compression) or its declared bytes are
    not all stored in the file (a huge declared shape backed by nothing)."""
    try:
        filters = dataset.id.get_create_plist().get_nfilters()
        stored_bytes = dataset.id.get_storage_size()
    except (OSError, ValueError) as exc:
        raise CorruptArtefactError(f"{path}: dataset '{key}' cannot be examined ({type(exc).__name__})") from exc
    if filters:
        raise CorruptArtefactError(f"{path}: dataset '{key}' is compressed or filtered; Defendr never writes such "
                                   f"datasets")
    if not stored:
        return
    declared = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize if dataset.shape else 0
    if dataset.dtype.kind != "O" and stored_bytes < declared:
        raise CorruptArtefactError(f"{path}: dataset '{key}' declares {declared} bytes but {stored_bytes} are stored "
                                   f"(a truncated or forged file)")


def _kind_words(kinds: str) -> str:
    words = {"i": "integer", "u": "unsigned", "b": "bool", "f": "float", "O": "string", "S": "string"}
    return "/".join(dict.fromkeys(words.get(k, k) for k in kinds))
