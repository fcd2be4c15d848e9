"""References from a composite checkpoint (denoised, ensemble) to the checkpoints it builds on.

A reference is a core.io.checkpoint_record.Reference (role "target"|"member", name, fingerprint),
one of the checkpoint's `provenance.parents`. `name` is a workspace model name (or a path for a checkpoint that
lives outside the workspace); `fingerprint` is `file_fingerprint` of the file when the composite
was made. Loading re-checks it on the bytes actually loaded: a changed file is a MismatchError, a missing one a
MissingArtefactError naming the command that makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from defendr_cli.core.errors import MismatchError
from defendr_cli.core.io.checkpoint_record import Reference
from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.workspace import Workspace


def reference_name(workspace: Workspace, path: Path) -> str:
    """The name to store for a checkpoint at `path`: its stem inside the workspace, else its path."""
    path = Path(path)
    try:
        inside = path.resolve().parent == workspace.models_dir.resolve()
    except OSError:
        inside = False
    return path.stem if inside and path.suffix == ".pt" else str(path.resolve())


def make_reference(workspace: Workspace, role: str, path: Path, fingerprint: str | None = None) -> Reference:
    """A reference to the checkpoint at `path` (fingerprint computed unless given)."""
    return Reference(role, reference_name(workspace, path), fingerprint or file_fingerprint(path))


def load_reference(workspace: Workspace, reference: Reference, *, owner: str, load: Callable[[Path], Any]) -> Any:
    """The referenced checkpoint loaded with `load(path)` (a core.models.loading.LoadedModel), after
    checking that the fingerprint of the bytes it was loaded from is the recorded one.

    One read: the check is on what was loaded, not on a second read of the file.
    owner: the composite's name, used in messages ('ensemble 'best'').
    """
    name = reference.name
    loaded = load(workspace.resolve("model", name))
    if loaded.fingerprint != reference.fingerprint:
        raise MismatchError(
            f"{owner} was built on {reference.role or 'model'} '{name}' with fingerprint "
            f"{reference.fingerprint}, but {loaded.path} now has fingerprint {loaded.fingerprint}",
            hint=f"rebuild {owner} against the current '{name}'",
        )
    return loaded

