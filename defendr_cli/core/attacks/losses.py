"""Per-example attack objectives to be maximised: cross-entropy and the CW-style margin.

Every function maps logits (N, K) and classes (N,) to a per-example loss (N,) float32 that grows
as the attack succeeds (for targeted attacks the classes are the targets).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from defendr_cli.core.errors import InputError

LOSSES = ("ce", "margin")


def cross_entropy(logits: torch.Tensor, classes: torch.Tensor, targeted: bool) -> torch.Tensor:
    """CE(logits, classes) untargeted (push away), -CE targeted (pull towards the target)."""
    loss = F.cross_entropy(logits.float(), classes, reduction="none")
    return -loss if targeted else loss


def margin(logits: torch.Tensor, classes: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Carlini-Wagner margin on logits, unclamped.

    Untargeted: max_{j != y} z_j - z_y.  Targeted: z_t - max_{j != t} z_j.
    """
    logits = logits.float()
    own = logits.gather(1, classes[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(classes, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return own - others if targeted else others - own


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]:
    """'ce' | 'margin' -> the loss function; InputError otherwise."""
    if name == "ce":
        return cross_entropy
    if name == "margin":
        return margin
    raise InputError(f"unknown attack loss '{name}': use one of {', '.join(LOSSES)}")
