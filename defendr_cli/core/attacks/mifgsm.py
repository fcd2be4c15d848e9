"""MI-FGSM: Momentum Iterative FGSM (Dong et al. 2018, arXiv:1710.06081).

Threat model: L-inf, eps in pixel units (float or per-channel (3,) tensor), images (N, 3, H, W)
in [0, 1]. From the clean image, accumulate g <- decay * g + grad / mean|grad| (per example L1
normalisation), step adv <- adv + step_size * sign(g), clip into the eps-ball and [0, 1].
Defaults: 10 steps, step_size = eps / steps, decay = 1.0 (the paper's values).
"""

from __future__ import annotations

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackResult, attack_context, check_inputs, check_steps
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.geometry import as_channel_tensor, ball_bounds, project, sign_step
from defendr_cli.core.attacks.pgd import default_iterative_step_size
from defendr_cli.core.runtime import Runtime



def mifgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, steps: int = 10,
           step_size: EpsLike | None = None, decay: float = 1.0, eot: int = 1, *,
           targeted: bool | str = False, targets: torch.Tensor | None = None, label_mode: str = "true",
           loss: str = "ce", generator: torch.Generator | None = None, runtime: Runtime | None = None,
           eval_mode: bool = True, check_success: bool = True) -> AttackResult:
    """Momentum iterative attack; see the module docstring (check_success as in pgd)."""
    check_inputs(images, labels)
    check_steps(steps, 1, eot)
    if step_size is None:
        step_size = default_iterative_step_size(eps, steps)
    with attack_context(model, runtime, loss=loss, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, targeted=targeted, targets=targets, label_mode=label_mode,
                                generator=generator)
        lower, upper = ball_bounds(clean, as_channel_tensor(eps, clean))
        alpha = as_channel_tensor(step_size, clean)
        momentum = torch.zeros_like(clean)
        adv = clean.clone()
        for _ in range(steps):
            grad = ctx.gradient(adv, goal, eot)
            scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            momentum = decay * momentum + grad / scale
            adv = project(sign_step(adv, momentum, alpha), lower, upper)
        return ctx.result(adv, goal) if check_success else ctx.unchecked(adv, goal)
