"""`alp`: adversarial logit pairing (Kannan et al. 2018; Defendr paper §4.2.2).

Loss = CE(logits(clean), y) + CE(logits(adv), y) + λ · MSE(logits(clean), logits(adv)), where adv
is the adversarial copy of each clean image. λ is --pair-weight (default 0.5); MSE is the mean of
squared differences over images and classes. Pairs come either from cached adversarial sets of
the train split (`--adv fgsm-eps0.12`, paired batches) or from attacking each batch on the fly
(`--online pgd --eps 4/255`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from defendr_cli.core.training.data import TrainBatch
from defendr_cli.core.training.recipes import StepResult, register_recipe
from defendr_cli.core.training.recipes.adv import CachedOrOnlineAdversarialRecipe
from defendr_cli.core.training.recipes.baseline import classification_loss


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

    def batch_loss(self, batch: TrainBatch) -> StepResult:
        if self.attack is not None:
            adv = self.attack(self.module, batch.images, batch.labels)
        else:
            adv = batch.adv_images
        n = len(batch)
        logits = self.forward_module(torch.cat([batch.images, adv]))
        clean_logits, adv_logits = logits[:n], logits[n:]
        loss = adversarial_logit_pairing_loss(clean_logits, adv_logits, batch.labels, self.options.pair_weight)
        return StepResult(loss, clean_logits, batch.labels)

    def describe_method(self) -> str:
        source = f"online {self.options.online} eps {self.options.eps}" if self.attack is not None \
            else "+" + ", ".join(self.options.adv)
        return f"alp (λ={self.options.pair_weight:g}, {source})"


register_recipe("alp", AdversarialLogitPairingRecipe)
