"""Atomic file writes: write to a temporary sibling, rename into place only when complete.

A crash or Ctrl-C never leaves a file at the final path that looks valid; the temporary file
(`.<name>.partial-<pid>`) is removed on error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from defendr_cli.core.errors import ArtefactExistsError


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


@contextlib.contextmanager
def atomic_path(final: Path | str, *, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to `final`, on error delete it.

    Example:
        with atomic_path(out, force=args.force) as tmp:
            torch.save(payload, tmp)
    """
    final = Path(final)
    check_writable(final, force=force)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(final)
    if tmp.exists():
        tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
