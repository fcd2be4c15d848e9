"""Square Attack, L-inf (Andriushchenko et al. 2020, arXiv:1912.00049): score-based, no gradients.

Threat model: L-inf ball of radius eps (pixel units, float or per-channel (3,) tensor) around
images (N, 3, H, W) in [0, 1]. Start: each column of each channel moved by +eps or -eps at random
(vertical stripes). Each of `n_queries` iterations proposes, for every image not yet fooled, one
random square of side s whose pixels are set to x +- eps (one random sign per channel), and keeps
it if the margin loss drops (untargeted: z_y - max_{j != y} z_j; targeted: max_{j != t} z_j - z_t;
an image counts as fooled once that margin is negative). s = round(sqrt(p * H * W)), where p
starts at `p_init` (0.8) and is halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and
8000 of a 10,000-iteration schedule rescaled to `n_queries` (as in the authors' code). Squares
and signs are drawn per image (the original paper's code; auto-attack draws one square per batch).

Only forward passes (under `runtime` autocast), and only on images not yet fooled: each iteration
reads the fooled mask on the host once. `restarts` > 1 repeats the attack from a fresh start on
the images still not fooled. Per image the result is the lowest-margin point of its last run
(an adversarial one if found); images already misclassified are returned unchanged. All randomness
comes from `generator`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackContext, AttackResult, Goal, attack_context, check_inputs, check_steps
from defendr_cli.core.attacks.counting import on_rows
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.geometry import as_channel_tensor, ball_bounds, project
from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import Runtime

P_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
              (8000, 256))  # (last iteration of the 10k schedule, divisor of p_init up to it)
LAST_DIVISOR = 512


def square_fraction(iteration: int, n_queries: int, p_init: float = 0.8) -> float:
    """p: the fraction of the image a square covers at `iteration` (0-based) of `n_queries`."""
    it = int(iteration / n_queries * 10000)
    for last, divisor in P_SCHEDULE:
        if it <= last:
            return p_init / divisor
    return p_init / LAST_DIVISOR


def square_side(iteration: int, n_queries: int, height: int, width: int, p_init: float = 0.8) -> int:
    """Side s in pixels, in [1, min(H, W)]."""
    side = int(round(math.sqrt(square_fraction(iteration, n_queries, p_init) * height * width)))
    return min(max(side, 1), min(height, width))


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) on the generator's device (CPU by default), moved to `device`."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _signs(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.where(_uniform(shape, generator, device) < 0.5, -1.0, 1.0)


def square_masks(n: int, height: int, width: int, side: int, generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """Bool (n, 1, H, W): one side x side square per image at a uniformly random position."""
    top = (_uniform((n,), generator, device) * (height - side)).long().view(n, 1, 1, 1)
    left = (_uniform((n,), generator, device) * (width - side)).long().view(n, 1, 1, 1)
    rows = torch.arange(height, device=device).view(1, 1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, 1, width)
    return (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)


def square_run(ctx: AttackContext, clean: torch.Tensor, goal: Goal, eps: torch.Tensor, n_queries: int,
               p_init: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Square Attack run on `clean` (n, C, H, W) for `goal`; returns (adv, margin (n,), broken_at
    int64 (n,): the query (1-based; 0 = the start) after which the margin first fell below 0, -1 if never)."""
    n, channels, height, width = clean.shape
    lower, upper = ball_bounds(clean, eps)
    best = project(clean + eps * _signs((n, channels, 1, width), generator, clean.device), lower, upper)
    margin = -ctx.losses(best, goal)[0]
    broken_at = torch.where(margin < 0, 0, -1)
    for i in range(n_queries):
        active = (margin >= 0).nonzero().squeeze(1)
        if active.numel() == 0:
            break
        side = square_side(i, n_queries, height, width, p_init)
        mask = square_masks(active.numel(), height, width, side, generator, clean.device)
        signs = _signs((active.numel(), channels, 1, 1), generator, clean.device)
        current = best[active]
        proposal = project(current + mask * (2.0 * eps * signs), lower[active], upper[active])
        with on_rows(ctx.model, active):
            new_margin = -ctx.losses(proposal, Goal(goal.classes[active], goal.targeted))[0]
        better = new_margin < margin[active]
        best[active] = torch.where(better.view(-1, 1, 1, 1), proposal, current)
        margin[active] = torch.where(better, new_margin, margin[active])
        broken_at[active] = torch.where((margin[active] < 0) & (broken_at[active] < 0), i + 1, broken_at[active])
    return best, margin, broken_at


def square(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, n_queries: int = 5000,
           restarts: int = 1, *, p_init: float = 0.8, targeted: bool | str = False,
           targets: torch.Tensor | None = None, label_mode: str = "true", generator: torch.Generator | None = None,
           runtime: Runtime | None = None, eval_mode: bool = True, check_success: bool = True) -> AttackResult:
    """L-inf Square Attack; see the module docstring. images (N, 3, H, W) in [0, 1], labels int64 (N,).

    Costs at most restarts * (n_queries + 1) forward passes per image. Targeted modes as for PGD.
    Returns AttackResult(adv, success); check_success=False skips the final forward pass.
    """
    check_inputs(images, labels)
    check_steps(n_queries, restarts)
    if not 0.0 < p_init <= 1.0:
        raise InputError(f"p_init must be in (0, 1], got {p_init}")
    with attack_context(model, runtime, loss="margin", eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, targeted=targeted, targets=targets, label_mode=label_mode,
                                generator=generator)
        eps_t = as_channel_tensor(eps, clean)
        adv = clean.clone()
        pending = ctx.losses(clean, goal)[0] <= 0  # margin loss > 0 means already fooled
        iteration = torch.full(pending.shape, -1, dtype=torch.long, device=clean.device)
        run_of = torch.full(pending.shape, -1, dtype=torch.long, device=clean.device)
        for restart in range(restarts):
            index = pending.nonzero().squeeze(1)
            if index.numel() == 0:
                break
            with on_rows(ctx.model, index):
                run_adv, margin, broken_at = square_run(ctx, clean[index], Goal(goal.classes[index], goal.targeted),
                                                        eps_t, n_queries, p_init, generator)
            adv[index] = run_adv
            pending[index] = margin >= 0
            iteration[index] = torch.where(margin < 0, broken_at, iteration[index])
            run_of[index] = torch.where(margin < 0, restart, run_of[index])
        result = ctx.result(adv, goal) if check_success else ctx.unchecked(adv, goal)
        return result.with_progress(iteration, run_of)
