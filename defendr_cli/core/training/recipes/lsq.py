"""`lsq`: clean logit squeezing (Kannan et al. 2018): CE + λ · mean over the batch of ||logits||².

λ is --squeeze-weight (default 0.05). Small logits keep the model from becoming overconfident.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from defendr_cli.core.training.options import check_at_least, option
from defendr_cli.core.training.recipes.base import RecipeSpec
from defendr_cli.core.training.recipes.baseline import ClassifierOptions, ClassifierRecipe, classification_loss


@dataclass
class LsqOptions(ClassifierOptions):
    squeeze_weight: float = option(0.05, help="Lambda of the squared logit norm.")

    def validate(self) -> "LsqOptions":
        super().validate()
        check_at_least("--squeeze-weight", self.squeeze_weight, 0)
        return self


def logit_squeezing_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """CE(logits, labels) + weight * mean_i sum_k logits[i, k]², logits (n, K) -> scalar."""
    logits = logits.float()
    return classification_loss(logits, labels) + weight * logits.pow(2).sum(dim=1).mean()


class LogitSqueezingRecipe(ClassifierRecipe):
    method_options: LsqOptions

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logit_squeezing_loss(logits, labels, self.method_options.squeeze_weight)

    def describe_method(self) -> str:
        return f"lsq (λ={self.method_options.squeeze_weight:g})"


SPEC = RecipeSpec("lsq", LsqOptions, LogitSqueezingRecipe, kind="classifier",
                  help="Logit squeezing: CE + λ·mean squared logit norm.")
