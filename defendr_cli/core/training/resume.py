"""Resume state of an interrupted training run, kept beside the model as `models/.<name>.resume.pt`.

The file is hidden (a leading dot) so `defendr ls` does not list it. It holds the state at the end
of the last completed epoch, all plain tensors/values (weights_only loadable):
    format "defendr-resume", version, options (TrainOptions.to_dict()), epoch (last completed,
    0-based), state_dict (module weights of that epoch), optimizer, scheduler, scaler (state dicts),
    history, best, data_fingerprint.
RNG streams are derived from (seed, epoch) at the start of every epoch (core.training.data.epoch_seed),
so restarting from an epoch boundary reproduces the uninterrupted run exactly.
It is deleted when the run completes.

The best epoch so far goes to a second hidden file, `models/.<name>.best.pt` (`best_path`): a
checkpoint payload with `complete: False`. Only when the run completes is it written, with the
full history and `complete: True`, to `models/<name>.pt`: an interrupted `train --force` leaves
the previous complete model byte for byte as it was, and loaders refuse a checkpoint whose
`complete` is not True.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from defendr_cli.core.atomic import write_bytes_atomic
from defendr_cli.core.errors import CorruptArtefactError, MissingArtefactError
from defendr_cli.core.workspace import Workspace

RESUME_FORMAT = "defendr-resume"
RESUME_VERSION = 1
STATE_TYPES = {"options": dict, "epoch": int, "state_dict": dict, "optimizer": dict, "scheduler": dict,
               "scaler": dict, "history": list, "best": (dict, type(None)), "data_fingerprint": str}


def resume_path(workspace: Workspace, name: str) -> Path:
    return workspace.dir_for("model", create=True) / f".{name}.resume.pt"


def best_path(workspace: Workspace, name: str) -> Path:
    """The hidden side file holding the best epoch of a run that has not completed."""
    return workspace.dir_for("model", create=True) / f".{name}.best.pt"


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()  # serialized first, so a full disk fails in a plain write (see core.atomic)
    torch.save({"format": RESUME_FORMAT, "version": RESUME_VERSION, **state}, buffer)
    write_bytes_atomic(path, buffer.getbuffer(), force=True)


def load_resume_state(path: Path, name: str) -> dict[str, Any]:
    if not path.is_file():
        raise MissingArtefactError(f"no interrupted run of '{name}' to resume (no {path.name} in {path.parent})",
                                   hint="start it without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable file of any kind
        raise CorruptArtefactError(f"cannot read resume state {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT or state.get("version") != RESUME_VERSION:
        raise CorruptArtefactError(f"{path} is not a defendr resume state of version {RESUME_VERSION}")
    wrong = [key for key, kinds in STATE_TYPES.items() if not isinstance(state.get(key), kinds)
             or (kinds is int and isinstance(state.get(key), bool))]
    if wrong or state["epoch"] < 0:
        raise CorruptArtefactError(f"resume state {path} is damaged: {', '.join(wrong) or 'epoch'} missing or of "
                                   f"the wrong type", hint="start the run afresh with --force")
    return state


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """module.state_dict() with every tensor on the CPU, for saving right away.

    On a CPU device the tensors are the module's own (no copy): they change when training goes on,
    so save them before the next optimizer step, or clone them to keep them.
    """
    return {key: value.detach().to("cpu") for key, value in module.state_dict().items()}
