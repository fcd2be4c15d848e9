"""FGSM: Fast Gradient Sign Method (Goodfellow, Shlens, Szegedy 2015, arXiv:1412.6572).

Threat model: L-inf, one step. adv = clip_[0,1](x + eps * sign(grad_x loss)) (targeted: the step
descends the loss towards the target). Inputs: images (N, 3, H, W) in [0, 1], labels int64 (N,),
eps in pixel units (float or per-channel (3,) tensor). Defaults: CE loss, true labels (pass
label_mode='predicted' to avoid label leaking, Kurakin et al. 2017).

`fgsm_multi` takes several eps values and computes the gradient once for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackResult, attack_context, check_inputs
from defendr_cli.core.attacks.eps import EpsLike
from defendr_cli.core.attacks.geometry import as_channel_tensor
from defendr_cli.core.runtime import Runtime



def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: EpsLike, *,
         targeted: bool | str = False, targets: torch.Tensor | None = None, label_mode: str = "true",
         loss: str = "ce", generator: torch.Generator | None = None, runtime: Runtime | None = None,
         eval_mode: bool = True, check_success: bool = True) -> AttackResult:
    """One-step L-inf attack; see the module docstring. Returns AttackResult(adv, success)."""
    return fgsm_multi(model, images, labels, [eps], targeted=targeted, targets=targets,
                      label_mode=label_mode, loss=loss, generator=generator, runtime=runtime,
                      eval_mode=eval_mode, check_success=check_success)[0]


def fgsm_multi(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps_list: Sequence[EpsLike], *,
               targeted: bool | str = False, targets: torch.Tensor | None = None, label_mode: str = "true",
               loss: str = "ce", generator: torch.Generator | None = None, runtime: Runtime | None = None,
               eval_mode: bool = True, check_success: bool = True) -> list[AttackResult]:
    """FGSM for every eps in `eps_list` from a single gradient; one AttackResult per eps, in order.

    check_success=False skips the forward pass on the adversarial images (success and adv_pred
    are then None); use it only when the caller evaluates the images itself.
    """
    check_inputs(images, labels)
    with attack_context(model, runtime, loss=loss, eval_mode=eval_mode) as ctx:
        clean, goal = ctx.start(images, labels, targeted=targeted, targets=targets, label_mode=label_mode,
                                generator=generator)
        direction = ctx.gradient(clean, goal).sign()  # targeted losses already point at the target
        results = []
        for eps in eps_list:
            adv = torch.clamp(clean + as_channel_tensor(eps, clean) * direction, 0.0, 1.0)
            results.append(ctx.result(adv, goal) if check_success else ctx.unchecked(adv, goal))
        return results
