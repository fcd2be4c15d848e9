"""`clp`: clean logit pairing (Kannan et al. 2018; Defendr paper §4.2.2).

Loss = CE(all logits) + λ · MSE(logits[:m/2], logits[m/2:m]): the first half of each batch is
paired with the second half (batches are shuffled, so pairs are random clean images). With an odd
batch the last image takes part in CE only. λ is --pair-weight (default 0.5). MSE is the mean of
the squared differences over pairs and classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from defendr_cli.core.training.data import TrainBatch
from defendr_cli.core.training.recipes import StepResult, register_recipe
from defendr_cli.core.training.recipes.baseline import ClassifierRecipe, classification_loss


def clean_logit_pairing_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """CE(logits, labels) + weight * mean((logits[:h] - logits[h:2h])²), h = n // 2; logits (n, K)."""
    logits = logits.float()
    loss = classification_loss(logits, labels)
    half = logits.shape[0] // 2
    if half > 0:
        loss = loss + weight * F.mse_loss(logits[:half], logits[half:2 * half])
    return loss


class CleanLogitPairingRecipe(ClassifierRecipe):
    def batch_loss(self, batch: TrainBatch) -> StepResult:
        logits = self.forward_module(batch.images)
        return StepResult(clean_logit_pairing_loss(logits, batch.labels, self.options.pair_weight), logits, batch.labels)

    def describe_method(self) -> str:
        return f"clp (λ={self.options.pair_weight:g})"


register_recipe("clp", CleanLogitPairingRecipe)
