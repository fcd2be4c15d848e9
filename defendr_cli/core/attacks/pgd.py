"""PGD: Projected Gradient Descent, L-inf (Madry et al. 2018, arXiv:1706.06083).

Threat model: L-inf ball of radius eps (pixel units, float or per-channel (3,) tensor) around
images (N, 3, H, W) in [0, 1]. Defaults follow Madry et al.: uniform random start in the ball,
`steps` sign-gradient steps of size 2.5 * eps / steps, projection onto the ball and clipping to
[0, 1] after every step. `restarts` > 1 repeats the attack from fresh random starts and keeps,
per example, the strongest result (a success beats a failure; otherwise the higher loss wins).
`eot` > 1 averages the gradient over that many forward passes (Expectation over Transformation,
for randomized defenses). Random starts and random targets come from `generator`.
"""

from __future__ import annotations

import torch
from torch import nn

from defendr_cli.core.attacks.base import (
    AttackContext,
    AttackResult,
    Goal,
    attack_context,
    check_inputs,
    check_steps,
)
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.geometry import as_channel_tensor, ball_bounds, project, sign_step
from defendr_cli.core.attacks.geometry import random_start as random_start_point
from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import Runtime



def default_pgd_step_size(eps: EpsLike, steps: int) -> EpsLike:
    """Madry et al.: 2.5 * eps / steps (pixel units; per-channel when eps is)."""
    return 2.5 * eps / steps


def default_iterative_step_size(eps: EpsLike, steps: int) -> EpsLike:
    """BIM and MI-FGSM: eps / steps, so the full budget can be reached (pixel units; per-channel when eps is)."""
    return eps / steps


def sign_iterations(ctx: AttackContext, adv: torch.Tensor, goal: Goal, lower: torch.Tensor,
                    upper: torch.Tensor, step_size: torch.Tensor, steps: int, eot: int = 1) -> torch.Tensor:
    """`steps` iterations of: sign-gradient ascent step, then clip into [lower, upper]."""
    for _ in range(steps):
        grad = ctx.gradient(adv, goal, eot)
        adv = project(sign_step(adv, grad, step_size), lower, upper)
    return adv


def pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, steps: int = 10,
        step_size: EpsLike | None = None, random_start: bool = True, restarts: int = 1, eot: int = 1, *,
        targeted: bool | str = False, targets: torch.Tensor | None = None, label_mode: str = "true",
        loss: str = "ce", generator: torch.Generator | None = None, runtime: Runtime | None = None,
        eval_mode: bool = True, check_success: bool = True) -> AttackResult:
    """L-inf PGD; see the module docstring. Returns AttackResult(adv, success).

    check_success=False (only with restarts=1) skips the final forward pass; success and
    adv_pred are then None.
    """
    check_inputs(images, labels)
    check_steps(steps, restarts, eot)
    if not check_success and restarts > 1:
        raise InputError("restarts compare the restarts' success: they need check_success=True")
    if step_size is None:
        step_size = default_pgd_step_size(eps, steps)
    with attack_context(model, runtime, loss=loss, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, targeted=targeted, targets=targets, label_mode=label_mode,
                                generator=generator)
        eps_t = as_channel_tensor(eps, clean)
        alpha = as_channel_tensor(step_size, clean)
        lower, upper = ball_bounds(clean, eps_t)
        best: AttackResult | None = None
        best_loss: torch.Tensor | None = None
        for _ in range(restarts):
            adv = random_start_point(clean, eps_t, generator) if random_start else clean.clone()
            adv = sign_iterations(ctx, adv, goal, lower, upper, alpha, steps, eot)
            if restarts == 1:
                return ctx.result(adv, goal) if check_success else ctx.unchecked(adv, goal)
            adv_loss, predictions = ctx.losses(adv, goal)
            current = ctx.result(adv, goal, predictions)
            if best is None:
                best, best_loss = current, adv_loss
                continue
            better = (current.success & ~best.success) | ((current.success == best.success) & (adv_loss > best_loss))
            best = AttackResult(
                torch.where(better[:, None, None, None], current.adv, best.adv),
                torch.where(better, current.success, best.success),
                torch.where(better, current.adv_pred, best.adv_pred),
                best.targets,
            )
            best_loss = torch.where(better, adv_loss, best_loss)
        return best
