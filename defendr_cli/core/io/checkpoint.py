"""Model checkpoint files: a self-describing dict saved with torch.save, read with weights_only=True.

Payload keys:
    format "defendr-checkpoint", version, kind ("classifier", "denoised", "ensemble", ...), name,
    summary (one line for `defendr ls`), method, config (rebuilds the module with no CLI flags),
    state_dict, data {name, fingerprint, class_ids, class_names, image_size}, hparams,
    history (per-epoch dicts), best, provenance {seed, software_version, created,
    parents: [{role, name, fingerprint}]}.

Only tensors, numbers, strings, lists, dicts, bools and None may appear: `torch.load` runs with
`weights_only=True`, so a file that asks to build any other object (a pickle whose `__reduce__`
would run code) is refused before anything runs. The file is read once: the fingerprint is the
hash of the very bytes that were loaded (`read_checkpoint_and_fingerprint`), so a file replaced
between two reads cannot pair one model's weights with another's fingerprint. Before torch reads
the zip, its entry names, sizes and compression ratios are checked (core.io.zip_entries), so a
deflate bomb or a duplicate entry is refused without inflating anything.

`complete` (bool, optional; absent means complete): False on the best-epoch side file of a
training run that has not finished (core.training.resume.best_path). `check_complete` refuses
anything but True or absent; model loaders call it. Rebuilding the module from a payload is
core.models.loading's job; this module only reads, validates and writes the file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from defendr_cli.core.atomic import write_bytes_atomic
from defendr_cli.core.errors import CorruptArtefactError, InputError
from defendr_cli.core.fingerprint import bytes_fingerprint
from defendr_cli.core.io.checkpoint_schema import checkpoint_fields
from defendr_cli.core.io.files import require_regular_file
from defendr_cli.core.io.zip_entries import check_zip_container

CHECKPOINT_FORMAT = "defendr-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "kind", "name", "config")
KEY_TYPES = {"kind": str, "name": str, "summary": str, "config": dict, "state_dict": dict, "data": dict,
             "hparams": dict, "history": list, "provenance": dict}


def save_checkpoint(path: Path | str, payload: dict[str, Any], force: bool = True) -> Path:
    """Write `payload` atomically to `path` (temporary file renamed when complete)."""
    validate_payload(payload, str(path))
    buffer = io.BytesIO()  # serialized first: its size is checked against the free space, and a
    torch.save(payload, buffer)  # full disk then fails in a plain write with a clear errno
    return write_bytes_atomic(Path(path), buffer.getbuffer(), force=force)


def read_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load with torch.load(weights_only=True) on the CPU and validate format and version."""
    return read_checkpoint_and_fingerprint(path)[0]


def read_checkpoint_and_fingerprint(path: Path | str) -> tuple[dict[str, Any], str]:
    """(validated payload, fingerprint of the bytes it was loaded from): the file is read once."""
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
    validate_payload(payload, str(path))
    return payload, bytes_fingerprint(data)


def check_complete(payload: dict[str, Any], where: str) -> None:
    """CorruptArtefactError unless the checkpoint's `complete` is True or absent (see module docstring)."""
    complete = payload.get("complete", True)
    if complete is not True:
        raise CorruptArtefactError(
            f"checkpoint {where} is the best epoch of a training run that did not complete "
            f"(complete={complete!r})", hint=f"finish it with: defendr train METHOD --name {payload.get('name')} --resume")


def validate_payload(payload: Any, where: str) -> None:
    """CorruptArtefactError unless `payload` is a dict in this format with the required keys."""
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CorruptArtefactError(f"{where} is not a defendr checkpoint (format '{CHECKPOINT_FORMAT}')")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CorruptArtefactError(f"checkpoint {where} lacks {', '.join(missing)}")
    wrong = [f"{key} ({type(payload[key]).__name__}, not {kind.__name__})" for key, kind in KEY_TYPES.items()
             if key in payload and not isinstance(payload[key], kind)]
    if wrong:
        raise CorruptArtefactError(f"checkpoint {where} has keys of the wrong type: {', '.join(wrong)}")
    version = payload["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1 or version > CHECKPOINT_VERSION:
        raise CorruptArtefactError(
            f"checkpoint {where} has version {version!r}; this defendr reads versions 1..{CHECKPOINT_VERSION}"
        )
    checkpoint_fields(payload, where)  # the type of every key a stage reads
