"""`baseline`: cross-entropy on clean images. Also home of what every recipe that trains a
classifier (baseline, adv, alp, clp, lsq) shares: `ClassifierOptions`, the options only a
classifier has (arch, pretrained, freeze_backbone, and the inference-time defense recorded in its
checkpoint), which those recipes' options inherit and no other method takes; and
`ClassifierRecipe`, which builds the classifier from them, the clean train/val batches, the
checkpoint config and summary. Subclasses override `batch_loss` and, for other data,
`make_train_batches`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.fingerprint import file_fingerprint
from defendr_cli.core.models.defenses import defense_spec
from defendr_cli.core.models.pretrained import frozen_random_backbone_warning
from defendr_cli.core.models.registry import DEFAULT_ARCH, TINY_ARCHS, build_classifier
from defendr_cli.core.training.data import BatchSource, TrainBatch
from defendr_cli.core.training.history import EpochRecord
from defendr_cli.core.training.options import SMALL_IMAGE_PX, MethodOptions, TrainOptions, option
from defendr_cli.core.training.recipes.base import Recipe, RecipeSpec, StepResult, TrainContext


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits (n, K) against labels (n,), computed in fp32."""
    return F.cross_entropy(logits.float(), labels)


DEFENSES = ("none", "random-resize-pad")


@dataclass
class ClassifierOptions(MethodOptions):
    """The options of every classifier recipe (their options classes inherit this one).

    arch None: resolved per run (`resolved`): resnet101, or tinyresnet for caches of <= 64 px
    images without --pretrained. A tiny arch takes the small defaults (8 epochs of batch 64).
    """

    arch: str | None = option(None, help="resnet18|34|50|101|152, tinyresnet, tinycnn (default: resnet101; "
                                         "tinyresnet for <= 64 px caches).")
    pretrained: str | None = option(None, help="torchvision state-dict file, or 'imagenet' (needs the network "
                                               "or the torch hub cache).")
    freeze_backbone: bool = option(False, help="Train only the last stage and the head.")
    defense: str = option("none", choices=DEFENSES, help="none | random-resize-pad: inference-time defense "
                                                         "recorded in the checkpoint.")
    defense_variant: str = option("paper", help="paper | competition (random-resize-pad).")
    passes: int | None = option(None, help="Randomization passes averaged at inference.")

    def resolved(self, image_size: int) -> "ClassifierOptions":
        small = image_size <= SMALL_IMAGE_PX and not self.pretrained  # pretrained weights exist for resnets only
        return replace(self, arch=self.arch or ("tinyresnet" if small else DEFAULT_ARCH))

    def small_run(self, image_size: int) -> bool:
        return self.resolved(image_size).arch in TINY_ARCHS


@dataclass
class BaselineOptions(ClassifierOptions):
    """`baseline` has no options besides the classifier's and the shared ones of TrainOptions."""


class ClassifierRecipe(Recipe):
    """Train a `build_classifier(arch, num_classes)` on clean batches with cross-entropy.

    `self.options` is the run's TrainOptions; the classifier's options and the subclass's own are
    `self.method_options` (options.method_options, an instance of the spec's options_class, a
    ClassifierOptions).
    """

    method_options: ClassifierOptions

    def __init__(self, options: TrainOptions, context: TrainContext) -> None:
        self.options, self.context = options, context
        self.method_options = own = options.method_options
        info = context.data_info
        model = build_classifier(own.arch, int(info.num_classes), own.pretrained)
        if own.freeze_backbone:
            model.freeze_backbone()
        warning = frozen_random_backbone_warning(own.arch, own.pretrained, own.freeze_backbone)
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
    def batch_loss(self, batch: TrainBatch, forward: nn.Module) -> StepResult:
        logits = forward(batch.images)
        return StepResult(self.logits_loss(logits, batch.labels), logits, batch.labels)

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The scalar training loss of one clean batch: logits (n, K), labels int64 (n,). Cross-entropy
        here; the logit-regularising recipes (clp, lsq) add their penalty."""
        return classification_loss(logits, labels)

    def validation_logits(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.module(batch.images), batch.labels

    # -- checkpoint -------------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        own = self.method_options
        config: dict[str, Any] = {"arch": own.arch, "num_classes": int(self.context.data_info.num_classes),
                                  "image_size": int(self.context.data_info.image_size)}
        if own.defense != "none":
            config["defense"] = defense_spec(own.defense, own.defense_variant, own.passes)
        return config

    def parents(self) -> list[dict[str, str]]:
        if self._parents is None:  # hashing a pretrained file once, not at every saved epoch
            self._parents = self._find_parents()
        return self._parents + self.extra_parents

    def _find_parents(self) -> list[dict[str, str]]:
        info = self.context.data_info
        parents = [{"role": "data", "name": Path(self.context.data_path).stem, "fingerprint": str(info.fingerprint)}]
        pretrained = self.method_options.pretrained
        if pretrained and pretrained != "imagenet":
            path = Path(pretrained).expanduser()
            parents.append({"role": "pretrained", "name": path.name, "fingerprint": file_fingerprint(path)})
        elif pretrained:
            parents.append({"role": "pretrained", "name": f"imagenet:{self.method_options.arch}", "fingerprint": ""})
        return parents

    def describe_method(self) -> str:
        return self.options.method

    def summary(self, best: EpochRecord) -> str:
        info = self.context.data_info
        acc_text = f"val acc {best.val_acc:.1%}" if best.val_acc is not None else "no validation"
        return (f"{self.describe_method()} {self.method_options.arch} classifier, {info.num_classes} classes "
                f"{info.image_size}px, {acc_text} (epoch {best.epoch}/{self.options.epochs})")

    def close(self) -> None:
        self.train_batches.close()
        self.val_source.close()


class PenalisedClassifierRecipe(ClassifierRecipe):
    """A classifier recipe whose loss is cross-entropy plus a λ-weighted penalty on the logits
    (clp, lsq). A subclass names its loss and the method option holding λ in its class line:
    `class Recipe(PenalisedClassifierRecipe, loss=fn, weight_option="pair_weight")`, with
    fn(logits (n, K), labels (n,), λ) -> the scalar loss."""

    penalised_loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    weight_option: str

    def __init_subclass__(cls, *, loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
                          weight_option: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.penalised_loss = staticmethod(loss)
        cls.weight_option = weight_option

    @property
    def weight(self) -> float:
        return getattr(self.method_options, self.weight_option)

    def logits_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.penalised_loss(logits, labels, self.weight)

    def describe_method(self) -> str:
        return f"{self.options.method} (λ={self.weight:g})"


SPEC = RecipeSpec("baseline", BaselineOptions, ClassifierRecipe, kind="classifier",
                  help="Cross-entropy on clean images.")
