"""The one training loop. It never looks at the method: a Recipe (core/training/recipes) supplies the
trainable module, the batches and the batch loss; the loop owns the rest.

    result = train(options, context)     # TrainOptions, TrainContext -> TrainResult

Per epoch: RNG reseeded from (seed, epoch); module.train(); for each batch, forward + loss under
runtime.autocast() (bf16/fp16), backward (GradScaler for fp16), optimizer step; a NaN/inf loss
raises TrainingDivergedError and leaves the files of the last good epoch untouched. Then
validation (accuracy + cross-entropy of recipe.validation_logits under no_grad), LR schedule step
(per epoch), history record; the best-validation epoch is written to the side file
models/.<name>.best.pt (`complete: False`) and the last epoch's full state (weights, optimizer,
scheduler, scaler) to the resume file, so `--resume` continues exactly where an interrupted run
stopped. models/<name>.pt is written once, when the run completes (`complete: True`): until then
a previous model of that name (train --force) stays as it was.

Data-parallel (context.dist from core.distributed, under torchrun): every rank builds the recipe
with the same seed, the module is wrapped in DistributedDataParallel for the loss forward (the
`forward` the loop passes to `recipe.batch_loss`; rank 0's weights are broadcast at wrapping;
frozen helpers such as the dunet target are never wrapped), each rank reads its share of every global batch (BatchSource),
losses and metrics are summed over ranks, BatchNorm buffers are taken from rank 0 before
validation, and only rank 0 writes the checkpoint and the resume state. The resume state holds
no per-rank data, so a run can be resumed with any number of processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from defendr_cli import __version__
from defendr_cli.core.atomic import check_writable
from torch.nn.parallel import DistributedDataParallel

from defendr_cli.core.distributed import DistContext, all_reduce_sum, barrier
from defendr_cli.core.errors import (ArtefactExistsError, CorruptArtefactError, InputError, MismatchError,
                                     TrainingDivergedError)
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.io.checkpoint import read_checkpoint, save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint, DataRecord, Provenance, Reference
from defendr_cli.core.progress import NullReporter, Reporter, interrupt_for_test
from defendr_cli.core.runtime import Runtime, seed_everything
from defendr_cli.core.training.data import TrainBatch, epoch_seed
from defendr_cli.core.training.history import EpochRecord
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.training.recipes.base import Recipe, RecipeSpec, TrainContext
from defendr_cli.core.training.recipes.registry import get_recipe, options_from_dict, with_method_options
from defendr_cli.core.training.resume import (best_path, cpu_state_dict, load_resume_state, resume_path,
                                              save_resume_state)
from defendr_cli.core.workspace import Workspace

RESUME_FREE = ("name", "resume", "force", "workers", "data")  # data: checked by the cache fingerprint
EXISTS_HINT = ("pass --force to train it again (the old model stays until the new run completes), "
               "or --resume to continue an interrupted run")


@dataclass
class TrainResult:
    """name/path of the written checkpoint, the checkpoint (None on the ranks > 0 of a data-parallel
    run, which write nothing), per-epoch history, the best epoch's record (None when no epoch ran),
    the epoch the run started from (0 unless resumed) and the wall-clock seconds of this call."""

    name: str
    path: Path
    checkpoint: Checkpoint | None
    history: list[EpochRecord]
    best: EpochRecord | None
    start_epoch: int
    seconds: float


def make_context(workspace: Workspace, runtime: Runtime, data: str | None = None,
                 reporter: Reporter | None = None, dist: DistContext | None = None) -> TrainContext:
    """Resolve the clean cache (name, path, or the workspace's only one) and read its info."""
    path = workspace.resolve("data", data) if data else workspace.default_data()
    context = TrainContext(workspace, runtime, path, read_cache_info(path), reporter or NullReporter())
    if dist is not None:
        context.dist = dist
    return context


def make_optimizer(options: TrainOptions, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if options.optimizer == "sgd":
        return torch.optim.SGD(params, lr=options.lr, momentum=0.9, weight_decay=options.weight_decay)
    return torch.optim.Adam(params, lr=options.lr, weight_decay=options.weight_decay)


def make_scheduler(options: TrainOptions, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: cosine to 0 over the run, x0.1 every third of the run, or constant."""
    if options.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.epochs)
    if options.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, options.epochs // 3), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _epoch: 1.0)


def _to_device(batch: TrainBatch, runtime: Runtime) -> TrainBatch:
    adv = runtime.to_device(batch.adv_images) if batch.adv_images is not None else None
    return TrainBatch(runtime.to_device(batch.images), batch.labels.to(runtime.device), adv, batch.clean_rows)


def _prepare_options(options: TrainOptions, context: TrainContext) -> tuple[TrainOptions, dict[str, Any] | None]:
    """Options of the run (stored ones when resuming) and the resume state, if any."""
    options = with_method_options(options).validate()
    name = options.model_name
    final = context.workspace.path_for("model", name)
    if not options.resume:
        try:
            check_writable(final, force=options.force)
        except ArtefactExistsError as exc:
            raise ArtefactExistsError(exc.message, hint=EXISTS_HINT) from exc
        if context.dist.is_main:  # files of a stale interrupted run
            resume_path(context.workspace, name).unlink(missing_ok=True)
            best_path(context.workspace, name).unlink(missing_ok=True)
        barrier(context.dist)
        return options.resolved(int(context.data_info.image_size)), None
    state = load_resume_state(resume_path(context.workspace, name), name)
    if state.get("data_fingerprint") != str(context.data_info.fingerprint):
        raise MismatchError(f"the interrupted run of '{name}' used another clean cache; pass the same --data")
    try:
        stored = with_method_options(options_from_dict(state["options"])).validate()
    except (TypeError, ValueError, KeyError, InputError) as exc:
        raise CorruptArtefactError(f"the resume state of '{name}' holds unusable options ({exc})",
                                   hint="start the run afresh with --force") from exc
    check_resume_matches(options, stored, name)
    context.reporter.note(f"resuming '{name}' after epoch {state['epoch'] + 1}/{stored.epochs} with its saved options")
    return replace(stored, resume=True, force=True, workers=options.workers), state


def check_resume_matches(given: TrainOptions, stored: TrainOptions, name: str) -> None:
    """MismatchError when `--resume` is given another method, or a setting (one that differs from the
    method's default, so it was asked for) that differs from the interrupted run's."""
    if given.method != stored.method:
        raise MismatchError(f"the interrupted run of '{name}' trains method '{stored.method}', not "
                            f"'{given.method}'", hint=f"resume it with: defendr train {stored.method} --name {name} "
                                                      f"--resume, or start afresh with --force")
    defaults = with_method_options(TrainOptions(method=given.method)).to_dict()
    now, then = given.to_dict(), stored.to_dict()
    conflicts = [f"{'--' + key.replace('_', '-')} {now[key]} (the run has {then.get(key)})" for key in now
                 if key not in RESUME_FREE and now[key] != defaults.get(key) and now[key] != then.get(key)]
    if conflicts:
        raise MismatchError(f"--resume continues the interrupted run of '{name}' with its own settings, but you gave "
                            f"{'; '.join(conflicts)}", hint="drop those options, or start afresh with --force")


def train(options: TrainOptions, context: TrainContext) -> TrainResult:
    """Run (or resume) one training run and write models/<name>.pt; see the module docstring."""
    started = time.perf_counter()
    options, state = _prepare_options(options, context)
    runtime, reporter, name, dist = context.runtime, context.reporter, options.model_name, context.dist
    final_path = context.workspace.path_for("model", name)
    resume_file, best_file = resume_path(context.workspace, name), best_path(context.workspace, name)
    seed_everything(options.seed)
    spec = get_recipe(options.method)
    recipe = spec.factory(options, context)
    try:
        module = recipe.module
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise InputError(f"method '{options.method}' left no trainable parameters")
        if len(recipe.train_batches) == 0:
            raise InputError(f"the train split of {context.data_path.name} is empty")
        optimizer = make_optimizer(options, params)
        scheduler = make_scheduler(options, optimizer)
        scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.needs_grad_scaler)
        history: list[EpochRecord] = []
        best: EpochRecord | None = None
        start_epoch = 0
        checkpoint: Checkpoint | None = None
        if state is not None:
            module.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history = [EpochRecord.from_dict(record) for record in state["history"]]
            best, start_epoch = EpochRecord.from_dict(state["best"]), int(state["epoch"]) + 1
        forward = _data_parallel(module, dist)
        for epoch in range(start_epoch, options.epochs):
            epoch_started = time.perf_counter()
            torch.manual_seed(epoch_seed(options.seed, epoch) + dist.rank)  # rank 0: the single-process stream
            lr = optimizer.param_groups[0]["lr"]
            train_metrics = _train_epoch(recipe, forward, options, runtime, optimizer, scaler, reporter, epoch,
                                         has_checkpoint=resume_file.exists(), resume_file=resume_file,
                                         dist=dist)
            _sync_buffers(module, dist)
            val_metrics = _validate(recipe, runtime, dist)
            scheduler.step()
            record = EpochRecord(epoch + 1, lr, **train_metrics, **val_metrics,
                                 seconds=round(time.perf_counter() - epoch_started, 3))
            history.append(record)
            reporter.note(_epoch_line(record, options.epochs))
            if record.beats(best):
                best = record
                if dist.is_main:
                    checkpoint = _checkpoint(recipe, spec, options, context, cpu_state_dict(module), history, best)
                    save_checkpoint(best_file, checkpoint, force=True)
            if not dist.is_main:
                continue
            save_resume_state(resume_file, {
                "options": options.to_dict(), "epoch": epoch, "state_dict": cpu_state_dict(module),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "history": [r.to_dict() for r in history], "best": best.to_dict(),
                "data_fingerprint": str(context.data_info.fingerprint),
            })
            interrupt_for_test(epoch + 1)
        if not dist.is_main:
            barrier(dist)  # rank 0 writes the final files
            return TrainResult(name, final_path, None, history, best, start_epoch, time.perf_counter() - started)
        checkpoint = _complete_checkpoint(checkpoint, history, best_file)
        save_checkpoint(final_path, checkpoint, force=True)  # the one write of models/<name>.pt
        best_file.unlink(missing_ok=True)
        resume_file.unlink(missing_ok=True)
        barrier(dist)
        return TrainResult(name, final_path, checkpoint, history, best, start_epoch, time.perf_counter() - started)
    finally:
        recipe.close()


def _data_parallel(module: torch.nn.Module, dist: DistContext) -> torch.nn.Module:
    """What the recipe's loss forward calls: `module`, or in a data-parallel run
    DistributedDataParallel(module) (rank 0's weights and buffers are broadcast to all ranks at wrapping)."""
    if not dist.is_distributed:
        return module
    device_ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def _sync_buffers(module: torch.nn.Module, dist: DistContext) -> None:
    """Take rank 0's buffers (BatchNorm running statistics), which its checkpoint will hold."""
    if dist.is_distributed:
        with torch.no_grad():
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer.data, src=0)


def _train_epoch(recipe: Recipe, forward: torch.nn.Module, options: TrainOptions, runtime: Runtime,
                 optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, reporter: Reporter, epoch: int, *,
                 has_checkpoint: bool, resume_file: Path, dist: DistContext) -> dict[str, float]:
    module = recipe.module
    module.train()
    loss_sum, correct, seen, scored = 0.0, 0, 0, 0
    with reporter.task(f"train {options.model_name} {epoch + 1}/{options.epochs}",
                       total=len(recipe.train_batches)) as task:
        for step, batch in enumerate(recipe.train_batches.epoch(options.seed, epoch)):
            batch = _to_device(batch, runtime)
            with runtime.autocast():
                out = recipe.batch_loss(batch, forward)
            loss_value = float(out.loss.detach())
            if dist.is_distributed:  # every rank must see a divergence, or the others would hang
                loss_total, count_total = all_reduce_sum([loss_value * len(batch), len(batch)], dist)
                loss_value = loss_total / count_total
            if not math.isfinite(loss_value):
                kept = f"the last good state is kept in {resume_file}" if has_checkpoint \
                    else "no checkpoint had been written yet"
                raise TrainingDivergedError(
                    f"training '{options.model_name}' diverged: loss became {loss_value} at epoch {epoch + 1}, "
                    f"step {step + 1}; {kept}", hint="lower --lr, or use --precision fp32")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out.loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = len(batch)
            loss_sum, seen = loss_sum + loss_value * n, seen + n
            if out.logits is None:
                task.advance(1, loss=loss_sum / seen)
                continue
            correct += int((out.logits.detach().argmax(1) == out.labels).sum())
            scored += int(out.labels.shape[0])
            task.advance(1, loss=loss_sum / seen, acc=correct / scored)
    loss_sum, seen, correct, scored = all_reduce_sum([loss_sum, seen, correct, scored], dist)
    metrics = {"train_loss": loss_sum / max(seen, 1)}
    if scored:
        metrics["train_acc"] = correct / scored
    return metrics


@torch.no_grad()
def _validate(recipe: Recipe, runtime: Runtime, dist: DistContext) -> dict[str, float]:
    recipe.module.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for batch in recipe.validation_batches():
        batch = _to_device(batch, runtime)
        with runtime.autocast():
            logits, labels = recipe.validation_logits(batch)
        loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        seen += int(labels.shape[0])
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], dist)
    if seen == 0:
        return {}
    return {"val_loss": loss_sum / seen, "val_acc": correct / seen}


def _complete_checkpoint(checkpoint: Checkpoint | None, history: list[EpochRecord], best_file: Path) -> Checkpoint:
    """The best epoch's checkpoint with the full history, marked complete.

    When the best epoch was earlier (or in an earlier session) its weights are in the side file:
    the in-memory checkpoint's tensors may alias the module's, which kept training.
    """
    stored = [r.to_dict() for r in history]
    if checkpoint is None or checkpoint.history != stored:
        checkpoint = read_checkpoint(best_file)
    return replace(checkpoint, history=stored, complete=True)


def _epoch_line(record: EpochRecord, epochs: int) -> str:
    line = f"epoch {record.epoch}/{epochs}: loss {record.train_loss:.4f}"
    if record.train_acc is not None:
        line += f" acc {record.train_acc:.1%}"
    if record.val_acc is not None:
        line += f", val loss {record.val_loss:.4f} acc {record.val_acc:.1%}"
    return line + f", lr {record.lr:.3g}, {record.seconds:.1f}s"


def _checkpoint(recipe: Recipe, spec: RecipeSpec, options: TrainOptions, context: TrainContext,
                state_dict: dict[str, torch.Tensor], history: list[EpochRecord], best: EpochRecord) -> Checkpoint:
    """The best epoch's checkpoint, marked incomplete (the side file; _complete_checkpoint finishes it)."""
    info = context.data_info
    return Checkpoint(
        kind=spec.kind, name=options.model_name, summary=recipe.summary(best), method=options.method,
        config=recipe.checkpoint_config(), state_dict=state_dict,
        data=DataRecord(Path(context.data_path).stem, str(info.fingerprint), tuple(info.class_ids),
                        tuple(info.class_names), int(info.image_size)),
        hparams=options.to_dict(), history=[r.to_dict() for r in history], best=best.to_dict(), complete=False,
        provenance=Provenance(seed=options.seed, software_version=__version__,
                              created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              parents=tuple(Reference.from_dict(p) for p in recipe.parents())),
    )
