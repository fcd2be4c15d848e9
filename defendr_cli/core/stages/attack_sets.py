"""Writing the sets of one `attack` stage run: what every split shares (`AttackRun`), the plan of
one split (`SplitPlan`: names, kept sets), the writers, the batch loop over a range of rows, and
the results of finished or kept sets.

Used by core/stages/attack.py (the per-split function) and core/stages/attack_shards.py (the
shard files of a data-parallel run).
Predictions, success and accuracies describe the images as stored (float16 or uint8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defendr_cli.core.attacks.eps import EpsValue
from defendr_cli.core.io.adversarial import AdvSetWriter, partial_adv_path, read_kept_adv_info
from defendr_cli.core.io.reader import CacheInfo, SplitReader
from defendr_cli.core.progress import Reporter, saved_for_test
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack_batches import SplitAttacker, attack_batch
from defendr_cli.core.stages.attack_config import AttackSetResult, AttackStageConfig, set_attributes, set_name
from defendr_cli.core.workspace import Workspace


@dataclass
class AttackRun:
    """What every split of one run shares (made once by run_attack)."""

    workspace: Workspace
    config: AttackStageConfig
    runtime: Runtime
    reporter: Reporter
    cache_path: Path
    cache_info: CacheInfo
    model_name: str
    model_fingerprint: str
    attacker: SplitAttacker
    chunk: list[int]  # current chunk size, shared so an OOM halving sticks


@dataclass
class SplitPlan:
    """The sets of one split, per eps: name, final path and whether --resume keeps it (complete,
    same settings); `kept` holds the results of the kept sets."""

    split: str
    names: list[str]
    finals: list[Path]
    keep: list[bool]
    kept: list[AttackSetResult]


def plan_split(run: AttackRun, split: str) -> SplitPlan:
    """Name every set of `split` and find those --resume keeps (MismatchError for a complete set
    made with other settings)."""
    config = run.config
    names = [set_name(config, eps, run.model_name, split) for eps in config.eps]
    finals = [run.workspace.path_for("adv", name) for name in names]
    keep = [config.resume and not config.force and path.exists() for path in finals]
    kept = [kept_result(run, k, finals[k], names[k], split) for k in range(len(finals)) if keep[k]]
    return SplitPlan(split, names, finals, keep, kept)


def run_attributes(run: AttackRun, eps: EpsValue, k: int, name: str, split: str) -> dict[str, Any]:
    """`set_attributes` of the k-th eps of this run: the attributes its set records."""
    return set_attributes(run.config, eps, run.attacker.eps_pixels[k], run.attacker.step_sizes[k], name, split,
                          run.model_name, run.model_fingerprint, run.cache_info, run.runtime.precision)


def open_writer(run: AttackRun, reader: SplitReader, eps: EpsValue, k: int, name: str, final: Path,
                split: str) -> AdvSetWriter:
    """The writer of the whole set at `final` (continuing a matching partial file with --resume)."""
    config = run.config
    params = run_attributes(run, eps, k, name, split)
    had_partial = partial_adv_path(final).exists()
    writer = AdvSetWriter(final, count=len(reader), image_shape=reader.image_shape, dtype=config.dtype,
                          params=params, resume=config.resume, force=config.force)
    if config.resume and had_partial and writer.done == 0:
        run.reporter.note(f"{name}: the unfinished file was made with other settings; starting over")
    return writer


def attack_rows(run: AttackRun, reader: SplitReader, split: str, writers: list[AdvSetWriter | None], *,
                first_row: int = 0, stop_row: int | None = None) -> None:
    """Attack batch after batch from the first row some writer still lacks; write each result.

    The writers hold rows [first_row, stop_row) of the split (a shard; first_row is a multiple of
    the batch size), their row 0 being split row `first_row`.
    """
    config = run.config
    batch_size = config.batch_size
    stop_row = len(reader) if stop_row is None else stop_row
    start_row = first_row + min(w.done for w in writers if w is not None)
    first_batch = start_row // batch_size
    if start_row > first_row:
        run.reporter.note(f"{split}: resuming at row {start_row} of {len(reader)}")
    with run.reporter.task(f"{config.attack} {split}", total=stop_row - first_row) as task:
        task.advance(first_batch * batch_size - first_row)
        for batch_index in range(first_batch, -(-stop_row // batch_size)):
            rows = np.arange(batch_index * batch_size, min(stop_row, (batch_index + 1) * batch_size))
            start = int(rows[0])
            active = [w is not None and w.done == start - first_row for w in writers]
            images, labels = reader.read(rows), torch.from_numpy(reader.labels[rows])
            batch = attack_batch(run.attacker, images, labels, seed=config.seed, split=split,
                                 batch_index=batch_index, active=active, chunk=run.chunk, reporter=run.reporter)
            for writer, result in zip(writers, batch.results):
                if result is not None:
                    writer.write(start - first_row, result.adv, labels=labels, clean_indices=torch.from_numpy(rows),
                                 success=result.success, clean_pred=batch.clean_pred, adv_pred=result.adv_pred,
                                 targets=result.targets)
            task.advance(len(rows))
            saved_for_test()


def finish_set(writer: AdvSetWriter, config: AttackStageConfig, name: str, split: str, eps: EpsValue,
               model_name: str, *, status: str) -> AttackSetResult:
    """Record the summary attributes, move the complete file into place, return its result."""
    labels, clean_pred = writer.column("labels"), writer.column("clean_pred")
    success_rate = _success_rate(config, labels, clean_pred, writer.column("success"))
    clean_acc = float((clean_pred == labels).mean()) if writer.count else 0.0
    adv_acc = float((writer.column("adv_pred") == labels).mean()) if writer.count else 0.0
    space = "normalized" if config.eps_space == "normalized" else "pixel"
    summary = (f"adversarial set: {config.attack} eps {eps.label} ({space})"
               + (f", {config.steps} steps" if config.attack_spec.iterative else "")
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


def kept_result(run: AttackRun, k: int, path: Path, name: str, split: str) -> AttackSetResult:
    """The result of the complete set at `path` that --resume keeps (MismatchError when it was made
    with other settings than this run would record)."""
    eps = run.config.eps[k]
    info = read_kept_adv_info(path, run_attributes(run, eps, k, name, split), dtype=run.config.dtype)
    return AttackSetResult(name, path, split, eps.label, info.eps, info.count, info.clean_accuracy or 0.0,
                           info.adv_accuracy or 0.0, info.success_rate, "kept")
