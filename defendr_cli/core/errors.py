"""Typed errors raised by the library; the CLI maps each to one line and exit code 1.

Every message is a complete sentence a user can act on. `hint` names the command that fixes the
problem when there is one (e.g. the stage that makes a missing artefact).
"""

from __future__ import annotations


class DefendrError(Exception):
    """Base of every error the library raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(DefendrError):
    """A value the user gave is invalid (bad eps string, bad split spec, unknown option value)."""


class MissingArtefactError(DefendrError):
    """A file the stage needs does not exist; `hint` says which command makes it."""


class ArtefactExistsError(DefendrError):
    """Refusing to overwrite an existing artefact without --force."""


class CorruptArtefactError(DefendrError):
    """A cache or checkpoint exists but is unreadable, incomplete or of an unknown format/version."""


class MismatchError(DefendrError):
    """Artefacts that must agree do not (class lists, image size, fingerprints, alignment)."""


class SourceError(DefendrError):
    """The image source cannot be used (missing folder, too few images in a class...)."""


class TrainingDivergedError(DefendrError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


class ArtefactBusyError(DefendrError):
    """Another process is writing the same artefact right now; nothing was changed."""


class WriteError(DefendrError):
    """The file system refused a write (disk full, read-only, no permission); earlier artefacts are
    untouched and no partial file is left that looks valid."""
