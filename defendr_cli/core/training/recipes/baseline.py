"""`baseline`: cross-entropy on clean images. Also home of `ClassifierRecipe`, the base of every
recipe that trains a classifier (baseline, adv, alp, clp, lsq): it builds the classifier from the
options (arch, pretrained, freeze_backbone), the clean train/val batches, the checkpoint config
and summary. Subclasses override `batch_loss` and, for other data, `make_train_batches`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.models.defenses import defense_spec
from defendr_cli.core.models.pretrained import frozen_random_backbone_warning
from defendr_cli.core.models.registry import build_classifier
from defendr_cli.core.training.data import BatchSource, TrainBatch
from defendr_cli.core.training.options import MethodOptions, TrainOptions
from defendr_cli.core.training.recipes.base import Recipe, RecipeSpec, StepResult, TrainContext


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits (n, K) against labels (n,), computed in fp32."""
    return F.cross_entropy(logits.float(), labels)


@dataclass
class BaselineOptions(MethodOptions):
    """`baseline` has no options of its own (only the shared ones of TrainOptions)."""


class ClassifierRecipe(Recipe):
    """Train a `build_classifier(arch, num_classes)` on clean batches with cross-entropy.

    `self.options` is the run's TrainOptions; subclasses read their own fields from
    `self.method_options` (options.method_options, an instance of their spec's options_class).
    """

    def __init__(self, options: TrainOptions, context: TrainContext) -> None:
        self.options, self.context = options, context
        self.method_options = options.method_options
        info = context.data_info
        model = build_classifier(options.arch, int(info.num_classes), options.pretrained)
        if options.freeze_backbone:
            model.freeze_backbone()
        warning = frozen_random_backbone_warning(options.arch, options.pretrained, options.freeze_backbone)
        if warning and context.dist.is_main:
            context.reporter.note(warning)
        self.module = context.runtime.prepare_model(model)
        self.extra_parents: list[dict[str, str]] = []  # set by subclasses (adversarial sets)
        self._parents: list[dict[str, str]] | None = None
        self.train_batches = self.make_train_batches()
        self.val_source = BatchSource(context.data_path, "val", options.batch_size, shuffle=False,
                                      workers=options.workers, dist=context.dist, pad_shards=False)

    # -- data -------------------------------------------------------------------------------
    def make_train_batches(self) -> BatchSource:
        return BatchSource(self.context.data_path, "train", self.options.batch_size, kind="clean",
                           workers=self.options.workers, dist=self.context.dist)

    def validation_batches(self):
        return self.val_source.epoch(0, 0)

    # -- losses -----------------------------------------------------------------------------
    def batch_loss(self, batch: TrainBatch) -> StepResult:
        logits = self.forward_module(batch.images)
        return StepResult(classification_loss(logits, batch.labels), logits, batch.labels)

    def validation_logits(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.module(batch.images), batch.labels

    # -- checkpoint -------------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"arch": self.options.arch, "num_classes": int(self.context.data_info.num_classes),
                                  "image_size": int(self.context.data_info.image_size)}
        if self.options.defense != "none":
            config["defense"] = defense_spec(self.options.defense, self.options.defense_variant, self.options.passes)
        return config

    def parents(self) -> list[dict[str, str]]:
        if self._parents is None:  # hashing a pretrained file once, not at every saved epoch
            self._parents = self._find_parents()
        return self._parents + self.extra_parents

    def _find_parents(self) -> list[dict[str, str]]:
        info = self.context.data_info
        parents = [{"role": "data", "name": Path(self.context.data_path).stem, "fingerprint": str(info.fingerprint)}]
        pretrained = self.options.pretrained
        if pretrained and pretrained != "imagenet":
            path = Path(pretrained).expanduser()
            parents.append({"role": "pretrained", "name": path.name, "fingerprint": file_fingerprint(path)})
        elif pretrained:
            parents.append({"role": "pretrained", "name": f"imagenet:{self.options.arch}", "fingerprint": ""})
        return parents

    def describe_method(self) -> str:
        return self.options.method

    def summary(self, best: dict[str, Any]) -> str:
        info = self.context.data_info
        acc = best.get("val_acc")
        acc_text = f"val acc {acc:.1%}" if acc is not None else "no validation"
        return (f"{self.describe_method()} {self.options.arch} classifier, {info.num_classes} classes "
                f"{info.image_size}px, {acc_text} (epoch {best.get('epoch', '?')}/{self.options.epochs})")

    def close(self) -> None:
        self.train_batches.close()
        self.val_source.close()


SPEC = RecipeSpec("baseline", BaselineOptions, ClassifierRecipe, kind="classifier",
                  help="Cross-entropy on clean images.")
