"""`alp`: adversarial logit pairing (Kannan et al. 2018; Defendr paper §4.2.2).

Loss = CE(logits(clean), y) + CE(logits(adv), y) + λ · MSE(logits(clean), logits(adv)), where adv
is the adversarial copy of each clean image. λ is --pair-weight (default 0.5); MSE is the mean of
squared differences over images and classes. Pairs come either from cached adversarial sets of
the train split (`--adv fgsm-eps0.12`, paired batches) or from attacking each batch on the fly
(`--online pgd --eps 4/255`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from defendr_cli.core.training.data import TrainBatch
from defendr_cli.core.training.recipes.adv import CachedOrOnlineAdversarialRecipe
from defendr_cli.core.training.recipes.adversarial_source import AdversarialSourceOptions
from defendr_cli.core.training.recipes.base import RecipeSpec, StepResult
from defendr_cli.core.training.recipes.baseline import classification_loss
from defendr_cli.core.training.recipes.clp import ClpOptions


@dataclass
class AlpOptions(AdversarialSourceOptions, ClpOptions):
    """The adversarial source (--adv or --online ...) and clp's --pair-weight."""


def adversarial_logit_pairing_loss(clean_logits: torch.Tensor, adv_logits: torch.Tensor, labels: torch.Tensor,
                                   weight: float) -> torch.Tensor:
    """CE(clean) + CE(adv) + weight * mean((clean_logits - adv_logits)²); logits (n, K), labels (n,)."""
    clean_logits, adv_logits = clean_logits.float(), adv_logits.float()
    return (classification_loss(clean_logits, labels) + classification_loss(adv_logits, labels)
            + weight * F.mse_loss(clean_logits, adv_logits))


class AdversarialLogitPairingRecipe(CachedOrOnlineAdversarialRecipe):
    method = "alp"
    batch_kind = "paired"
    cached_words = "cached adversarial pairs"
    method_options: AlpOptions

    def batch_loss(self, batch: TrainBatch, forward: nn.Module) -> StepResult:
        if self.attack is not None:
            adv = self.attack(self.module, batch.images, batch.labels)
        else:
            adv = batch.adv_images
        n = len(batch)
        logits = forward(torch.cat([batch.images, adv]))
        clean_logits, adv_logits = logits[:n], logits[n:]
        loss = adversarial_logit_pairing_loss(clean_logits, adv_logits, batch.labels, self.method_options.pair_weight)
        return StepResult(loss, clean_logits, batch.labels)

    def describe_method(self) -> str:
        return f"alp (λ={self.method_options.pair_weight:g}, {self.describe_source()})"


SPEC = RecipeSpec("alp", AlpOptions, AdversarialLogitPairingRecipe, kind="classifier",
                  help="Adversarial logit pairing: CE on clean and adversarial pairs + λ·MSE of their logits.")
