"""Training recipes: what is trained and with which batch loss. The loop (core/training/loop.py) owns
everything else (epochs, optimizer, LR schedule, AMP, validation, checkpoints, resume, progress).

A recipe is made by a factory registered under the method name:

    register_recipe("alp", factory)          # factory(options: TrainOptions, context: TrainContext) -> Recipe
    build_recipe(options, context)           # looks up options.method

The loop uses a recipe only through the `Recipe` protocol below; it never looks at the method name.
Recipes for classifiers subclass `ClassifierRecipe` (recipes/baseline.py) and override `batch_loss`
and, when they need other data, `make_train_batches`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.training.data import TrainBatch
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.workspace import Workspace


@dataclass
class TrainContext:
    """What a recipe may use besides its options.

    workspace: artefact folders (load a target model, find adversarial sets).
    runtime: device and precision; put modules on it with `runtime.prepare_model(m)`.
    data_path: the clean cache (HDF5); data_info: its core.io.reader.CacheInfo (class_ids,
        class_names, num_classes, image_size, fingerprint, split_counts, ...).
    reporter: progress/notes (core.progress.Reporter).
    dist: this process's place in a data-parallel run (core.distributed.DistContext; world size 1
        by default). Recipes pass it to their BatchSources so each rank reads its share of the data.
    """

    workspace: Workspace
    runtime: Runtime
    data_path: Path
    data_info: Any
    reporter: Reporter = field(default_factory=NullReporter)
    dist: DistContext = SINGLE


@dataclass
class StepResult:
    """The outcome of one training batch.

    loss: scalar tensor with a graph to the trainable parameters (the loop calls backward on it).
    logits: (n, K) detached or not, used only for the live train accuracy; None to skip it.
    labels: (n,) int64 matching `logits`.
    """

    loss: torch.Tensor
    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class BatchPlan(Protocol):
    """Training batches of one epoch (core.training.data.BatchSource satisfies it)."""

    def __len__(self) -> int: ...  # batches per epoch

    def epoch(self, seed: int, epoch: int) -> Iterator[TrainBatch]: ...  # same (seed, epoch) -> same batches

    def close(self) -> None: ...


class Recipe(Protocol):
    """One training method, as seen by the loop.

    Attributes
        module: the nn.Module being trained, already on `context.runtime`'s device. The loop
            optimizes its parameters that have requires_grad=True, calls `module.train()` before each
            epoch and `module.eval()` before validation, and saves `module.state_dict()` as the
            checkpoint's `state_dict` (and in the resume state). Frozen helpers (e.g. the dunet
            recipe's target classifier) are kept by the recipe outside `module`, or inside it with
            requires_grad=False and their own eval mode.
        forward_module (optional): the callable `batch_loss` uses for the forward pass whose loss is
            back-propagated; `module` itself by default. In a data-parallel run the loop sets it to a
            DistributedDataParallel wrapper of `module` (gradients are averaged over ranks during
            backward); attacks and frozen helpers keep using `module` / their own modules. A recipe
            without this attribute still trains correctly in parallel: the loop then averages the
            gradients itself after backward.
        kind: checkpoint kind written to the payload ("classifier", "denoised", ...); a builder
            for it must be an entry of core.models.loading.KIND_BUILDERS.
        train_batches: a BatchPlan; each TrainBatch has images/labels in [0, 1] on the CPU, plus
            adv_images for paired sources (see core.training.data.BatchSource kinds clean,
            doubled, paired). The loop moves every tensor to the device.

    Methods (tensors given to them are on the device; the loop wraps calls in runtime.autocast())
        batch_loss(batch) -> StepResult: the training loss of one batch (module in train mode).
            May run attacks (online adversarial training) itself.
        validation_batches() -> Iterable[TrainBatch]: batches measuring the checkpoint's quality
            (empty: no validation, the last epoch counts as best).
        validation_logits(batch) -> (logits (n, K), labels (n,)): called under torch.no_grad() with
            the module in eval mode; the loop reports accuracy and cross-entropy of these and keeps
            the epoch with the best accuracy as the checkpoint. For dunet: target(denoiser(x_adv)).
        checkpoint_config() -> dict: payload["config"], enough for the kind's builder to rebuild
            the module with no CLI flags (plain values only: weights_only loading).
        parents() -> list[{"role", "name", "fingerprint"}]: artefacts this model depends on.
        summary(best: dict) -> str: one line for `defendr ls` (best has val_acc, epoch, ...).
        close(): release files (readers).
    """

    module: nn.Module
    kind: str
    train_batches: BatchPlan

    def batch_loss(self, batch: TrainBatch) -> StepResult: ...

    def validation_batches(self) -> Iterable[TrainBatch]: ...

    def validation_logits(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]: ...

    def checkpoint_config(self) -> dict[str, Any]: ...

    def parents(self) -> list[dict[str, str]]: ...

    def summary(self, best: dict[str, Any]) -> str: ...

    def close(self) -> None: ...


RecipeFactory = Callable[[TrainOptions, TrainContext], Recipe]
RECIPES: dict[str, RecipeFactory] = {}


def register_recipe(name: str, factory: RecipeFactory) -> None:
    """Make `defendr train NAME` build its recipe with factory(options, context)."""
    RECIPES[name] = factory


def build_recipe(options: TrainOptions, context: TrainContext) -> Recipe:
    if options.method not in RECIPES:
        raise InputError(f"unknown training method '{options.method}': use one of {', '.join(sorted(RECIPES))}")
    return RECIPES[options.method](options, context)


# Each import registers one method.
from defendr_cli.core.training.recipes import adv, alp, baseline, clp, lsq  # noqa: E402,F401
from defendr_cli.core.training.recipes import dunet  # noqa: E402,F401
