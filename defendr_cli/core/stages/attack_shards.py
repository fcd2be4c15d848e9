"""The shard files of a data-parallel `attack` run: every rank attacks a shard, rank 0 assembles the sets.

Rank r of W attacks the contiguous rows `shard_range(N, dist, align=batch_size)` of a split: whole
batches, so every batch has the same index, rows and random stream (batch_generator(seed, split,
batch index, offset)) as in a single-process run, and its results are the same. Each rank writes
one shard file per set, `adv/.<set>.shard-<r>-of-<W>.h5.partial` (an AdvSetWriter partial file
whose parameters include the shard's rows), so `--resume` continues every shard where it
stopped; shards of another world size are not reused. After all shards of a split are
written (a barrier), rank 0 copies them in order into the final set with the same writer and
computes the success rate and accuracies over all rows: the file holds the same data and
attributes as a single-process run's. The shard files are then deleted. The per-split function that
calls this is `attack_split` (core/stages/attack.py); all ranks return together (the other ranks
wait at a barrier; see DEFENDR_DIST_TIMEOUT_MIN in core.distributed for very large sets).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.attacks.eps import EpsValue
from defendr_cli.core.io.adv_fingerprint import seal_path
from defendr_cli.core.distributed import DistContext, all_gather_objects, barrier, shard_range
from defendr_cli.core.errors import CorruptArtefactError
from defendr_cli.core.io.adversarial import AdvSetWriter, from_storage, partial_adv_path
from defendr_cli.core.io.h5 import open_h5
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.stages.attack_config import AttackSetResult
from defendr_cli.core.stages.attack_preview import write_preview
from defendr_cli.core.stages.attack_sets import AttackRun, SplitPlan, finish_set, run_attributes

_COLUMNS = ("labels", "clean_indices", "success", "clean_pred", "adv_pred", "targets")


def _shard_final(final: Path, rank: int, world_size: int) -> Path:
    final = Path(final)
    return final.with_name(f"{final.stem}.shard-{rank:03d}-of-{world_size:03d}{final.suffix}")


def shard_file(final: Path, rank: int, world_size: int) -> Path:
    """The partial file (hidden, never renamed into place) holding rank `rank`'s rows of the set at `final`."""
    return partial_adv_path(_shard_final(final, rank, world_size))


def shard_writer(run: AttackRun, reader: SplitReader, eps: EpsValue, k: int, name: str, final: Path, split: str,
                 first: int, stop: int, dist: DistContext) -> AdvSetWriter:
    """The writer of this rank's shard: the set's parameters plus the shard's rows (resumable)."""
    params = {**run_attributes(run, eps, k, name, split), "shard_rows": [first, stop], "world_size": dist.world_size}
    return AdvSetWriter(_shard_final(final, dist.rank, dist.world_size), count=stop - first,
                        image_shape=reader.image_shape, dtype=run.config.dtype, params=params,
                        resume=run.config.resume, force=True)


def assemble_split(run: AttackRun, plan: SplitPlan, resumed: list[bool], dist: DistContext) -> list[AttackSetResult]:
    """After every rank wrote its shards of `plan.split` (`resumed`: per eps, this rank continued
    an interrupted shard): rank 0 assembles the sets and returns their results, the others []."""
    resumed = [any(flags) for flags in zip(*all_gather_objects(resumed, dist))]
    barrier(dist)  # every shard of this split is written
    return _assemble(run, plan, resumed, dist) if dist.is_main else []


def _assemble(run: AttackRun, plan: SplitPlan, resumed: list[bool], dist: DistContext) -> list[AttackSetResult]:
    """Rank 0: the final set of every eps from the shards, in row order, then the results."""
    config = run.config
    results = list(plan.kept)
    with SplitReader(run.cache_path, plan.split) as reader:
        count = len(reader)
        for k, eps in enumerate(config.eps):
            if plan.keep[k]:
                continue
            shards = [shard_file(plan.finals[k], r, dist.world_size) for r in range(dist.world_size)]
            final_writer = _open_final_writer(run, reader, eps, k, plan)
            try:
                for rank, path in enumerate(shards):
                    copy_shard(path, final_writer, expected=shard_range(count, replace(dist, rank=rank),
                                                                          align=config.batch_size))
                result = finish_set(final_writer, config, plan.names[k], plan.split, eps, run.model_name,
                                    status="resumed" if resumed[k] else "written")
            finally:
                final_writer.close()
            for path in shards:
                path.unlink(missing_ok=True)
                seal_path(path).unlink(missing_ok=True)
            if config.preview:
                result.preview = write_preview(result.path, reader, run.cache_info.class_names)
            results.append(result)
    return results


def _open_final_writer(run: AttackRun, reader: SplitReader, eps: EpsValue, k: int, plan: SplitPlan) -> AdvSetWriter:
    """A fresh writer of the whole set with exactly the single-process parameters."""
    return AdvSetWriter(plan.finals[k], count=len(reader), image_shape=reader.image_shape, dtype=run.config.dtype,
                        params=run_attributes(run, eps, k, plan.names[k], plan.split), resume=False,
                        force=run.config.force)


def copy_shard(path: Path, writer: AdvSetWriter, *, expected: tuple[int, int], chunk_rows: int = 256) -> None:
    """Append the rows of one complete shard file to `writer` (stored values copied exactly)."""
    first, stop = expected
    if not path.exists():
        raise CorruptArtefactError(f"shard file {path} is missing: a rank did not finish",
                                   hint="run the same command again with --resume")
    with open_h5(path, what="shard file", hint="run the same command again with --resume") as handle:
        try:
            done = int(handle.attrs.get("done", -1))
        except (TypeError, ValueError):
            done = -1
        missing = [key for key in ("images", *_COLUMNS) if key not in handle]
        if done < 0 or missing:
            what = f"lacks {', '.join(missing)}" if missing else "has no valid 'done' attribute"
            raise CorruptArtefactError(f"shard file {path} is damaged: it {what}",
                                       hint="run the same command again with --resume")
        rows = list(np.asarray(handle.attrs.get("shard_rows", [-1, -1])))
        if done != stop - first or rows != [first, stop] or writer.done != first:
            raise CorruptArtefactError(f"shard file {path} holds {done} rows {rows}, expected rows [{first}, {stop})",
                                       hint="run the same command again with --resume")
        for at in range(0, done, chunk_rows):
            end = min(done, at + chunk_rows)
            columns = {key: torch.from_numpy(np.asarray(handle[key][at:end])) for key in _COLUMNS}
            writer.write(first + at, from_storage(handle["images"][at:end]), labels=columns["labels"],
                         clean_indices=columns["clean_indices"], success=columns["success"],
                         clean_pred=columns["clean_pred"], adv_pred=columns["adv_pred"], targets=columns["targets"])
