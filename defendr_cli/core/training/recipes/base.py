"""The recipe interface: what the training loop (core/training/loop.py) calls, and how a method is declared.

    RecipeSpec(name, options_class, factory, kind, help)   one training method (see registry.py)
    Recipe                                                  base class of what factory(options, context) builds

The loop owns epochs, optimizer, LR schedule, AMP, validation bookkeeping, checkpoints, resume,
progress and data parallelism; a Recipe supplies the trainable module, the batches and the losses.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.training.data import TrainBatch
from defendr_cli.core.training.history import EpochRecord
from defendr_cli.core.training.options import MethodOptions, TrainOptions
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


class Recipe(abc.ABC):
    """One training method, as seen by the loop.

    Attributes a subclass sets in its constructor
        module: the nn.Module being trained, already on `context.runtime`'s device. The loop
            optimizes its parameters that have requires_grad=True, calls `module.train()` before each
            epoch and `module.eval()` before validation, and saves `module.state_dict()` as the
            checkpoint's `state_dict` (and in the resume state). Frozen helpers (e.g. the dunet
            recipe's target classifier) are kept outside `module`.
        train_batches: a BatchPlan; each TrainBatch has images/labels in [0, 1] on the CPU, plus
            adv_images for paired sources (core.training.data.BatchSource kinds clean, doubled,
            paired). The loop moves every tensor to the device.

    Methods (tensors given to them are on the device; the loop wraps calls in runtime.autocast())
        batch_loss(batch, forward) -> StepResult: the training loss of one batch (module in train
            mode). `forward` is what to call for the forward pass whose loss is back-propagated:
            `module` itself, or in a data-parallel run the loop's DistributedDataParallel wrapper
            of it, which averages gradients over ranks during backward; attacks, validation and
            frozen helpers use `module` / their own modules.
        validation_batches() -> batches measuring the checkpoint's quality (default: none; the
            last epoch then counts as best).
        validation_logits(batch) -> (logits (n, K), labels (n,)): under torch.no_grad(), module in
            eval mode; the loop keeps the epoch with the best accuracy of these.
        checkpoint_config() -> the checkpoint's `config`: enough for the checkpoint kind's builder to
            rebuild the module with no CLI flags (plain values only).
        parents() -> [{"role", "name", "fingerprint"}]: artefacts this model depends on (default none);
            the loop stores them as the checkpoint's provenance parents (core.io.checkpoint_record.Reference).
        summary(best) -> one line for `defendr ls` (best: the best epoch's EpochRecord).
        close(): release files (default: close train_batches).
    """

    module: nn.Module
    train_batches: BatchPlan

    @abc.abstractmethod
    def batch_loss(self, batch: TrainBatch, forward: nn.Module) -> StepResult: ...

    def validation_batches(self) -> Iterable[TrainBatch]:
        return iter(())

    @abc.abstractmethod
    def validation_logits(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]: ...

    @abc.abstractmethod
    def checkpoint_config(self) -> dict[str, Any]: ...

    def parents(self) -> list[dict[str, str]]:
        return []

    @abc.abstractmethod
    def summary(self, best: EpochRecord) -> str: ...

    def close(self) -> None:
        self.train_batches.close()


RecipeFactory = Callable[[TrainOptions, TrainContext], Recipe]


@dataclass(frozen=True)
class RecipeSpec:
    """One training method.

    name: `defendr train NAME` and the profile key `methods.NAME`.
    options_class: the method's MethodOptions dataclass (its fields become NAME's flags).
    factory: factory(options, context) -> Recipe; `options.method_options` is an options_class.
    kind: checkpoint kind written to the payload ("classifier", "denoised"); core.models.loading.KIND_BUILDERS
        must know how to build it.
    help: one line for `defendr train --help`.
    """

    name: str
    options_class: type[MethodOptions]
    factory: RecipeFactory
    kind: str
    help: str = ""
