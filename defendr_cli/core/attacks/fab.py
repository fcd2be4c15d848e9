"""FAB: Fast Adaptive Boundary attack, L-inf (Croce & Hein 2020, arXiv:1907.02044), as in auto-attack.

The port follows `FABAttack_PT` of the authors' auto-attack code (fab_base.py, fab_pt.py,
fab_projections.py; MIT licence, Copyright (c) 2020 Francesco Croce). Images (N, 3, H, W) in
[0, 1], labels int64 (N,), eps in pixel units (float or per-channel (3,) tensor).

FAB searches for the adversarial example of smallest L-inf norm. Each of `steps` iterations
linearises the model at the iterate x1: targeted, the hyperplane z_t - z_y = 0 of the target t
(one backward pass); untargeted, the closest of the K - 1 hyperplanes z_k - z_y = 0 (K backward
passes). It projects both x1 and the clean image x0 onto that hyperplane inside [0, 1]
(`projection_linf`: d1 and d2), and steps to
x1 = clip_[0,1]((x1 + eta d1)(1 - alpha) + (x0 + eta d2) alpha), alpha = min(|d1| / (|d1| + |d2|),
alpha_max) with |.| the L-inf norm. Whenever x1 is misclassified, it becomes the image's best
adversarial if its norm is the smallest yet, and x1 moves back towards x0: x0 + beta (x1 - x0).
Every run does all its steps on all its images (no early stop), as the reference does.

An image counts as broken when the run's best adversarial is misclassified on a final forward
pass and lies inside the eps-ball; otherwise the clean image is returned, as the reference does
(FAB minimises the norm; eps only decides). A per-channel eps is handled by a change of
variables (`SearchSpace`): FAB searches in z = x / (eps / max(eps)), where that ball is the
isotropic ball of radius max(eps) and the box is [0, max(eps) / eps] (the projection takes
per-coordinate bounds); a scalar eps uses pixels directly, with the reference's arithmetic. The first run of
each target starts at x0; restart r > 0 starts at x0 + (eps / 2) u / |u|_inf, u uniform in
[-1, 1] from `generator` (the reference's `use_rand_start=(counter > 0)`). AutoAttack's standard
suite runs FAB-T with n_target_classes=9, steps=100, restarts=1, alpha_max=0.1, eta=1.05,
beta=0.9: deterministic, no random draw. Targets: rank 2 .. k + 1 of the clean logits (the
reference's `sort(...)[1][:, -rank]`). Each target and restart attacks only the images still
standing; images the model already misclassifies are returned unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from defendr_cli.core.attacks.base import (AttackContext, AttackResult, attack_context, check_inputs, check_steps,
                                         check_target_classes)
from defendr_cli.core.attacks.counting import on_rows
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.geometry import as_channel_tensor
from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import Runtime

# x (n, C, H, W) -> (df (n, M) logit differences, dg (n, M, C, H, W) their gradients)
Linearisation = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
DEFAULT_TARGET_CLASSES = 9
NOT_FOUND = 1e10


def projection_linf(points: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                    upper: torch.Tensor | None = None) -> torch.Tensor:
    """Per row, the smallest L-inf step d with w.(t + d) = b and t + d in [0, 1] (clipped to what
    the box allows), for points t (m, D), normals w (m, D) and offsets b (m,). The reference's
    `projection_linf` (a sort and a bisection over the coordinates), unchanged but for `upper`:
    per-coordinate upper bounds of the box ((1, D); None: 1, the reference)."""
    t, w, b = points, w.clone(), b.clone()
    sign = 2 * ((w * t).sum(1) - b >= 0) - 1
    w.mul_(sign.unsqueeze(1))
    b.mul_(sign)
    a = (w < 0).float()
    corner = a if upper is None else a * upper  # the bound each coordinate moves towards
    d = (corner - t) * (w != 0).float()
    p = corner - t * (2 * a - 1)
    indp = torch.argsort(p, dim=1)
    b = b - (w * t).sum(1)
    b0 = (w * d).sum(1)
    indp2 = indp.flip((1,))
    ws = w.gather(1, indp2)
    bs2 = -ws * d.gather(1, indp2)
    s = torch.cumsum(ws.abs(), dim=1)
    sb = torch.cumsum(bs2, dim=1) + b0.unsqueeze(1)
    b2 = sb[:, -1] - s[:, -1] * p.gather(1, indp[:, 0:1]).squeeze(1)
    c_l = b - b2 > 0
    c2 = (b - b0 > 0) & (~c_l)
    lb = torch.zeros(int(c2.sum()), device=t.device)
    ub = torch.full_like(lb, w.shape[1] - 1)
    indp_, sb_, s_, p_, b_ = indp[c2], sb[c2], s[c2], p[c2], b[c2]
    for _ in range(math.ceil(math.log2(w.shape[1]))):
        middle = torch.floor((lb + ub) / 2)
        column = middle.long().unsqueeze(1)
        current = indp_.gather(1, indp_.size(1) - 1 - column)
        b2 = (sb_.gather(1, column) - s_.gather(1, column) * p_.gather(1, current)).squeeze(1)
        above = b_ - b2 > 0
        lb = torch.where(above, middle, lb)
        ub = torch.where(above, ub, middle)
    lb = lb.long()
    if c_l.any():
        lmbd = torch.clamp_min((b[c_l] - sb[c_l, -1]) / (-s[c_l, -1]), min=0).unsqueeze(-1)
        d[c_l] = (2 * a[c_l] - 1) * lmbd
    lmbd = torch.clamp_min((b[c2] - sb[c2, lb]) / (-s[c2, lb]), min=0).unsqueeze(-1)
    d[c2] = torch.min(lmbd, d[c2]) * a[c2] + torch.max(-lmbd, d[c2]) * (1 - a[c2])
    return d * (w != 0).float()


@dataclass(frozen=True)
class SearchSpace:
    """Where FAB searches: z = x / scale, in which a per-channel eps-ball is the isotropic L-inf
    ball of radius max(eps) and the image box is [0, 1 / scale]. scale None (a scalar eps): z = x,
    the reference's arithmetic exactly. scale: (1, C, 1, 1) = eps / max(eps)."""

    scale: torch.Tensor | None = None

    @classmethod
    def for_eps(cls, eps: torch.Tensor) -> SearchSpace:
        return cls(None) if eps.dim() == 0 else cls(eps / eps.max())

    def from_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.scale is None else x / self.scale

    def to_pixels(self, z: torch.Tensor) -> torch.Tensor:
        """Model input for z (differentiable; no clipping)."""
        return z if self.scale is None else z * self.scale

    def upper(self, like: torch.Tensor) -> torch.Tensor | float:
        """The box's upper bound, broadcastable to `like` (n, C, H, W)."""
        return 1.0 if self.scale is None else (1.0 / self.scale).expand(1, *like.shape[1:])


def _logits_with_graph(ctx: AttackContext, space: SearchSpace, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    im = z.detach().clone().requires_grad_(True)
    with torch.enable_grad(), ctx.autocast():
        logits = ctx.model(space.to_pixels(im))
    return im, logits.float()


def targeted_linearisation(ctx: AttackContext, space: SearchSpace, labels: torch.Tensor,
                           targets: torch.Tensor) -> Linearisation:
    """df = z_t - z_y (n, 1) and its gradient in `space` (n, 1, C, H, W): one forward, one backward."""
    rows = torch.arange(labels.shape[0], device=labels.device)

    def linearise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        im, logits = _logits_with_graph(ctx, space, x)
        with torch.enable_grad():
            diff = -(logits[rows, labels] - logits[rows, targets])
            (grad,) = torch.autograd.grad(diff.sum(), im)
        return diff.detach().unsqueeze(1), grad.unsqueeze(1)

    return linearise


def untargeted_linearisation(ctx: AttackContext, space: SearchSpace, labels: torch.Tensor) -> Linearisation:
    """df = z_k - z_y for every class k (n, K; 1e10 at k = y) and their gradients in `space`
    (n, K, C, H, W): one forward, K backward passes (one per logit, as the reference)."""
    rows = torch.arange(labels.shape[0], device=labels.device)

    def linearise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        im, logits = _logits_with_graph(ctx, space, x)
        grads = []
        for k in range(logits.shape[1]):
            mask = torch.zeros_like(logits)
            mask[:, k] = 1.0
            (grad,) = torch.autograd.grad(logits, im, grad_outputs=mask, retain_graph=k + 1 < logits.shape[1])
            grads.append(grad)
        g = torch.stack(grads, dim=1)
        z = logits.detach()
        df = z - z[rows, labels].unsqueeze(1)
        dg = g - g[rows, labels].unsqueeze(1)
        df[rows, labels] = NOT_FOUND
        return df, dg

    return linearise


def fab_start(clean: torch.Tensor, eps: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The reference's random start: clean + (eps / 2) u / max|u| per image, u uniform in [-1, 1]
    (drawn on the generator's device, CPU by default), clipped to [0, 1]."""
    gen_device = generator.device if generator is not None else clean.device
    u = 2.0 * torch.rand(clean.shape, generator=generator, device=gen_device, dtype=torch.float32) - 1.0
    u = u.to(device=clean.device, dtype=clean.dtype)
    peak = u.flatten(1).abs().amax(dim=1).view(-1, 1, 1, 1)
    return (clean + eps * u / peak * 0.5).clamp(0.0, 1.0)


def fab_step(x1: torch.Tensor, x0: torch.Tensor, df: torch.Tensor, dg: torch.Tensor, alpha_max: float,
             eta: float, upper: torch.Tensor | float = 1.0) -> torch.Tensor:
    """One FAB step from x1 (n, C, H, W) given the linearisation (df, dg) at x1; x0 the clean images;
    the box is [0, upper] (1: pixels, the reference)."""
    n = x1.shape[0]
    rows = torch.arange(n, device=x1.device)
    dist = df.abs() / (1e-12 + dg.abs().reshape(n, dg.shape[1], -1).sum(dim=-1))
    closest = dist.min(dim=1)[1]
    normal = dg[rows, closest]
    offset = -df[rows, closest] + (normal * x1).reshape(n, -1).sum(dim=-1)
    w = normal.reshape(n, -1)
    bound = upper.reshape(1, -1) if isinstance(upper, torch.Tensor) else None
    d3 = projection_linf(torch.cat((x1.reshape(n, -1), x0.reshape(n, -1)), 0), torch.cat((w, w), 0),
                         torch.cat((offset, offset), 0), bound)
    d1, d2 = d3[:n].reshape(x1.shape), d3[n:].reshape(x1.shape)
    a0 = d3.abs().max(dim=1, keepdim=True)[0].view(-1, 1, 1, 1).clamp_min(1e-8)
    a1, a2 = a0[:n], a0[n:]
    alpha = (a1 / (a1 + a2)).clamp_min(0.0).clamp_max(alpha_max)
    moved = (x1 + eta * d1) * (1 - alpha) + (x0 + d2 * eta) * alpha
    return moved.clamp(0.0, 1.0) if bound is None else torch.minimum(moved.clamp_min(0.0), upper)


def fab_run(ctx: AttackContext, space: SearchSpace, x0: torch.Tensor, labels: torch.Tensor,
            linearise: Linearisation, steps: int, start: torch.Tensor, alpha_max: float, eta: float,
            beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One FAB run in `space` on images x0 (n, C, H, W, in that space) from `start`; returns (best
    adversarial, else x0; found bool (n,); the step (1-based) that found the best, int64 (n,), -1
    if none), in that space. Costs per image: steps x (2 forward + the linearisation's backward passes)."""
    upper = space.upper(x0)
    best = x0.clone()
    best_norm = torch.full((x0.shape[0],), NOT_FOUND, device=x0.device)
    best_at = torch.full((x0.shape[0],), -1, dtype=torch.long, device=x0.device)
    x1 = start
    for i in range(steps):
        with torch.no_grad():
            df, dg = linearise(x1)
            x1 = fab_step(x1, x0, df, dg, alpha_max, eta, upper)
            is_adv = ctx.logits(space.to_pixels(x1)).argmax(dim=1) != labels
            norm = (x1 - x0).flatten(1).abs().amax(dim=1)
            improved = is_adv & (norm < best_norm)
            best = torch.where(improved.view(-1, 1, 1, 1), x1, best)
            best_norm = torch.where(improved, norm, best_norm)
            best_at = torch.where(improved, i + 1, best_at)
            x1 = torch.where(is_adv.view(-1, 1, 1, 1), x0 + (x1 - x0) * beta, x1)
    return best, best_norm < NOT_FOUND, best_at


def check_fab_options(steps: int, restarts: int, alpha_max: float, eta: float, beta: float) -> None:
    check_steps(steps, restarts)
    if not 0.0 <= alpha_max <= 1.0:
        raise InputError(f"alpha_max must be in [0, 1], got {alpha_max}")
    if eta < 1.0:
        raise InputError(f"eta (overshoot) must be >= 1, got {eta}")
    if not 0.0 < beta <= 1.0:
        raise InputError(f"beta (backward step) must be in (0, 1], got {beta}")


def _run_on_pending(ctx: AttackContext, clean: torch.Tensor, labels: torch.Tensor, adv: torch.Tensor,
                    standing: torch.Tensor, eps: torch.Tensor,
                    make: Callable[[SearchSpace, torch.Tensor], Linearisation],
                    steps: int, restarts: int, options: tuple[float, float, float],
                    generator: torch.Generator | None, progress: tuple[torch.Tensor, torch.Tensor], first_run: int = 0
                    ) -> None:
    """`restarts` FAB runs, each on the images still standing (updates adv and standing in place):
    an image falls when the run's adversarial is misclassified on a fresh pass and inside the ball.
    progress: (iteration, run) int64 (N,), set for the images that fall (run = first_run + restart)."""
    space = SearchSpace.for_eps(eps)
    for restart in range(restarts):
        index = standing.nonzero().squeeze(1)
        if index.numel() == 0:
            return
        x0, own = clean[index], labels[index]
        with on_rows(ctx.model, index):
            start = fab_start(x0, eps, generator) if restart > 0 else x0.clone()
            best, _, best_at = fab_run(ctx, space, space.from_pixels(x0), own, make(space, index), steps,
                              space.from_pixels(start), *options)
            run_adv = space.to_pixels(best).clamp(0.0, 1.0)
            wrong = ctx.logits(run_adv).argmax(dim=1) != own
        inside = ((run_adv - x0).abs() <= eps).flatten(1).all(dim=1)
        fell = wrong & inside
        adv[index] = torch.where(fell.view(-1, 1, 1, 1), run_adv, adv[index])
        standing[index] = ~fell
        progress[0][index] = torch.where(fell, best_at, progress[0][index])
        progress[1][index] = torch.where(fell, first_run + restart, progress[1][index])


def _no_progress(standing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(iteration, run) int64 (N,), all -1: nothing broken yet."""
    return torch.full(standing.shape, -1, dtype=torch.long, device=standing.device), \
        torch.full(standing.shape, -1, dtype=torch.long, device=standing.device)


def fab_t(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, steps: int = 100,
          restarts: int = 1, *, n_target_classes: int = DEFAULT_TARGET_CLASSES, alpha_max: float = 0.1,
          eta: float = 1.05, beta: float = 0.9, label_mode: str = "true", generator: torch.Generator | None = None,
          runtime: Runtime | None = None, eval_mode: bool = True, check_success: bool = True) -> AttackResult:
    """FAB-T (targeted FAB, AutoAttack's 'fab-t'); see the module docstring.

    images (N, 3, H, W) in [0, 1], labels int64 (N,), eps pixel units (float or (3,)). For each of
    the k = min(n_target_classes, K - 1) targets, `restarts` runs of `steps` steps on the images
    still standing. Cost per standing image and run: 2 x steps + 1 forward, steps backward passes.
    Returns AttackResult(adv, success = misclassified; None with check_success=False), no targets.
    """
    check_inputs(images, labels)
    check_fab_options(steps, restarts, alpha_max, eta, beta)
    check_target_classes(n_target_classes)
    with attack_context(model, runtime, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, label_mode=label_mode)
        clean_logits = ctx.logits(clean)
        ranked = clean_logits.sort(dim=1)[1]  # ascending; rank r is column -r (the reference's order)
        standing = clean_logits.argmax(dim=1) == goal.classes
        adv, eps_t = clean.clone(), as_channel_tensor(eps, clean)
        progress = _no_progress(standing)
        for rank in range(2, min(n_target_classes, clean_logits.shape[1] - 1) + 2):
            targets = ranked[:, -rank]

            def make(space: SearchSpace, index: torch.Tensor, targets: torch.Tensor = targets) -> Linearisation:
                return targeted_linearisation(ctx, space, goal.classes[index], targets[index])

            _run_on_pending(ctx, clean, goal.classes, adv, standing, eps_t, make, steps, restarts,
                            (alpha_max, eta, beta), generator, progress, (rank - 2) * restarts)
        result = ctx.result(adv, goal) if check_success else ctx.unchecked(adv, goal)
        return result.with_progress(*progress)


def fab(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, steps: int = 100,
        restarts: int = 1, *, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
        label_mode: str = "true", generator: torch.Generator | None = None, runtime: Runtime | None = None,
        eval_mode: bool = True, check_success: bool = True) -> AttackResult:
    """Untargeted FAB (AutoAttack's 'fab'; its 'plus' version uses restarts=5); see the module docstring.

    Each step linearises all K classes: per standing image and run 2 x steps + 1 forward and
    K x steps backward passes. Returns AttackResult(adv, success = misclassified).
    """
    check_inputs(images, labels)
    check_fab_options(steps, restarts, alpha_max, eta, beta)
    with attack_context(model, runtime, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, label_mode=label_mode)
        standing = ctx.logits(clean).argmax(dim=1) == goal.classes
        adv, eps_t = clean.clone(), as_channel_tensor(eps, clean)
        progress = _no_progress(standing)

        def make(space: SearchSpace, index: torch.Tensor) -> Linearisation:
            return untargeted_linearisation(ctx, space, goal.classes[index])

        _run_on_pending(ctx, clean, goal.classes, adv, standing, eps_t, make, steps, restarts,
                        (alpha_max, eta, beta), generator, progress)
        result = ctx.result(adv, goal) if check_success else ctx.unchecked(adv, goal)
        return result.with_progress(*progress)
