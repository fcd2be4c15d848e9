"""Opening artefact files that may lie: only regular files are opened, and small files are read once.

A workspace file can be anything a user (or a hostile archive) put there: a FIFO named
`data/x.h5` (opening it blocks for ever), a symlink to `/dev/zero` (reading never ends), a
directory, a 10 GB "results.json". Every artefact reader checks the file with
`require_regular_file` before it opens it, and reads small files (JSON, prediction caches) with
`read_small_file`, which opens without blocking, checks what it opened and caps the bytes read.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from defendr_cli.core.errors import CorruptArtefactError, MissingArtefactError

SMALL_FILE_BYTES = 256 << 20  # a JSON report or a prediction cache entry is far below this

_KIND_WORDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """'a folder', 'a FIFO (named pipe)', ... for a stat mode that is not a regular file."""
    for test, words in _KIND_WORDS:
        if test(mode):
            return words
    return "not a regular file"


def require_regular_file(path: Path | str, *, what: str, hint: str | None = None) -> os.stat_result:
    """The stat of `path` (symlinks followed) when it is a regular file.

    MissingArtefactError (with `hint`) when nothing is there; CorruptArtefactError, naming the
    file, when it is a folder, FIFO, device or socket (opening those blocks or never ends).
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MissingArtefactError(f"no {what} at {path}", hint=hint) from None
    except OSError as exc:
        raise CorruptArtefactError(f"{path}: cannot examine this {what} ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise CorruptArtefactError(f"{path} is {file_kind(info.st_mode)}, not a {what} file")
    return info


def is_regular_file(path: Path | str) -> bool:
    """True when `path` (symlinks followed) is a regular file; never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_small_file(path: Path | str, *, what: str, hint: str | None = None,
                    max_bytes: int = SMALL_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path`, read once (opened non-blocking, checked after opening,
    at most `max_bytes`): CorruptArtefactError naming the file otherwise."""
    path = Path(path)
    require_regular_file(path, what=what, hint=hint)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise CorruptArtefactError(f"{path}: cannot open this {what} ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if not stat.S_ISREG(opened.st_mode):  # swapped between the check and the open
            raise CorruptArtefactError(f"{path} is {file_kind(opened.st_mode)}, not a {what} file")
        if opened.st_size > max_bytes:
            raise CorruptArtefactError(f"{path} is {opened.st_size} bytes, more than any {what} "
                                       f"({max_bytes} bytes at most)")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CorruptArtefactError(f"{path} grew past {max_bytes} bytes while being read")
    return data


def read_json_file(path: Path | str, *, what: str, hint: str | None = None, expect: type = dict,
                   max_bytes: int = SMALL_FILE_BYTES, allow_nan: bool = False) -> Any:
    """The JSON value of the file at `path`, which must be a `expect` (dict or list):
    CorruptArtefactError, naming the file, for invalid UTF-8/JSON, another type, or (unless
    `allow_nan`: reports that record an undefined figure as NaN) NaN/Infinity."""
    path = Path(path)
    data = read_small_file(path, what=what, hint=hint, max_bytes=max_bytes)
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=None if allow_nan else _refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptArtefactError(f"{path} is not a valid {what} (JSON: {reason[:120]})") from exc
    if not isinstance(value, expect):
        raise CorruptArtefactError(f"{path} is not a valid {what}: it holds a JSON {_json_type(value)} "
                                   f"where a JSON {_json_type(expect())} is expected")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")
