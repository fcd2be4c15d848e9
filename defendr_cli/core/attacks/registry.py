"""Attacks by name, for the stages that attack inside their loops (adversarial training, adaptive
evaluation): `build_attack('pgd', eps=8/255, steps=10)(model, images, labels)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackResult
from defendr_cli.core.attacks.bim import bim
from defendr_cli.core.attacks.fgsm import fgsm
from defendr_cli.core.attacks.mifgsm import mifgsm
from defendr_cli.core.attacks.pgd import pgd
from defendr_cli.core.errors import InputError

ATTACKS: dict[str, Callable[..., AttackResult]] = {"fgsm": fgsm, "bim": bim, "pgd": pgd, "mifgsm": mifgsm}
ALIASES = {"i-fgsm": "bim", "ifgsm": "bim", "mi-fgsm": "mifgsm"}
_CALL_ARGS = ("model", "images", "labels")


def attack_names() -> list[str]:
    return sorted(ATTACKS)


def canonical_attack_name(name: str) -> str:
    """'PGD' -> 'pgd', 'i-fgsm' -> 'bim'; InputError for unknown names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ATTACKS:
        raise InputError(f"unknown attack '{name}': use one of {', '.join(attack_names())}")
    return key


def attack_parameters(name: str) -> list[str]:
    """Keyword parameters the attack accepts (besides model, images, labels)."""
    signature = inspect.signature(ATTACKS[canonical_attack_name(name)])
    return [p for p in signature.parameters if p not in _CALL_ARGS]


@dataclass
class Attack:
    """A configured attack: call it as `attack(model, images, labels, **overrides)`.

    `overrides` supplies per-call values such as `generator`, `targets` or `runtime`.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **overrides: Any) -> AttackResult:
        return ATTACKS[self.name](model, images, labels, **{**self.params, **overrides})


def build_attack(name: str, **params: Any) -> Attack:
    """Validate `params` against the attack's signature (eps is required) and return an Attack."""
    key = canonical_attack_name(name)
    allowed = set(attack_parameters(key))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InputError(f"attack '{key}' does not take {', '.join(unknown)} (it takes {', '.join(sorted(allowed))})")
    if "eps" not in params:
        raise InputError(f"attack '{key}' needs eps")
    return Attack(key, dict(params))
