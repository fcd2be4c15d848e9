"""The `attack` stage: attack a clean split with a saved model and write adversarial sets
(per-batch work in batches.py).

One set per (attack, eps, split), aligned with the clean split (see core/io/adversarial.py).
Every eps of one split is attacked in the same pass over the data (FGSM computes one gradient
for all of them). Randomness (random starts, random targets) comes from a generator seeded by
(seed, split, batch index, row offset), so a resumed run writes exactly what an uninterrupted
one writes. Predictions, success and accuracies describe the images as stored (float16 or
uint8), not the unrounded ones. Nothing here prints: progress goes to the Reporter.

Under torchrun (a DistContext with world size > 1) each rank attacks a contiguous shard of whole
batches into shard files and rank 0 assembles the sets (core/attacks/shards.py); the sets are
the same data as a single process writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defendr_cli import __version__
from defendr_cli.core.atomic import check_writable
from defendr_cli.core.attacks.base import normalize_target_mode
from defendr_cli.core.attacks.batches import SplitAttacker, attack_batch
from defendr_cli.core.attacks.eps import EPS_SPACES, EpsValue, eps_in_pixels
from defendr_cli.core.attacks.losses import LOSSES
from defendr_cli.core.attacks.pgd import default_iterative_step_size, default_pgd_step_size
from defendr_cli.core.attacks.registry import canonical_attack_name
from defendr_cli.core.io.adversarial import (
    STORAGE_DTYPES,
    AdvSetWriter,
    partial_adv_path,
    read_kept_adv_info,
)
from defendr_cli.core.io.cache import SPLITS
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace, adv_set_name

ITERATIVE = ("bim", "pgd", "mifgsm")
DEFAULT_STEPS = 10


@dataclass
class AttackStageConfig:
    """Everything `defendr attack` needs. eps values and step_size are in `eps_space` units."""

    attack: str
    eps: list[EpsValue]
    eps_space: str = "pixel"
    steps: int | None = None
    step_size: float | None = None
    random_start: bool | None = None
    restarts: int | None = None
    label_mode: str = "true"
    targeted: str = "none"
    loss: str = "ce"
    model: str = "baseline"
    data: str | None = None
    splits: list[str] = field(default_factory=lambda: ["test"])
    batch_size: int = 64
    dtype: str = "float16"
    resume: bool = False
    force: bool = False
    seed: int = 0
    preview: bool = True


@dataclass
class AttackSetResult:
    """One written (or already present) set. Accuracies and success rate are fractions in [0, 1]."""

    name: str
    path: Path
    split: str
    eps_label: str
    eps: float | list[float]
    count: int
    clean_accuracy: float
    adv_accuracy: float
    success_rate: float
    status: str  # 'written', 'resumed' or 'kept' (already complete, --resume)
    preview: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "split": self.split, "eps_label": self.eps_label,
                "eps": self.eps, "count": self.count, "clean_accuracy": self.clean_accuracy,
                "adv_accuracy": self.adv_accuracy, "success_rate": self.success_rate, "status": self.status,
                "preview": str(self.preview) if self.preview else None}


def validate_config(config: AttackStageConfig) -> AttackStageConfig:
    """Canonical attack name, defaults filled in, options an attack does not take rejected."""
    attack = canonical_attack_name(config.attack)
    if not config.eps:
        raise InputError("give at least one eps with --eps")
    if config.eps_space not in EPS_SPACES:
        raise InputError(f"unknown eps space '{config.eps_space}': use pixel or normalized")
    if config.label_mode not in ("true", "predicted"):
        raise InputError(f"unknown label mode '{config.label_mode}': use true or predicted")
    targeted = normalize_target_mode(config.targeted)
    if targeted == "given":
        raise InputError("the attack stage takes --targeted none, random or least-likely")
    if config.loss not in LOSSES:
        raise InputError(f"unknown loss '{config.loss}': use one of {', '.join(LOSSES)}")
    if config.dtype not in STORAGE_DTYPES:
        raise InputError(f"unknown --dtype '{config.dtype}': use float16 or uint8")
    if config.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    splits = list(dict.fromkeys(config.splits))
    for split in splits:
        if split not in SPLITS:
            raise InputError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
    steps, restarts, random_start = config.steps, config.restarts, config.random_start
    if attack == "fgsm":
        given = [flag for flag, value in (("--steps", steps), ("--step-size", config.step_size),
                                          ("--random-start", random_start), ("--restarts", restarts))
                 if value is not None]
        if given:
            raise InputError(f"fgsm is a single step: it does not take {', '.join(given)}")
    else:
        steps = DEFAULT_STEPS if steps is None else steps
        if steps < 1:
            raise InputError("--steps must be at least 1")
        if attack != "pgd" and (random_start or (restarts or 1) > 1):
            raise InputError(f"{attack} starts at the clean image: --random-start and --restarts are for pgd")
        if attack == "pgd":
            random_start = True if random_start is None else random_start
            restarts = 1 if restarts is None else restarts
            if restarts < 1:
                raise InputError("--restarts must be at least 1")
    if config.step_size is not None and not config.step_size > 0:
        raise InputError("--step-size must be > 0")
    return AttackStageConfig(
        attack=attack, eps=list(config.eps), eps_space=config.eps_space, steps=steps,
        step_size=config.step_size, random_start=random_start, restarts=restarts,
        label_mode=config.label_mode, targeted=targeted, loss=config.loss, model=config.model,
        data=config.data, splits=splits, batch_size=config.batch_size, dtype=config.dtype,
        resume=config.resume, force=config.force, seed=config.seed, preview=config.preview)


def set_name(config: AttackStageConfig, eps: EpsValue, model_name: str, split: str) -> str:
    """Set name from core.workspace.adv_set_name; non-default options add short suffixes."""
    extra = ""
    if config.attack == "pgd" and config.random_start is False:
        extra += "-norand"
    if (config.restarts or 1) > 1:
        extra += f"-r{config.restarts}"
    if config.targeted != "none":
        extra += "-tll" if config.targeted == "least-likely" else "-trand"
    if config.label_mode == "predicted":
        extra += "-pred"
    if config.loss != "ce":
        extra += f"-{config.loss}"
    steps = config.steps if config.attack in ITERATIVE else None
    return adv_set_name(config.attack, eps.label, model_name, split, steps=steps,
                        eps_space=config.eps_space, extra=extra)


def _as_attr(value: float | torch.Tensor) -> float | list[float]:
    return value.tolist() if isinstance(value, torch.Tensor) else float(value)


@dataclass
class _Stage:
    """What every split of one run shares (made once by run_attack_stage)."""

    workspace: Workspace
    config: AttackStageConfig
    runtime: Runtime
    reporter: Reporter
    cache_path: Path
    cache_info: Any
    model_name: str
    model_fingerprint: str
    attacker: SplitAttacker
    chunk: list[int]  # current chunk size, shared so an OOM halving sticks


def run_attack_stage(workspace: Workspace, config: AttackStageConfig, runtime: Runtime, *,
                     reporter: Reporter | None = None, dist: DistContext = SINGLE) -> list[AttackSetResult]:
    """Attack every requested split for every eps; return one AttackSetResult per set.

    Raises MissingArtefactError (with the command that makes it) for a missing cache or model,
    ArtefactExistsError for an existing set without --force (with --resume a complete set is
    kept; MismatchError when it was made with other settings), MismatchError when the model does
    not fit the cache. On an exception (Ctrl-C too)
    the partial files stay for --resume. In a data-parallel run (`dist`) only rank 0 returns the
    results (after assembling the sets); the other ranks return [].
    """
    from defendr_cli.core.models.loading import check_checkpoint_against_cache, load_model

    config = validate_config(config)
    cache_path = workspace.resolve("data", config.data) if config.data else workspace.default_data()
    cache_info = read_cache_info(cache_path)
    loaded = load_model(workspace, config.model, device=runtime.device)
    check_checkpoint_against_cache(loaded.payload, cache_info)
    model = runtime.prepare_model(loaded.module).eval()
    eps_pixels = [eps_in_pixels(eps.value, config.eps_space) for eps in config.eps]
    step_sizes = [None if config.step_size is None else eps_in_pixels(config.step_size, config.eps_space)
                  for _ in config.eps]
    stage = _Stage(workspace, config, runtime, reporter or NullReporter(), cache_path, cache_info,
                   loaded.path.stem, loaded.fingerprint, SplitAttacker(config, model, runtime, eps_pixels, step_sizes),
                   [config.batch_size])
    if dist.is_distributed:
        from defendr_cli.core.attacks.shards import run_sharded

        return run_sharded(stage, dist)
    results: list[AttackSetResult] = []
    for split in config.splits:
        results += _attack_split(stage, split)
    return results


def _attack_split(stage: _Stage, split: str) -> list[AttackSetResult]:
    """All eps sets of one split: kept (--resume and complete), resumed or written from scratch."""
    from defendr_cli.core.attacks.preview import write_preview

    config = stage.config
    names = [set_name(config, eps, stage.model_name, split) for eps in config.eps]
    finals = [stage.workspace.path_for("adv", name) for name in names]
    keep = [config.resume and not config.force and path.exists() for path in finals]
    results = [_kept_result(stage, k, finals[k], names[k], split) for k in range(len(finals)) if keep[k]]
    if all(keep):
        return results
    for k, path in enumerate(finals):
        if not keep[k]:
            check_writable(path, force=config.force)
    with SplitReader(stage.cache_path, split) as reader:
        writers: list[AdvSetWriter | None] = []
        try:
            for k, eps in enumerate(config.eps):
                writers.append(None if keep[k] else _open_writer(stage, reader, eps, k, names[k], finals[k], split))
            _attack_rows(stage, reader, split, writers)
            for k, writer in enumerate(writers):
                if writer is None:
                    continue
                result = _finish(writer, config, names[k], split, config.eps[k], stage.model_name,
                                 status="resumed" if writer.resumed_from else "written")
                if config.preview:
                    result.preview = write_preview(result.path, reader, stage.cache_info.class_names)
                results.append(result)
        finally:
            for writer in writers:
                if writer is not None:
                    writer.close()
    return results


def _open_writer(stage: _Stage, reader: SplitReader, eps: EpsValue, k: int, name: str, final: Path,
                 split: str) -> AdvSetWriter:
    config = stage.config
    params = _stage_params(stage, eps, k, name, split)
    had_partial = partial_adv_path(final).exists()
    writer = AdvSetWriter(final, count=len(reader), image_shape=reader.image_shape, dtype=config.dtype,
                          params=params, resume=config.resume, force=config.force)
    if config.resume and had_partial and writer.done == 0:
        stage.reporter.note(f"{name}: the unfinished file was made with other settings; starting over")
    return writer


def _attack_rows(stage: _Stage, reader: SplitReader, split: str, writers: list[AdvSetWriter | None], *,
                 first_row: int = 0, stop_row: int | None = None) -> None:
    """Attack batch after batch from the first row some writer still lacks; write each result.

    The writers hold rows [first_row, stop_row) of the split (a shard; first_row is a multiple of
    the batch size), their row 0 being split row `first_row`.
    """
    config = stage.config
    batch_size = config.batch_size
    stop_row = len(reader) if stop_row is None else stop_row
    start_row = first_row + min(w.done for w in writers if w is not None)
    first_batch = start_row // batch_size
    if start_row > first_row:
        stage.reporter.note(f"{split}: resuming at row {start_row} of {len(reader)}")
    with stage.reporter.task(f"{config.attack} {split}", total=stop_row - first_row) as task:
        task.advance(first_batch * batch_size - first_row)
        for batch_index in range(first_batch, -(-stop_row // batch_size)):
            rows = np.arange(batch_index * batch_size, min(stop_row, (batch_index + 1) * batch_size))
            start = int(rows[0])
            active = [w is not None and w.done == start - first_row for w in writers]
            images, labels = reader.read(rows), torch.from_numpy(reader.labels[rows])
            clean_pred, outs = attack_batch(stage.attacker, images, labels, seed=config.seed, split=split,
                                            batch_index=batch_index, active=active, chunk=stage.chunk,
                                            reporter=stage.reporter)
            for writer, out in zip(writers, outs):
                if out is not None:
                    writer.write(start - first_row, out["adv"], labels=labels, clean_indices=torch.from_numpy(rows),
                                 success=out["success"], clean_pred=clean_pred, adv_pred=out["adv_pred"],
                                 targets=out["targets"])
            task.advance(len(rows))


def _set_params(config: AttackStageConfig, eps: EpsValue, eps_pixel, step_size, name: str, split: str,
                model_name: str, model_fingerprint: str, cache_info, precision: str) -> dict[str, Any]:
    """Attributes that determine a set's content (a partial file resumes only when they match)."""
    return {
        "name": name, "attack": config.attack, "eps": _as_attr(eps_pixel), "eps_label": eps.label,
        "eps_space": config.eps_space, "eps_given": eps.value, "steps": config.steps,
        "step_size": _recorded_step_size(config, eps_pixel, step_size),
        "random_start": config.random_start, "restarts": config.restarts, "label_mode": config.label_mode,
        "targeted": config.targeted, "loss": config.loss, "seed": config.seed, "batch_size": config.batch_size,
        "precision": precision,
        "split": split, "source_model": model_name, "source_model_fingerprint": model_fingerprint,
        "clean_cache": cache_info.name, "clean_fingerprint": cache_info.fingerprint,
        "image_size": cache_info.image_size, "software_version": __version__,
    }


def _stage_params(stage: _Stage, eps: EpsValue, k: int, name: str, split: str) -> dict[str, Any]:
    """`_set_params` of the k-th eps of this run: the attributes its set records."""
    return _set_params(stage.config, eps, stage.attacker.eps_pixels[k], stage.attacker.step_sizes[k], name, split,
                       stage.model_name, stage.model_fingerprint, stage.cache_info, stage.runtime.precision)


def _recorded_step_size(config: AttackStageConfig, eps_pixel, step_size):
    """The step size used, in pixel units (the attacks' defaults when not given); None for fgsm."""
    if config.attack == "fgsm":
        return None
    if step_size is None:
        default = default_pgd_step_size if config.attack == "pgd" else default_iterative_step_size
        step_size = default(eps_pixel, config.steps)
    return _as_attr(step_size)


def _finish(writer: AdvSetWriter, config: AttackStageConfig, name: str, split: str, eps: EpsValue,
            model_name: str, *, status: str) -> AttackSetResult:
    labels, clean_pred = writer.column("labels"), writer.column("clean_pred")
    success_rate = _success_rate(config, labels, clean_pred, writer.column("success"))
    clean_acc = float((clean_pred == labels).mean()) if writer.count else 0.0
    adv_acc = float((writer.column("adv_pred") == labels).mean()) if writer.count else 0.0
    space = "normalized" if config.eps_space == "normalized" else "pixel"
    summary = (f"adversarial set: {config.attack} eps {eps.label} ({space})"
               + (f", {config.steps} steps" if config.attack in ITERATIVE else "")
               + f" from {model_name} on {split}, {writer.count} images {config.dtype}:"
               f" success {success_rate:.1%}, accuracy {clean_acc:.1%} -> {adv_acc:.1%}")
    path = writer.finish({"success_rate": success_rate, "clean_accuracy": clean_acc,
                          "adv_accuracy": adv_acc, "summary": summary})
    eps_value = writer.params["eps"]
    return AttackSetResult(name, path, split, eps.label, eps_value, writer.count, clean_acc, adv_acc,
                           success_rate, status)


def _success_rate(config: AttackStageConfig, labels: np.ndarray, clean_pred: np.ndarray,
                  success: np.ndarray) -> float:
    """Targeted: fraction of images classified as their target. Untargeted: fraction of the
    images the model got right (w.r.t. the attacked labels) that the attack made wrong."""
    if config.targeted != "none":
        return float(success.mean()) if success.size else 0.0
    attacked_right = clean_pred == labels if config.label_mode == "true" else np.ones_like(success)
    return float(success[attacked_right].mean()) if attacked_right.any() else 0.0


def _kept_result(stage: _Stage, k: int, path: Path, name: str, split: str) -> AttackSetResult:
    """The result of the complete set at `path` that --resume keeps (MismatchError when it was made
    with other settings than this run would record)."""
    eps = stage.config.eps[k]
    info = read_kept_adv_info(path, _stage_params(stage, eps, k, name, split), dtype=stage.config.dtype)
    return AttackSetResult(name, path, split, eps.label, info.eps, info.count, info.clean_accuracy or 0.0,
                           info.adv_accuracy or 0.0, info.success_rate, "kept")
