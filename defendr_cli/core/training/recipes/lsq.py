"""`lsq`: clean logit squeezing (Kannan et al. 2018): CE + λ · mean over the batch of ||logits||².

λ is --squeeze-weight (default 0.05). Small logits keep the model from becoming overconfident.
"""

from __future__ import annotations

import torch

from defendr_cli.core.training.data import TrainBatch
from defendr_cli.core.training.recipes import StepResult, register_recipe
from defendr_cli.core.training.recipes.baseline import ClassifierRecipe, classification_loss


def logit_squeezing_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """CE(logits, labels) + weight * mean_i sum_k logits[i, k]², logits (n, K) -> scalar."""
    logits = logits.float()
    return classification_loss(logits, labels) + weight * logits.pow(2).sum(dim=1).mean()


class LogitSqueezingRecipe(ClassifierRecipe):
    def batch_loss(self, batch: TrainBatch) -> StepResult:
        logits = self.forward_module(batch.images)
        return StepResult(logit_squeezing_loss(logits, batch.labels, self.options.squeeze_weight), logits, batch.labels)

    def describe_method(self) -> str:
        return f"lsq (λ={self.options.squeeze_weight:g})"


register_recipe("lsq", LogitSqueezingRecipe)
