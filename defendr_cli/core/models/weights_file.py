"""Reading a user's weights file into a state dict, and loading it strictly into a module.

Formats: a PyTorch state dict (`.pth` / `.pt` / `.bin`, read with torch.load(weights_only=True):
only tensors and plain containers are rebuilt, nothing is unpickled) or a `.safetensors` file
(the safetensors package: a JSON header and raw tensor bytes, no code at all).

Two common wrappings are undone, and reported: a dict holding the weights under "state_dict",
"model" or "model_state_dict", and a "module." prefix on every key (saved from DataParallel or
DistributedDataParallel).
A tensor holding NaN or Inf is refused (InputError naming it): such a model reads as robust.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from defendr_cli.core.errors import InputError, MismatchError, MissingArtefactError
from defendr_cli.core.io.zip_entries import check_zip_container, read_regular_file
from defendr_cli.core.models.finite import require_finite_tensors

STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
SHOW_KEYS = 4


def _is_tensor_dict(value: object) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def read_state_dict(path: Path | str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a weights file (CPU) and notes on unwrapping done; InputError when unusable."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingArtefactError(f"no weights file at {path}")
    notes: list[str] = []
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"cannot read safetensors file {path}: {str(exc).splitlines()[0]}") from exc
    elif path.suffix in STATE_DICT_SUFFIXES:
        data = read_regular_file(path, "weights file")
        check_zip_container(data, "weights file", path)
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and EOF errors of many kinds all mean "not a plain state dict"
            raise InputError(f"cannot read {path} as a state dict with weights_only=True "
                             f"({type(exc).__name__}); save model.state_dict() instead of the model object"
                             ) from exc
    else:
        raise InputError(f"weights file {path} must end in {', '.join(STATE_DICT_SUFFIXES)} or {SAFETENSORS_SUFFIX}")
    if not _is_tensor_dict(state) and isinstance(state, dict):
        for key in WRAPPER_KEYS:
            if _is_tensor_dict(state.get(key)):
                notes.append(f"weights taken from the '{key}' entry of {path.name}")
                state = state[key]
                break
    if not _is_tensor_dict(state):
        raise InputError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    require_finite_tensors(state, f"weights file {path}")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("removed the 'module.' prefix of every key (a DataParallel save)")
    return state, notes


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW_KEYS])
    return shown + (f" (+{len(keys) - SHOW_KEYS} more)" if len(keys) > SHOW_KEYS else "")


def key_mismatch_text(missing: list[str], unexpected: list[str]) -> str:
    """'2 missing: a, b; 1 unexpected: c' (a few keys of each, then a count)."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {_few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {_few(unexpected)}")
    return "; ".join(parts)


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], *, what: str) -> None:
    """module.load_state_dict(state, strict=True); MismatchError naming a few missing/unexpected keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise MismatchError(f"the weights do not fit {what}: {key_mismatch_text(missing, unexpected)}")
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise MismatchError(f"the weights do not fit {what}: {len(wrong)} shapes differ: {_few(wrong)}")
    module.load_state_dict(state, strict=True)


def head_outputs(net: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """Output count of the last nn.Linear of `net` as stored in `state` (None when not found)."""
    for name, layer in reversed(list(net.named_modules())):
        key = f"{name}.weight" if name else "weight"
        if isinstance(layer, nn.Linear) and key in state and state[key].dim() == 2:
            return int(state[key].shape[0])
    return None
