"""Model checkpoint files: a self-describing dict saved with torch.save, read with weights_only=True.

Payload keys:
    format "defendr-checkpoint", version, kind ("classifier", "denoised", "ensemble", ...), name,
    summary (one line for `defendr ls`), method, config (rebuilds the module with no CLI flags),
    state_dict, data {name, fingerprint, class_ids, class_names, image_size}, hparams,
    history (per-epoch dicts), best, provenance {seed, software_version, created,
    parents: [{role, name, fingerprint}]}.

Nothing outside core/io indexes that dict: the readers here return a typed
core.io.checkpoint_record.Checkpoint (validated once by core.io.checkpoint_schema.validate_payload
in `Checkpoint.from_payload`) and `save_checkpoint` takes one (`Checkpoint.to_payload()` is the
dict written, checked again before the write).

Only tensors, numbers, strings, lists, dicts, bools and None may appear: `torch.load` runs with
`weights_only=True`, so a file that asks to build any other object (a pickle whose `__reduce__`
would run code) is refused before anything runs. The file is read once: the fingerprint is the
hash of the very bytes that were loaded (`read_checkpoint_and_fingerprint`), so a file replaced
between two reads cannot pair one model's weights with another's fingerprint. Before torch reads
the zip, its entry names, sizes and compression ratios are checked (core.io.zip_entries), so a
deflate bomb or a duplicate entry is refused without inflating anything.

`complete` (bool, optional; absent means complete): False on the best-epoch side file of a
training run that has not finished (core.training.resume.best_path). `check_complete` refuses
anything but True or absent; model loaders call it. Rebuilding the module from a checkpoint is
core.models.loading's job; this module only reads, validates and writes the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from defendr_cli.core.atomic import write_bytes_atomic
from defendr_cli.core.errors import CorruptArtefactError, InputError
from defendr_cli.core.fingerprint import bytes_fingerprint
from defendr_cli.core.io.checkpoint_record import Checkpoint, summary_of_payload
from defendr_cli.core.io.checkpoint_schema import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, validate_payload
from defendr_cli.core.io.files import require_regular_file
from defendr_cli.core.io.zip_entries import check_zip_container

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoint", "check_complete", "read_checkpoint",
           "read_checkpoint_and_fingerprint", "read_checkpoint_summary", "save_checkpoint"]


def save_checkpoint(path: Path | str, checkpoint: Checkpoint, force: bool = True) -> Path:
    """Write `checkpoint.to_payload()` atomically to `path` (temporary file renamed when complete)."""
    payload = checkpoint.to_payload()
    validate_payload(payload, str(path))
    buffer = io.BytesIO()  # serialized first: its size is checked against the free space, and a
    torch.save(payload, buffer)  # full disk then fails in a plain write with a clear errno
    return write_bytes_atomic(Path(path), buffer.getbuffer(), force=force)


def read_checkpoint(path: Path | str) -> Checkpoint:
    """Load with torch.load(weights_only=True) on the CPU, validate, and type."""
    return read_checkpoint_and_fingerprint(path)[0]


def read_checkpoint_and_fingerprint(path: Path | str) -> tuple[Checkpoint, str]:
    """(validated checkpoint, fingerprint of the bytes it was loaded from): the file is read once."""
    path = Path(path)
    require_regular_file(path, what="checkpoint", hint="make it with: defendr train")  # never a FIFO/device
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptArtefactError(f"cannot read checkpoint {path}: {exc}") from exc
    try:
        check_zip_container(data, "checkpoint", path)
    except InputError as exc:
        raise CorruptArtefactError(exc.message) from exc
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/EOF/OS errors of many kinds all mean "unreadable"
        raise CorruptArtefactError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return Checkpoint.from_payload(payload, str(path)), bytes_fingerprint(data)


def read_checkpoint_summary(path: Path) -> str:
    """The checkpoint's one-line summary for `defendr ls`: torch.load(weights_only=True, mmap=True),
    so no code is unpickled and no weights are read; ValueError when it has none."""
    require_regular_file(path, what="checkpoint")
    return summary_of_payload(torch.load(path, map_location="cpu", weights_only=True, mmap=True))


def check_complete(checkpoint: Checkpoint, where: str) -> None:
    """CorruptArtefactError unless the checkpoint's `complete` is True or absent (see module docstring)."""
    if not checkpoint.is_complete:
        raise CorruptArtefactError(
            f"checkpoint {where} is the best epoch of a training run that did not complete "
            f"(complete={checkpoint.complete!r})",
            hint=f"finish it with: defendr train METHOD --name {checkpoint.name} --resume")

