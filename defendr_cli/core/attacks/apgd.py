"""APGD: Auto-PGD, L-inf (Croce & Hein 2020, arXiv:2003.01690), as in the authors' auto-attack code.

Threat model: L-inf ball of radius eps (pixel units, float or per-channel (3,) tensor) around
images (N, 3, H, W) in [0, 1]. No step size to choose: each image starts at 2 * eps and halves it
at checkpoints w_j (first after 22% of the steps, then 3% fewer each time, at least 6%) when
(1) the loss rose in at most rho (0.75) of the steps since the last checkpoint, or (2) the step
was not halved at the last checkpoint and the best loss has not improved since; on halving the
iterate restarts from the best point seen. Steps use momentum 0.75:
z = P(x + eta * sign(g)), x' = P(x + 0.75 (z - x) + 0.25 (x - x_prev)), P the projection onto the
ball and [0, 1]. The random start is uniform noise rescaled to L-inf norm eps. Condition (1)
compares each step with the one before it, the first step with the start (the paper's rule; the
reference code compares the very first step with 0).

Per image the result is a misclassified iterate if one was found (the first restart that found
one wins), else the highest-loss iterate. Images the model already gets wrong are returned
unchanged and not attacked; each restart attacks only the images not yet fooled. Losses: 'ce'
and 'dlr' (untargeted), or their targeted forms (-CE to the target; the targeted DLR of APGD-T).
`eot` > 1 averages gradient and loss over that many forward passes. Randomness (starts, random
targets) comes from `generator`. The step loop reads nothing on the host; each restart syncs once.

`early_stop=True` (off by default; off is bit-identical to the reference behaviour above) stops
iterating an image as soon as one of its iterates is misclassified: later steps call the model
only on the images not yet fooled (declared with `on_rows`, so the pass counter sees the saving),
and a fooled image stays at its first adversarial iterate. The result per image is the same kind
of point (an adversarial one if found); the cost falls from `steps` to the steps until the image
broke. It reads the fooled mask on the host once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackContext, AttackResult, attack_context, check_inputs, check_steps
from defendr_cli.core.attacks.counting import on_rows
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.geometry import as_channel_tensor, ball_bounds, project, random_start_at_radius
from defendr_cli.core.attacks.losses import cross_entropy, dlr, dlr_targeted
from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import Runtime

Objective = Callable[[torch.Tensor], torch.Tensor]  # logits (n, K) -> per-example loss (n,), maximised
FooledTest = Callable[[torch.Tensor], torch.Tensor]  # predictions (n,) -> bool (n,), attack succeeded
APGD_LOSSES = ("ce", "dlr")
MOMENTUM = 0.75


@dataclass
class RunResult:
    """One APGD run on n images: the highest-loss iterate `best` and its loss (n,), whether some
    iterate was misclassified (`fooled`, bool (n,)) and the last such iterate `adv` (else the start);
    `fooled_at` int64 (n,): the first step whose iterate was misclassified (0: the start), -1 if none."""

    best: torch.Tensor
    best_loss: torch.Tensor
    fooled: torch.Tensor
    adv: torch.Tensor
    fooled_at: torch.Tensor | None = None


def checkpoint_schedule(steps: int) -> tuple[int, int, int]:
    """(first interval, minimum interval, decrement) between checkpoints: 22%, 6% and 3% of steps."""
    return max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)


def loss_and_gradient(ctx: AttackContext, adv: torch.Tensor, objective: Objective,
                      eot: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient (fp32, like adv) and loss (n,) averaged over `eot` passes, and the last pass's logits."""
    grad_sum = loss_sum = logits = None
    for _ in range(eot):
        x = adv.detach().requires_grad_(True)
        with torch.enable_grad():
            with ctx.autocast():
                logits = ctx.model(x)
            loss = objective(logits.float())
            (grad,) = torch.autograd.grad(loss.sum(), x)
        grad_sum = grad if grad_sum is None else grad_sum + grad
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
    if eot == 1:
        return grad_sum, loss_sum, logits.detach().float()
    return grad_sum / eot, loss_sum / eot, logits.detach().float()


def active_loss_and_gradient(ctx: AttackContext, adv: torch.Tensor, objective: Objective, eot: int,
                             active: torch.Tensor, stale_logits: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As `loss_and_gradient`, calling the model only on rows `active` (int64) of adv (n, 3, H, W):
    the other rows keep `stale_logits` (n, K) (their loss is recomputed from them; their gradient
    is zero). Used by early stop, where the other rows are already fooled."""
    grad_sum = torch.zeros_like(adv)
    loss_sum = logits = None
    for _ in range(eot):
        x = adv[active].detach().requires_grad_(True)
        with torch.enable_grad():
            with on_rows(ctx.model, active), ctx.autocast():
                part = ctx.model(x)
            logits = stale_logits.index_put((active,), part.float())
            loss = objective(logits)
            (grad,) = torch.autograd.grad(loss.sum(), x)
        grad_sum[active] += grad
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
    if eot == 1:
        return grad_sum, loss_sum, logits.detach()
    return grad_sum / eot, loss_sum / eot, logits.detach()


def _per_image(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


def apgd_run(ctx: AttackContext, clean: torch.Tensor, objective: Objective, is_fooled: FooledTest,
             eps: torch.Tensor, steps: int, eot: int = 1, rho: float = 0.75,
             generator: torch.Generator | None = None, early_stop: bool = False) -> RunResult:
    """One APGD run from a random start on `clean` (n, 3, H, W); see the module docstring.
    `eps` is as_channel_tensor's output (pixel units). early_stop: see the module docstring."""
    lower, upper = ball_bounds(clean, eps)
    x = random_start_at_radius(clean, eps, generator)
    grad, loss, logits = loss_and_gradient(ctx, x, objective, eot)
    fooled = is_fooled(logits.argmax(dim=1))
    fooled_at = torch.where(fooled, 0, -1)
    adv, best, best_grad, best_loss = x.clone(), x.clone(), grad.clone(), loss.clone()
    history = [loss]  # loss after each step; history[0] is the start's
    scale = torch.full((clean.shape[0], 1, 1, 1), 2.0, device=clean.device, dtype=clean.dtype)
    x_prev = x
    interval, min_interval, decrement = checkpoint_schedule(steps)
    since_check = 0
    checked_best = best_loss.clone()
    reduced_last = torch.ones_like(fooled)
    for i in range(steps):
        momentum = MOMENTUM if i > 0 else 1.0
        previous_move = x - x_prev
        x_prev = x
        z = project(x + scale * eps * grad.sign(), lower, upper)
        x = project(x + momentum * (z - x) + (1.0 - momentum) * previous_move, lower, upper)
        if early_stop:
            active = (~fooled).nonzero().squeeze(1)
            if active.numel() == 0:
                break
            x = torch.where(_per_image(fooled), adv, x)
            grad, loss, logits = active_loss_and_gradient(ctx, x, objective, eot, active, logits)
        else:
            grad, loss, logits = loss_and_gradient(ctx, x, objective, eot)
        now_fooled = is_fooled(logits.argmax(dim=1))
        fooled_at = torch.where(now_fooled & ~fooled, i + 1, fooled_at)
        fooled = fooled | now_fooled
        adv = torch.where(_per_image(now_fooled), x, adv)
        improved = loss > best_loss
        best = torch.where(_per_image(improved), x, best)
        best_grad = torch.where(_per_image(improved), grad, best_grad)
        best_loss = torch.where(improved, loss, best_loss)
        history.append(loss)
        since_check += 1
        if since_check < interval:
            continue
        window = history[-(interval + 1):]
        increases = sum((after > before).float() for before, after in zip(window[:-1], window[1:]))
        oscillating = increases <= interval * rho
        stalled = ~reduced_last & (checked_best >= best_loss)
        reduce = oscillating | stalled
        reduced_last, checked_best = reduce, best_loss.clone()
        scale = torch.where(_per_image(reduce), scale / 2.0, scale)
        x = torch.where(_per_image(reduce), best, x)
        grad = torch.where(_per_image(reduce), best_grad, grad)
        history = history[-1:]
        since_check = 0
        interval = max(interval - decrement, min_interval)
    return RunResult(best, best_loss, fooled, adv, fooled_at)


class BestPerImage:
    """Per image across runs: the first adversarial found, else the highest-loss point.

    Starts from the clean images, with `fooled` (bool (N,)) marking those already misclassified.
    `iteration` / `restart` int64 (N,): when and in which run each image was fooled (-1: not by a run)."""

    def __init__(self, clean: torch.Tensor, fooled: torch.Tensor) -> None:
        self.adv = clean.clone()
        self.loss = torch.full(fooled.shape, float("-inf"), device=clean.device)
        self.fooled = fooled.clone()
        self.iteration = torch.full(fooled.shape, -1, dtype=torch.long, device=clean.device)
        self.restart = torch.full(fooled.shape, -1, dtype=torch.long, device=clean.device)

    def pending(self) -> torch.Tensor:
        """Indices (int64) of the images not yet fooled (one host sync)."""
        return (~self.fooled).nonzero().squeeze(1)

    def update(self, index: torch.Tensor, run: RunResult, run_number: int = 0) -> None:
        """Merge run number `run_number` on images `index` (all not yet fooled)."""
        if run.fooled_at is not None:
            self.iteration[index] = torch.where(run.fooled, run.fooled_at, self.iteration[index])
            self.restart[index] = torch.where(run.fooled, run_number, self.restart[index])
        higher = run.best_loss > self.loss[index]
        kept = torch.where(_per_image(higher), run.best, self.adv[index])
        self.adv[index] = torch.where(_per_image(run.fooled), run.adv, kept)
        self.loss[index] = torch.maximum(self.loss[index], run.best_loss)
        self.fooled[index] = run.fooled


def check_rho(rho: float) -> None:
    if not 0.0 < rho <= 1.0:
        raise InputError(f"rho must be in (0, 1], got {rho}")


def apgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, steps: int = 100,
         restarts: int = 1, eot: int = 1, *, loss: str = "ce", rho: float = 0.75,
         targeted: bool | str = False, targets: torch.Tensor | None = None, label_mode: str = "true",
         generator: torch.Generator | None = None, runtime: Runtime | None = None, eval_mode: bool = True,
         check_success: bool = True, early_stop: bool = False) -> AttackResult:
    """L-inf APGD with loss 'ce' or 'dlr'; see the module docstring. Returns AttackResult(adv, success).

    images: (N, 3, H, W) in [0, 1]; labels: int64 (N,); eps: pixel units, float or (3,).
    Targeted modes as for PGD ('given' needs `targets`); targeted 'dlr' is APGD-T's targeted DLR
    (it needs the true labels, `label_mode` decides them). check_success=False skips the final
    forward pass (success and adv_pred are then None). early_stop=True stops each image's iterations
    once it is fooled (see the module docstring; default off, the reference behaviour).
    """
    check_inputs(images, labels)
    check_steps(steps, restarts, eot)
    check_rho(rho)
    if loss not in APGD_LOSSES:
        raise InputError(f"unknown APGD loss '{loss}': use one of {', '.join(APGD_LOSSES)}")
    with attack_context(model, runtime, loss=loss, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, targeted=targeted, targets=targets, label_mode=label_mode,
                                generator=generator)
        true = ctx.goal(clean, labels, label_mode=label_mode).classes if goal.targeted and loss == "dlr" else None

        def fooled_test(index: torch.Tensor) -> FooledTest:
            classes = goal.classes[index]
            return (lambda pred: pred == classes) if goal.targeted else (lambda pred: pred != classes)

        def objective(index: torch.Tensor) -> Objective:
            classes = goal.classes[index]
            if true is not None:
                own = true[index]
                return lambda logits: dlr_targeted(logits, own, classes)
            loss_fn = cross_entropy if loss == "ce" else dlr
            return lambda logits: loss_fn(logits, classes, goal.targeted)

        everyone = torch.arange(clean.shape[0], device=clean.device)
        tracker = BestPerImage(clean, fooled_test(everyone)(ctx.logits(clean).argmax(dim=1)))
        eps_t = as_channel_tensor(eps, clean)
        for restart in range(restarts):
            index = tracker.pending()
            if index.numel() == 0:
                break
            with on_rows(ctx.model, index):
                run = apgd_run(ctx, clean[index], objective(index), fooled_test(index), eps_t, steps, eot, rho,
                               generator, early_stop)
            tracker.update(index, run, restart)
        result = ctx.result(tracker.adv, goal) if check_success else ctx.unchecked(tracker.adv, goal)
        return result.with_progress(tracker.iteration, tracker.restart)
