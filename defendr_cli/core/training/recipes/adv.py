"""`adv`: adversarial training, in one of two modes.

Paper mode (`--adv fgsm-eps0.12 [--adv ...]`): the clean training split plus the cached
adversarial copies of it (core/io/adversarial.py; sets of the train split made by `defendr
attack`), shuffled together into one doubled dataset; loss = cross-entropy. The copies were made
against a fixed source model, so this is the paper's (transfer) adversarial training.

Online mode (`--online pgd --eps 4/255 [--attack-steps 10] [--adv-ratio 0.5]`): Madry-style; in
every batch the first round(adv_ratio * n) images are replaced by an attack on the current model
(core.attacks.build_attack, eval mode while attacking); loss = cross-entropy on the mixed batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.training.data import BatchSource, TrainBatch, resolve_adv_sets
from defendr_cli.core.training.options import TrainOptions, option
from defendr_cli.core.training.recipes.adversarial_source import (
    AdversarialSourceOptions,
    adv_set_parents,
    make_online_attack,
)
from defendr_cli.core.training.recipes.base import RecipeSpec, StepResult, TrainContext
from defendr_cli.core.training.recipes.baseline import ClassifierOptions, ClassifierRecipe, classification_loss


@dataclass
class AdvOptions(AdversarialSourceOptions, ClassifierOptions):
    adv_ratio: float = option(0.5, help="Online mode: share of each batch attacked.")

    def validate(self) -> "AdvOptions":
        super().validate()
        if not 0.0 < self.adv_ratio <= 1.0:
            raise InputError(f"--adv-ratio must be in (0, 1], got {self.adv_ratio}")
        return self


class CachedOrOnlineAdversarialRecipe(ClassifierRecipe):
    """Base of recipes that take adversarial images either from cached sets of the train split
    (`--adv`, batches of kind `batch_kind`) or from an online attack on each batch (`--online`).
    Their method options inherit AdversarialSourceOptions."""

    method = "adv"
    batch_kind = "doubled"
    cached_words = "cached adversarial copies"
    method_options: AdversarialSourceOptions

    def __init__(self, options: TrainOptions, context: TrainContext) -> None:
        source = options.method_options
        if bool(source.adv) == bool(source.online):
            raise InputError(f"`train {self.method}` needs either --adv SET (paper mode, {self.cached_words}) "
                             "or --online ATTACK (attack each batch): give exactly one of them")
        self.attack = make_online_attack(source, context) if source.online else None
        super().__init__(options, context)

    def make_train_batches(self) -> BatchSource:
        if self.attack is not None:
            return super().make_train_batches()
        paths = resolve_adv_sets(self.context.workspace, self.method_options.adv, split="train",
                                 clean_fingerprint=str(self.context.data_info.fingerprint), method=self.method)
        self.extra_parents = adv_set_parents(paths)
        return BatchSource(self.context.data_path, "train", self.options.batch_size, kind=self.batch_kind,
                           adv_paths=paths, workers=self.options.workers, dist=self.context.dist)

    def describe_source(self) -> str:
        """'online pgd eps 4/255' or '+set1, set2'."""
        if self.attack is not None:
            return f"online {self.method_options.online} eps {self.method_options.eps}"
        return "+" + ", ".join(self.method_options.adv)


class AdversarialTrainingRecipe(CachedOrOnlineAdversarialRecipe):
    method_options: AdvOptions

    def batch_loss(self, batch: TrainBatch, forward: nn.Module) -> StepResult:
        images = batch.images
        if self.attack is not None:
            count = max(1, round(self.method_options.adv_ratio * len(batch)))
            adv = self.attack(self.module, images[:count], batch.labels[:count])
            images = torch.cat([adv, images[count:]])
        logits = forward(images)
        return StepResult(classification_loss(logits, batch.labels), logits, batch.labels)

    def describe_method(self) -> str:
        if self.attack is not None:
            return f"adv ({self.describe_source()}, ratio {self.method_options.adv_ratio:g})"
        return f"adv ({self.describe_source()})"


SPEC = RecipeSpec("adv", AdvOptions, AdversarialTrainingRecipe, kind="classifier",
                  help="Adversarial training: cached adversarial copies (--adv) or an online attack (--online).")
