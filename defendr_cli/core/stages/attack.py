"""The `attack` stage: attack a clean split with a saved model and write adversarial sets.

One set per (attack, eps, split), aligned with the clean split (see core/io/adversarial.py).
Every eps of one split is attacked in the same pass over the data (an attack with `multi_eps`,
such as FGSM, computes one gradient for all of them). Randomness (random starts, random targets)
comes from a generator seeded by (seed, split, batch index, row offset), so a resumed run writes
exactly what an uninterrupted one writes. Predictions, success and accuracies describe the images
as stored (float16 or uint8), not the unrounded ones. Nothing here prints: progress goes to the
Reporter. What an attack takes and how its sets are named comes from its `AttackSpec`.

Modules: attack_config.py (config, validation, names, attributes), attack_batches.py (one
batch), attack_sets.py (writers and the batch loop), attack_shards.py (data-parallel runs),
attack_preview.py (the preview PNG).

Under torchrun (a DistContext with world size > 1) each rank attacks a contiguous shard of whole
batches into shard files and rank 0 assembles the sets (attack_shards.py); the sets are the same
data as a single process writes.
"""

from __future__ import annotations

from defendr_cli.core.atomic import check_writable
from defendr_cli.core.attacks.eps import eps_in_pixels
from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.io.adversarial import AdvSetWriter
from defendr_cli.core.io.reader import SplitReader, read_cache_info
from defendr_cli.core.models.loading import check_checkpoint_against_cache, load_model
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack_batches import SplitAttacker
from defendr_cli.core.stages.attack_config import (
    AttackSetResult,
    AttackStageConfig,
    parse_option_pairs,
    set_name,
    validate_config,
)
from defendr_cli.core.stages.attack_preview import write_preview
from defendr_cli.core.stages.attack_sets import AttackRun, attack_rows, finish_set, kept_result, open_writer
from defendr_cli.core.stages.attack_shards import run_sharded
from defendr_cli.core.workspace import Workspace

__all__ = ["AttackSetResult", "AttackStageConfig", "parse_option_pairs", "run_attack", "set_name",
           "validate_config"]


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
    check_checkpoint_against_cache(loaded.payload, cache_info)
    model = runtime.prepare_model(loaded.module).eval()
    eps_pixels = [eps_in_pixels(eps.value, config.eps_space) for eps in config.eps]
    step_sizes = [None if config.step_size is None else eps_in_pixels(config.step_size, config.eps_space)
                  for _ in config.eps]
    run = AttackRun(workspace, config, runtime, reporter or NullReporter(), cache_path, cache_info,
                    loaded.path.stem, loaded.fingerprint, SplitAttacker(config, model, runtime, eps_pixels, step_sizes),
                    [config.batch_size])
    if dist.is_distributed:
        return run_sharded(run, dist)
    results: list[AttackSetResult] = []
    for split in config.splits:
        results += _attack_split(run, split)
    return results


def _attack_split(run: AttackRun, split: str) -> list[AttackSetResult]:
    """All eps sets of one split: kept (--resume and complete), resumed or written from scratch."""
    config = run.config
    names = [set_name(config, eps, run.model_name, split) for eps in config.eps]
    finals = [run.workspace.path_for("adv", name) for name in names]
    keep = [config.resume and not config.force and path.exists() for path in finals]
    results = [kept_result(run, k, finals[k], names[k], split) for k in range(len(finals)) if keep[k]]
    if all(keep):
        return results
    for k, path in enumerate(finals):
        if not keep[k]:
            check_writable(path, force=config.force)
    with SplitReader(run.cache_path, split) as reader:
        writers: list[AdvSetWriter | None] = []
        try:
            for k, eps in enumerate(config.eps):
                writers.append(None if keep[k] else open_writer(run, reader, eps, k, names[k], finals[k], split))
            attack_rows(run, reader, split, writers)
            for k, writer in enumerate(writers):
                if writer is None:
                    continue
                result = finish_set(writer, config, names[k], split, config.eps[k], run.model_name,
                                    status="resumed" if writer.resumed_from else "written")
                if config.preview:
                    result.preview = write_preview(result.path, reader, run.cache_info.class_names)
                results.append(result)
        finally:
            for writer in writers:
                if writer is not None:
                    writer.close()
    return results
