"""APGD-T: targeted APGD on the targeted DLR loss over the top-k other classes (Croce & Hein 2020).

Threat model and step schedule as `apgd` (L-inf, eps in pixel units, float or per-channel (3,)).
For rank r = 2 .. k + 1 (k = `n_target_classes`, default 9, capped at K - 1 for K classes), the
target of each image is the class with the r-th highest clean logit, and APGD maximises
-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) for `restarts` runs. Each run attacks only the images
not yet misclassified, so per image the first success is kept (else the highest-loss point).

The goal is untargeted robustness: success means the prediction differs from the label (as in
AutoAttack), and the result carries no targets. Images already misclassified are returned
unchanged. Randomness comes from `generator`. `early_stop=True` (default off: the reference
behaviour, bit-identical) stops each image's iterations once it is misclassified (see `apgd`).
"""

from __future__ import annotations

import torch
from torch import nn

from defendr_cli.core.attacks.apgd import BestPerImage, apgd_run, check_rho
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.base import (AttackResult, attack_context, check_inputs, check_steps,
                                         check_target_classes)
from defendr_cli.core.attacks.counting import on_rows
from defendr_cli.core.attacks.geometry import as_channel_tensor
from defendr_cli.core.attacks.losses import dlr_targeted
from defendr_cli.core.runtime import Runtime

DEFAULT_TARGET_CLASSES = 9


def apgd_t(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, steps: int = 100,
           restarts: int = 1, eot: int = 1, *, n_target_classes: int = DEFAULT_TARGET_CLASSES, rho: float = 0.75,
           label_mode: str = "true", generator: torch.Generator | None = None, runtime: Runtime | None = None,
           eval_mode: bool = True, check_success: bool = True, early_stop: bool = False) -> AttackResult:
    """APGD-T; see the module docstring. images (N, 3, H, W) in [0, 1], labels int64 (N,).

    Runs up to n_target_classes * restarts APGD runs of `steps` steps. Returns AttackResult(adv,
    success) with success = misclassified (None with check_success=False).
    """
    check_inputs(images, labels)
    check_steps(steps, restarts, eot)
    check_rho(rho)
    check_target_classes(n_target_classes)
    with attack_context(model, runtime, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, label_mode=label_mode)
        clean_logits = ctx.logits(clean)
        ranked = clean_logits.argsort(dim=1, descending=True)  # (N, K), ties as in a stable sort
        tracker = BestPerImage(clean, clean_logits.argmax(dim=1) != goal.classes)
        eps_t = as_channel_tensor(eps, clean)
        for rank in range(1, min(n_target_classes, clean_logits.shape[1] - 1) + 1):
            for restart in range(restarts):
                index = tracker.pending()
                if index.numel() == 0:
                    break
                own, target = goal.classes[index], ranked[index, rank]
                with on_rows(ctx.model, index):
                    run = apgd_run(ctx, clean[index], lambda logits: dlr_targeted(logits, own, target),
                                   lambda pred: pred != own, eps_t, steps, eot, rho, generator, early_stop)
                tracker.update(index, run, (rank - 1) * restarts + restart)
        result = ctx.result(tracker.adv, goal) if check_success else ctx.unchecked(tracker.adv, goal)
        return result.with_progress(tracker.iteration, tracker.restart)
