"""Non-finite numbers are errors, never results.

A model whose logits are NaN would otherwise score as class 0 (argmax of NaN), give the attacks NaN
gradients that change nothing, and so read as "robust". Hence:

- `require_finite_logits(logits, model_name)`: CorruptArtefactError naming the model when any
  logit is NaN or +-Inf;
- `guard_finite_logits(module, model_name)`: a forward hook on the model's top module calling it
  on every forward pass whose inputs were finite (a NaN input is the caller's fault, e.g. a
  diverging denoiser in training, and is left to the caller's own check). `load_model` installs
  it, so evaluate, attack, ensemble, gradcam and the adaptive suite all refuse such a model;
- `require_finite_tensors(tensors, what)`: InputError naming the first weight with NaN/Inf
  (weights files given to `defendr import`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from defendr_cli.core.errors import CorruptArtefactError, InputError


def _all_finite(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def require_finite_logits(logits: torch.Tensor, model_name: str) -> None:
    """CorruptArtefactError when `logits` (N, K) hold NaN or +-Inf (nothing is computed from them)."""
    if _all_finite(logits):
        return
    rows = ""
    if logits.dim() > 1:
        bad = int((~torch.isfinite(logits.detach())).any(dim=-1).sum())
        rows = f" for {bad} of {logits.shape[0]} images"
    raise CorruptArtefactError(
        f"model '{model_name}' returns non-finite logits (NaN or Inf){rows} from finite images: its weights "
        f"or normalization are broken, and no accuracy or robustness can be reported for it")


def guard_finite_logits(module: nn.Module, model_name: str) -> nn.Module:
    """Install the forward hook described in the module docstring (once per module); return `module`."""
    if getattr(module, "_defendr_finite_guard", False):
        return module

    def check(_module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, torch.Tensor) and not _all_finite(output):
            if all(_all_finite(x) for x in inputs if isinstance(x, torch.Tensor)):
                require_finite_logits(output, model_name)

    module.register_forward_hook(check)
    module._defendr_finite_guard = True  # type: ignore[attr-defined]
    return module


def require_finite_tensors(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """InputError naming the first tensor of `tensors` holding NaN or +-Inf."""
    for key, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and not _all_finite(tensor):
            raise InputError(f"{what}: tensor '{key}' holds NaN or Inf values; a model with them cannot be used")
