"""Where adversarial training images come from, shared by the adv, alp and dunet recipes:
cached adversarial sets of the train split (`--adv`) or an attack run on every batch (`--online`).

`AdversarialSourceOptions` is the options group those recipes' own options inherit;
`make_online_attack` turns it into a callable; `adv_set_parents` records the cached sets used.

`--online fgsm-rs` is fast adversarial training's attack (Wong, Rice & Kolter 2020, arXiv:2001.03994):
a uniform random start in the eps-ball, then one signed-gradient step of 1.25 * eps, projected
back onto the ball and clipped to [0, 1] (PGD with one step of that size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from defendr_cli.core.attacks import build_attack, eps_in_pixels, parse_eps
from defendr_cli.core.attacks.registry import attack_parameters
from defendr_cli.core.io.adv_fingerprint import adv_set_fingerprint
from defendr_cli.core.training.options import MethodOptions, option
from defendr_cli.core.training.recipes.base import TrainContext

EPS_SPACES = ("pixel", "normalized")

FAST_FGSM = "fgsm-rs"
FAST_FGSM_STEP = 1.25  # Wong et al. 2020: step size alpha = 1.25 * eps

OnlineAttack = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class AdversarialSourceOptions(MethodOptions):
    """Cached adversarial sets (`adv`) or an online attack (`online`, `eps`, `eps_space`, `attack_steps`)."""

    adv: list[str] = option(default_factory=list, help="Cached adversarial sets of the train split (names or "
                                                       "prefixes, repeat or comma-separate).")
    online: str | None = option(None, help="Attack each batch with this attack (fgsm, pgd, bim, mifgsm, or "
                                           "fgsm-rs: fast FGSM with random start, Wong et al. 2020).")
    eps: str = option("4/255", help="Online attack eps, e.g. 4/255 (pixel units unless --eps-space normalized).")
    eps_space: str = option("pixel", choices=EPS_SPACES, help="Online attack eps units: pixel | normalized.")
    attack_steps: int = option(10, minimum=1, help="Online attack: steps of iterative attacks.")

    def validate(self) -> "AdversarialSourceOptions":
        super().validate()
        parse_eps(self.eps)  # InputError naming --eps for a negative, NaN or unreadable eps
        return self


def make_online_attack(options: AdversarialSourceOptions, context: TrainContext) -> OnlineAttack:
    """build_attack(options.online, eps=pixel eps [, steps]) as a callable (model, images, labels)
    -> adversarial images float32 (n, 3, H, W) in [0, 1]. 'fgsm-rs' is PGD with a random start
    and one step of FAST_FGSM_STEP * eps (the module docstring)."""
    eps = eps_in_pixels(parse_eps(options.eps), options.eps_space)
    if options.online == FAST_FGSM:
        attack = build_attack("pgd", eps=eps, steps=1, step_size=FAST_FGSM_STEP * eps, random_start=True,
                              check_success=False)
    else:
        attack = _registered_attack(options, eps)

    def run(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return attack(model, images, labels, runtime=context.runtime).adv.detach()

    return run


def _registered_attack(options: AdversarialSourceOptions, eps: Any) -> Any:
    allowed = attack_parameters(options.online)
    params: dict[str, Any] = {"eps": eps}
    if "steps" in allowed:
        params["steps"] = options.attack_steps
    if "check_success" in allowed:
        params["check_success"] = False
    return build_attack(options.online, **params)


def adv_set_parents(paths: list[Path]) -> list[dict[str, str]]:
    """Provenance of cached adversarial sets: name and content fingerprint (cheap check, no full read)."""
    return [{"role": "adversarial-set", "name": p.stem, "fingerprint": adv_set_fingerprint(p)} for p in paths]
