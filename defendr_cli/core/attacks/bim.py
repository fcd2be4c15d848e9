"""BIM / I-FGSM: Basic Iterative Method (Kurakin, Goodfellow, Bengio 2017, arXiv:1607.02533).

Threat model: L-inf, eps in pixel units (float or per-channel (3,) tensor), images (N, 3, H, W)
in [0, 1]. Starts at the clean image (no random start) and takes `steps` sign-gradient steps of
`step_size` (default eps / steps, so the full budget can be reached), clipping into the eps-ball
and [0, 1] after every step. It is PGD without random start, so it shares PGD's loop.
"""

from __future__ import annotations

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackResult
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.pgd import default_iterative_step_size, pgd
from defendr_cli.core.runtime import Runtime



def bim(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, steps: int = 10,
        step_size: EpsLike | None = None, eot: int = 1, *, targeted: bool | str = False,
        targets: torch.Tensor | None = None, label_mode: str = "true", loss: str = "ce",
        generator: torch.Generator | None = None, runtime: Runtime | None = None,
        eval_mode: bool = True, check_success: bool = True) -> AttackResult:
    """Iterative FGSM from the clean image; see the module docstring (check_success as in pgd)."""
    if step_size is None:
        step_size = default_iterative_step_size(eps, steps)
    return pgd(model, images, labels, eps, steps=steps, step_size=step_size, random_start=False,
               restarts=1, eot=eot, targeted=targeted, targets=targets, label_mode=label_mode,
               loss=loss, generator=generator, runtime=runtime, eval_mode=eval_mode,
               check_success=check_success)
