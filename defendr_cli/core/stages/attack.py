"""The `attack` stage: attack a clean split with a saved model and write adversarial sets.

One set per (attack, eps, split), aligned with the clean split (see core/io/adversarial.py).
Every eps of one split is attacked in the same pass over the data (an attack with `multi_eps`,
such as FGSM, computes one gradient for all of them). Randomness (random starts, random targets)
comes from a generator seeded by (seed, split, batch index, row offset), so a resumed run writes
exactly what an uninterrupted one writes. Predictions, success and accuracies describe the images
as stored (float16 or uint8), not the unrounded ones. Nothing here prints: progress goes to the
Reporter. What an attack takes and how its sets are named comes from its `AttackSpec`.

Modules: attack_config.py (config, validation, names, attributes), attack_batches.py (one
batch), attack_sets.py (the split plan, writers and the batch loop), attack_shards.py (the shard
files of a data-parallel run), attack_preview.py (the preview PNG).

One function attacks a split, `attack_split`, whatever the number of processes: each process
attacks its contiguous shard of whole batches (`shard_range`; one process is world size 1 and
its shard is every row). One process writes the final sets directly; under torchrun (a
DistContext with world size > 1) each rank writes shard files and rank 0 assembles the sets
(attack_shards.py), the same data as one process writes.
"""

from __future__ import annotations

from defendr_cli.core.atomic import check_writable
from defendr_cli.core.attacks.eps import eps_in_pixels
from defendr_cli.core.distributed import SINGLE, DistContext, barrier, shard_range
from defendr_cli.core.io.adversarial import AdvSetWriter
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.models.loading import check_checkpoint_against_cache, load_model
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack_batches import SplitAttacker
from defendr_cli.core.stages.attack_config import (
    AttackSetResult,
    AttackStageConfig,
    PlannedSet,
    parse_option_pairs,
    planned_sets,
    set_name,
    validate_config,
)
from defendr_cli.core.stages.attack_preview import write_preview
from defendr_cli.core.stages.attack_sets import (
    AttackRun,
    SplitPlan,
    attack_rows,
    finish_set,
    open_writer,
    plan_split,
)
from defendr_cli.core.stages.attack_shards import assemble_split, shard_writer
from defendr_cli.core.workspace import Workspace

__all__ = ["AttackSetResult", "AttackStageConfig", "PlannedSet", "attack_split", "parse_option_pairs",
           "planned_sets", "run_attack", "set_name", "validate_config"]


def run_attack(workspace: Workspace, config: AttackStageConfig, runtime: Runtime, *,
               reporter: Reporter | None = None, dist: DistContext = SINGLE) -> list[AttackSetResult]:
    """Attack every requested split for every eps; return one AttackSetResult per set.

    Raises InputError for options the attack does not take, MissingArtefactError (with the
    command that makes it) for a missing cache or model, ArtefactExistsError for an existing set
    without --force (with --resume a complete set is kept; MismatchError when it was made with
    other settings), MismatchError when the model does not fit the cache. On an exception
    (Ctrl-C too) the partial files stay for --resume. In a data-parallel run (`dist`) only rank 0
    returns the results (after assembling the sets); the other ranks return [].
    """
    config = validate_config(config)
    cache_path = workspace.resolve("data", config.data) if config.data else workspace.default_data()
    cache_info = read_cache_info(cache_path)
    loaded = load_model(workspace, config.model, device=runtime.device)
    check_checkpoint_against_cache(loaded.checkpoint, cache_info)
    model = runtime.prepare_model(loaded.module).eval()
    eps_pixels = [eps_in_pixels(eps.value, config.eps_space) for eps in config.eps]
    step_sizes = [None if config.step_size is None else eps_in_pixels(config.step_size, config.eps_space)
                  for _ in config.eps]
    run = AttackRun(workspace, config, runtime, reporter or NullReporter(), cache_path, cache_info,
                    loaded.path.stem, loaded.fingerprint, SplitAttacker(config, model, runtime, eps_pixels, step_sizes),
                    [config.batch_size])
    results: list[AttackSetResult] = []
    for split in config.splits:
        results += attack_split(run, split, dist)
    barrier(dist)  # the sets exist when the command returns on any rank
    return results


def attack_split(run: AttackRun, split: str, dist: DistContext = SINGLE) -> list[AttackSetResult]:
    """All eps sets of one split: kept (--resume and complete), resumed or written from scratch.

    This process attacks rows `shard_range(N, dist, align=batch_size)`. With one process they are
    all the rows and the writers are the sets themselves; in a data-parallel run they write this
    rank's shard files and rank 0 assembles the sets (every rank must call this, split by split).
    Only rank 0 returns the results.
    """
    config = run.config
    plan = plan_split(run, split)
    if all(plan.keep):
        return plan.kept if dist.is_main else []
    for k, path in enumerate(plan.finals):
        if not plan.keep[k]:
            check_writable(path, force=config.force)
    with SplitReader(run.cache_path, split) as reader:
        first, stop = shard_range(len(reader), dist, align=config.batch_size)
        writers: list[AdvSetWriter | None] = []
        try:
            for k, eps in enumerate(config.eps):
                writers.append(None if plan.keep[k] else _open_part(run, reader, plan, k, first, stop, dist))
            if stop > first:  # a rank whose shard is empty attacks nothing
                attack_rows(run, reader, split, writers, first_row=first, stop_row=stop)
            if not dist.is_distributed:
                return plan.kept + [_finish(run, reader, plan, k, writer) for k, writer in enumerate(writers)
                                    if writer is not None]
            resumed = [writer is not None and writer.resumed_from > 0 for writer in writers]
        finally:
            for writer in writers:
                if writer is not None:
                    writer.close()
    return assemble_split(run, plan, resumed, dist)


def _open_part(run: AttackRun, reader: SplitReader, plan: SplitPlan, k: int, first: int, stop: int,
               dist: DistContext) -> AdvSetWriter:
    """The writer of this process's rows of the k-th set: the set itself for one process, else
    this rank's shard file (both continue a matching partial file with --resume)."""
    eps, name, final = run.config.eps[k], plan.names[k], plan.finals[k]
    if not dist.is_distributed:
        return open_writer(run, reader, eps, k, name, final, plan.split)
    return shard_writer(run, reader, eps, k, name, final, plan.split, first, stop, dist)


def _finish(run: AttackRun, reader: SplitReader, plan: SplitPlan, k: int, writer: AdvSetWriter) -> AttackSetResult:
    """One process: move the complete k-th set into place, with its preview."""
    result = finish_set(writer, run.config, plan.names[k], plan.split, run.config.eps[k], run.model_name,
                        status="resumed" if writer.resumed_from else "written")
    if run.config.preview:
        result.preview = write_preview(result.path, reader, run.cache_info.class_names)
    return result
