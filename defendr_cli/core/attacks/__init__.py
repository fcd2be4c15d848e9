"""Adversarial attacks on pixel-space classifiers (images in [0, 1], eps in pixel units).

One attack per file over `base.py`; the L-inf geometry lives in `geometry.py`, objectives in
`losses.py`, eps parsing in `eps.py`, attacks by name in `registry.py` (`build_attack`). The
`attack` stage (reading a clean split, writing sets) is `stage.py`, its per-batch work
`batches.py`, the preview grid PNG `preview.py`.
"""

from defendr_cli.core.attacks.base import AttackResult, frozen_model
from defendr_cli.core.attacks.bim import bim
from defendr_cli.core.attacks.eps import (
    IMAGENET_STD,
    EpsValue,
    eps_in_pixels,
    normalized_eps_to_pixel,
    parse_eps,
    parse_eps_list,
)
from defendr_cli.core.attacks.fgsm import fgsm, fgsm_multi
from defendr_cli.core.attacks.mifgsm import mifgsm
from defendr_cli.core.attacks.pgd import pgd
from defendr_cli.core.attacks.registry import Attack, attack_names, build_attack

__all__ = [
    "IMAGENET_STD", "Attack", "AttackResult", "EpsValue", "attack_names", "bim", "build_attack",
    "eps_in_pixels", "fgsm", "fgsm_multi", "frozen_model", "mifgsm", "normalized_eps_to_pixel",
    "parse_eps", "parse_eps_list", "pgd",
]
