"""`lsq`: clean logit squeezing (Kannan et al. 2018): CE + λ · mean over the batch of ||logits||².

λ is --squeeze-weight (default 0.05). Small logits keep the model from becoming overconfident.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from defendr_cli.core.training.options import option
from defendr_cli.core.training.recipes.base import RecipeSpec
from defendr_cli.core.training.recipes.baseline import ClassifierOptions, PenalisedClassifierRecipe, classification_loss


@dataclass
class LsqOptions(ClassifierOptions):
    squeeze_weight: float = option(0.05, minimum=0, help="Lambda of the squared logit norm.")


def logit_squeezing_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """CE(logits, labels) + weight * mean_i sum_k logits[i, k]², logits (n, K) -> scalar."""
    logits = logits.float()
    return classification_loss(logits, labels) + weight * logits.pow(2).sum(dim=1).mean()


class LogitSqueezingRecipe(PenalisedClassifierRecipe, loss=logit_squeezing_loss, weight_option="squeeze_weight"):
    method_options: LsqOptions


SPEC = RecipeSpec("lsq", LsqOptions, LogitSqueezingRecipe, kind="classifier",
                  help="Logit squeezing: CE + λ·mean squared logit norm.")
