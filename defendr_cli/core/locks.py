"""One writer per artefact: an advisory lock file beside the artefact, held while it is written.

`artefact_lock(final)` takes an exclusive `fcntl.flock` on `<folder>/.<name>.lock` without
waiting. When another process holds it, ArtefactBusyError names that process (its pid and
command line, which the holder writes into the lock file), and nothing is touched. The lock is
re-entrant within a process (a stage that locks its output can call writers that lock it again)
and released when the outermost holder exits, also on Ctrl-C; the kernel drops it if the process
dies, so a crashed writer never leaves a stale lock behind. The holder removes the lock file
before it lets go; a process that locked a file that was removed meanwhile notices (the path no
longer names the inode it holds) and tries again, so removal never lets two writers in.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from defendr_cli.core.errors import ArtefactBusyError, WriteError

_HELD: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth) held by this process


def lock_path(final: Path) -> Path:
    """The lock file of the artefact at `final` (same folder, hidden)."""
    final = Path(final)
    return final.with_name(f".{final.name}.lock")


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def artefact_lock(final: Path | str) -> Iterator[Path]:
    """Hold the write lock of `final` for the duration of the block (see the module docstring)."""
    path = lock_path(Path(final))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot write in {path.parent}: {(exc.strerror or str(exc)).lower()}") from exc
    key = os.path.join(os.path.realpath(path.parent), path.name)
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
        try:
            yield path
        finally:
            fd, depth = _HELD[key]
            _HELD[key] = (fd, depth - 1)
        return
    fd = _acquire(path, Path(final))
    _HELD[key] = (fd, 1)
    try:
        yield path
    finally:
        fd, depth = _HELD[key]
        if depth <= 1:
            del _HELD[key]
            with contextlib.suppress(OSError):
                path.unlink()  # while still holding it (see the module docstring)
            os.close(fd)  # closing the descriptor releases the flock
        else:
            _HELD[key] = (fd, depth - 1)


def _acquire(path: Path, final: Path) -> int:
    """An open descriptor of `path` holding its exclusive flock (ArtefactBusyError if taken)."""
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WriteError(f"cannot write in {path.parent}: {(exc.strerror or str(exc)).lower()}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArtefactBusyError(f"{final} is being written by {_holder(path)}",
                                    hint="wait for it to finish, or stop it, then run this again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed it after we opened it: lock the new one
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"process {os.getpid()} ({' '.join(sys.argv)[:200]})".encode())
        except OSError:
            pass  # the description is a courtesy; the lock itself is held
        return fd
    raise ArtefactBusyError(f"{final} is being locked and unlocked by other processes too often to write it")
