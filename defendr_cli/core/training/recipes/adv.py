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

from pathlib import Path
from typing import Any

import torch

from defendr_cli.core.io.adv_fingerprint import adv_set_fingerprint
from defendr_cli.core.errors import InputError
from defendr_cli.core.training.data import BatchSource, TrainBatch, resolve_adv_sets
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.training.recipes import StepResult, TrainContext, register_recipe
from defendr_cli.core.training.recipes.baseline import ClassifierRecipe, classification_loss


def make_online_attack(options: TrainOptions, context: TrainContext):
    """build_attack(options.online, eps=pixel eps [, steps]) as a callable (model, images, labels)
    -> adversarial images float32 (n, 3, H, W) in [0, 1]."""
    from defendr_cli.core.attacks import build_attack, eps_in_pixels, parse_eps
    from defendr_cli.core.attacks.registry import attack_parameters

    eps = eps_in_pixels(parse_eps(options.eps), options.eps_space)
    allowed = attack_parameters(options.online)
    params: dict[str, Any] = {"eps": eps}
    if "steps" in allowed:
        params["steps"] = options.attack_steps
    if "check_success" in allowed:
        params["check_success"] = False
    attack = build_attack(options.online, **params)

    def run(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return attack(model, images, labels, runtime=context.runtime).adv.detach()

    return run


def adv_set_parents(paths: list[Path]) -> list[dict[str, str]]:
    """Provenance of cached adversarial sets: name and content fingerprint (cheap check, no full read)."""
    return [{"role": "adversarial-set", "name": p.stem, "fingerprint": adv_set_fingerprint(p)} for p in paths]


class CachedOrOnlineAdversarialRecipe(ClassifierRecipe):
    """Base of recipes that take adversarial images either from cached sets of the train split
    (`--adv`, batches of kind `batch_kind`) or from an online attack on each batch (`--online`)."""

    method = "adv"
    batch_kind = "doubled"
    cached_words = "cached adversarial copies"

    def __init__(self, options: TrainOptions, context: TrainContext) -> None:
        if bool(options.adv) == bool(options.online):
            raise InputError(f"`train {self.method}` needs either --adv SET (paper mode, {self.cached_words}) "
                             "or --online ATTACK (attack each batch): give exactly one of them")
        self.attack = make_online_attack(options, context) if options.online else None
        super().__init__(options, context)

    def make_train_batches(self) -> BatchSource:
        if self.attack is not None:
            return super().make_train_batches()
        paths = resolve_adv_sets(self.context.workspace, self.options.adv, split="train",
                                 clean_fingerprint=str(self.context.data_info.fingerprint), method=self.method)
        self.extra_parents = adv_set_parents(paths)
        return BatchSource(self.context.data_path, "train", self.options.batch_size, kind=self.batch_kind,
                           adv_paths=paths, workers=self.options.workers, dist=self.context.dist)


class AdversarialTrainingRecipe(CachedOrOnlineAdversarialRecipe):
    def batch_loss(self, batch: TrainBatch) -> StepResult:
        images = batch.images
        if self.attack is not None:
            count = max(1, round(self.options.adv_ratio * len(batch)))
            adv = self.attack(self.module, images[:count], batch.labels[:count])
            images = torch.cat([adv, images[count:]])
        logits = self.forward_module(images)
        return StepResult(classification_loss(logits, batch.labels), logits, batch.labels)

    def describe_method(self) -> str:
        if self.attack is not None:
            return f"adv (online {self.options.online} eps {self.options.eps}, ratio {self.options.adv_ratio:g})"
        return f"adv (+{', '.join(self.options.adv)})"


register_recipe("adv", AdversarialTrainingRecipe)
