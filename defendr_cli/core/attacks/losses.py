"""Per-example attack objectives to be maximised: cross-entropy, the CW-style margin and DLR.

Every function maps logits (N, K) and classes (N,) to a per-example loss (N,) float32 that grows
as the attack succeeds (for targeted attacks the classes are the targets).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from defendr_cli.core.errors import InputError

LOSSES = ("ce", "margin", "dlr")


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


def _sorted_logit(sorted_logits: torch.Tensor, rank: int) -> torch.Tensor:
    """The rank-th largest logit (rank 1 = largest) per example, the smallest one when K < rank."""
    return sorted_logits[:, -min(rank, sorted_logits.shape[1])]


def dlr(logits: torch.Tensor, classes: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020): shift- and scale-invariant margin.

    Untargeted: -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12), pi = logits sorted descending.
    Targeted (classes = targets, no true label available): (z_t - max_{j != t} z_j) /
    (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12); it equals `dlr_targeted` whenever the clean label is
    the top class. With fewer than 3 (4) classes the smallest logit stands in for z_pi3 (z_pi4).
    """
    logits = logits.float()
    ordered = logits.sort(dim=1).values
    gap = margin(logits, classes, True)  # z_c - max_{j != c} z_j
    if targeted:
        scale = ordered[:, -1] - 0.5 * (_sorted_logit(ordered, 3) + _sorted_logit(ordered, 4))
        return gap / (scale + 1e-12)
    return -gap / (ordered[:, -1] - _sorted_logit(ordered, 3) + 1e-12)


def dlr_targeted(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targeted DLR of APGD-T (Croce & Hein 2020), to be maximised:
    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12), y the true label, t the target.
    With fewer than 4 classes the smallest logit stands in for the missing ones."""
    logits = logits.float()
    ordered = logits.sort(dim=1).values
    own = logits.gather(1, labels[:, None]).squeeze(1)
    target = logits.gather(1, targets[:, None]).squeeze(1)
    scale = ordered[:, -1] - 0.5 * (_sorted_logit(ordered, 3) + _sorted_logit(ordered, 4))
    return -(own - target) / (scale + 1e-12)


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]:
    """'ce' | 'margin' | 'dlr' -> the loss function; InputError otherwise."""
    if name == "ce":
        return cross_entropy
    if name == "margin":
        return margin
    if name == "dlr":
        return dlr
    raise InputError(f"unknown attack loss '{name}': use one of {', '.join(LOSSES)}")
