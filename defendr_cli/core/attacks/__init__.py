"""Adversarial attacks on pixel-space classifiers (images in [0, 1], eps in pixel units).

Pure tensor code: one attack per file over `base.py`; the L-inf geometry lives in `geometry.py`,
objectives in `losses.py`, eps parsing in `eps.py`, and the attacks by name in `registry.py` (one
`AttackSpec` each; `build_attack`, `get_attack`, `register_attack`). The `attack` stage (reading a
clean split, writing sets) is core/stages/attack.py.
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
from defendr_cli.core.attacks.apgd import apgd
from defendr_cli.core.attacks.apgd_t import apgd_t
from defendr_cli.core.attacks.square import square
from defendr_cli.core.attacks.registry import (
    ATTACKS,
    Attack,
    AttackSpec,
    attack_names,
    build_attack,
    get_attack,
    register_attack,
    unregister_attack,
)

__all__ = [
    "ATTACKS", "IMAGENET_STD", "Attack", "AttackResult", "AttackSpec", "EpsValue", "apgd", "apgd_t", "attack_names", "bim",
    "build_attack", "eps_in_pixels", "fgsm", "fgsm_multi", "frozen_model", "get_attack", "mifgsm",
    "normalized_eps_to_pixel", "parse_eps", "parse_eps_list", "pgd", "register_attack", "square", "unregister_attack",
]
