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

from defendr_cli.core.errors import InputError
from defendr_cli.core.training.data import BatchSource, TrainBatch, resolve_adv_sets
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.training.recipes import StepResult, TrainContext, register_recipe
from defendr_cli.core.training.recipes.adv import adv_set_parents, make_online_attack
from defendr_cli.core.training.recipes.baseline import ClassifierRecipe, classification_loss


def adversarial_logit_pairing_loss(clean_logits: torch.Tensor, adv_logits: torch.Tensor, labels: torch.Tensor,
                                   weight: float) -> torch.Tensor:
    """CE(clean) + CE(adv) + weight * mean((clean_logits - adv_logits)²); logits (n, K), labels (n,)."""
    clean_logits, adv_logits = clean_logits.float(), adv_logits.float()
    return (classification_loss(clean_logits, labels) + classification_loss(adv_logits, labels)
            + weight * F.mse_loss(clean_logits, adv_logits))


class AdversarialLogitPairingRecipe(ClassifierRecipe):
    def __init__(self, options: TrainOptions, context: TrainContext) -> None:
        if bool(options.adv) == bool(options.online):
            raise InputError("`train alp` needs either --adv SET (cached adversarial pairs) "
                             "or --online ATTACK (attack each batch): give exactly one of them")
        self.attack = make_online_attack(options, context) if options.online else None
        super().__init__(options, context)

    def make_train_batches(self) -> BatchSource:
        if self.attack is not None:
            return super().make_train_batches()
        paths = resolve_adv_sets(self.context.workspace, self.options.adv, split="train",
                                 clean_fingerprint=str(self.context.data_info.fingerprint), method="alp")
        self.extra_parents = adv_set_parents(paths)
        return BatchSource(self.context.data_path, "train", self.options.batch_size, kind="paired",
                           adv_paths=paths, workers=self.options.workers, dist=self.context.dist)

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
