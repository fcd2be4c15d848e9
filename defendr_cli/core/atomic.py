"""Atomic file writes: write to a temporary sibling, rename into place only when complete.

A crash, Ctrl-C, a full disk or a read-only folder never leaves a file at the final path that
looks valid: the temporary file (`.<name>.partial-<pid>`) is removed on error and the previous
artefact at the final path, if any, stays as it was. While a write runs, the artefact's lock
(core.locks) is held, so two processes never write the same artefact at once. File-system
refusals become one-line WriteErrors that name the path and, for a full disk, how much space was
needed against how much was free.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from defendr_cli.core.errors import ArtefactExistsError, WriteError
from defendr_cli.core.locks import artefact_lock

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)
MB = 1 << 20


def partial_path(final: Path) -> Path:
    """The temporary path used while `final` is being written (same folder, so rename is atomic)."""
    final = Path(final)
    return final.with_name(f".{final.name}.partial-{os.getpid()}")


def check_writable(final: Path, *, force: bool) -> None:
    """Raise ArtefactExistsError when `final` exists and `force` is False."""
    if Path(final).exists() and not force:
        raise ArtefactExistsError(
            f"{final} already exists", hint="pass --force to overwrite it"
        )


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system holding `folder` (its nearest existing ancestor)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_space(final: Path, needed_bytes: int) -> None:
    """WriteError before anything is written when `needed_bytes` will not fit beside `final`."""
    free = free_bytes(Path(final).parent)
    if needed_bytes > free:
        raise WriteError(f"not enough space to write {final}: it needs about {needed_bytes / MB:.1f} MB, "
                         f"{free / MB:.1f} MB are free")


def os_error_code(exc: BaseException) -> int | None:
    """The errno behind `exc`, also when a library (h5py, torch) only put it in the message."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    text = str(exc).lower()
    if "no space left" in text or "errno = 28" in text:
        return errno.ENOSPC
    if "read-only file system" in text or "errno = 30" in text:
        return errno.EROFS
    if "permission denied" in text or "errno = 13" in text:
        return errno.EACCES
    return None


def as_write_error(exc: BaseException, final: Path, written: Path | None = None) -> WriteError | None:
    """The one-line WriteError for a file-system refusal while writing `final`, else None.

    written: the partial file, whose size says how much was written before the disk filled up.
    """
    code = os_error_code(exc)
    final = Path(final)
    if code in _NO_SPACE:
        done = written.stat().st_size if written is not None and written.exists() else 0
        free = free_bytes(final.parent)
        return WriteError(f"no space left on the device writing {final}: it needed more than the "
                          f"{(done + free) / MB:.1f} MB that were free; the earlier artefacts are untouched")
    if code in _REFUSED:
        return WriteError(f"cannot write {final}: {os.strerror(code).lower()}")
    return None


@contextlib.contextmanager
def write_guard(final: Path | str, written: Path | None = None) -> Iterator[None]:
    """Turn file-system refusals raised inside the block into WriteError (see `as_write_error`)."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        error = as_write_error(exc, Path(final), written)
        if error is None:
            raise
        raise error from exc


@contextlib.contextmanager
def atomic_path(final: Path | str, *, force: bool = True, needed_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to `final`, on error delete it.

    needed_bytes: the expected size, checked against the free space before anything is written.

    Example:
        with atomic_path(out, force=args.force) as tmp:
            torch.save(payload, tmp)
    """
    final = Path(final)
    check_writable(final, force=force)
    with write_guard(final):
        final.parent.mkdir(parents=True, exist_ok=True)
    with artefact_lock(final):
        if needed_bytes is not None:
            check_space(final, needed_bytes)
        tmp = partial_path(final)
        try:
            with write_guard(final, tmp):
                if tmp.exists():
                    tmp.unlink()
                yield tmp
                os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


def write_bytes_atomic(final: Path | str, data: bytes | memoryview, *, force: bool = True) -> Path:
    """Write `data` to `final` atomically, its size checked against the free space first."""
    with atomic_path(final, force=force, needed_bytes=memoryview(data).nbytes) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(final)
