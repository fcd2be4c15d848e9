"""`clp`: clean logit pairing (Kannan et al. 2018; Defendr paper §4.2.2).

Loss = CE(all logits) + λ · MSE(logits[:m/2], logits[m/2:m]): the first half of each batch is
paired with the second half (batches are shuffled, so pairs are random clean images). With an odd
batch the last image takes part in CE only. λ is --pair-weight (default 0.5). MSE is the mean of
the squared differences over pairs and classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from defendr_cli.core.training.options import option
from defendr_cli.core.training.recipes.base import RecipeSpec
from defendr_cli.core.training.recipes.baseline import ClassifierOptions, PenalisedClassifierRecipe, classification_loss


@dataclass
class ClpOptions(ClassifierOptions):
    pair_weight: float = option(0.5, minimum=0, help="Lambda of the logit-pairing MSE.")


def clean_logit_pairing_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """CE(logits, labels) + weight * mean((logits[:h] - logits[h:2h])²), h = n // 2; logits (n, K)."""
    logits = logits.float()
    loss = classification_loss(logits, labels)
    half = logits.shape[0] // 2
    if half > 0:
        loss = loss + weight * F.mse_loss(logits[:half], logits[half:2 * half])
    return loss


class CleanLogitPairingRecipe(PenalisedClassifierRecipe, loss=clean_logit_pairing_loss, weight_option="pair_weight"):
    method_options: ClpOptions


SPEC = RecipeSpec("clp", ClpOptions, CleanLogitPairingRecipe, kind="classifier",
                  help="Clean logit pairing: CE + λ·MSE between the logits of random pairs of clean images.")
