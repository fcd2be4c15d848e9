"""The suite over the subset in fixed chunks: resumable from the per-image record, shardable over ranks.

The subset's positions are cut into chunks of `chunk_size` images ([0, c), [c, 2c), ...). Chunk i
runs the whole suite on its images with its own seeds (core.evaluation.adaptive.seeds: chunk 0
uses the eps's suite seed itself, so a subset that fits in one chunk gets exactly the numbers of
the un-chunked cascade), so a chunk's outcome does not depend on which process runs it, nor on
what ran before. Under torchrun the chunks are dealt to ranks in rounds (chunk j of a round to
rank j); after each round every rank receives every chunk's outcomes (all_gather) and rank 0
appends them to the record. With `--resume`, rank 0 restores the chunks the interrupted run
finished from the record's partial file and broadcasts them; only the others are attacked.
"""

from __future__ import annotations

from collections.abc import Callable

from defendr_cli.core.distributed import SINGLE, DistContext, all_gather_objects, broadcast_object
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.outcomes import ImageOutcomes, concat_outcomes
from defendr_cli.core.evaluation.adaptive.record import SuiteRecord
from defendr_cli.core.progress import saved_for_test

ChunkRun = Callable[[int, int, int], ImageOutcomes]  # (chunk index, start, stop) -> outcomes of [start, stop)


def chunk_bounds(count: int, chunk_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each chunk of `chunk_size` positions out of `count` (the last may be short)."""
    if chunk_size < 1:
        raise InputError(f"the chunk size must be at least 1, got {chunk_size}")
    return [(start, min(start + chunk_size, count)) for start in range(0, count, chunk_size)]


def run_chunks(run_chunk: ChunkRun, count: int, chunk_size: int, *, record: SuiteRecord | None = None,
               dist: DistContext = SINGLE) -> ImageOutcomes:
    """The outcomes of every position 0..count-1 (see the module docstring); every rank returns all."""
    bounds = chunk_bounds(count, chunk_size)
    if not bounds:
        raise InputError("the adaptive suite has no image to attack")
    done = record.restored(bounds) if (record is not None and dist.is_main) else {}
    done = broadcast_object(done, dist)
    todo = [index for index in range(len(bounds)) if index not in done]
    for first in range(0, len(todo), dist.world_size):
        round_chunks = todo[first:first + dist.world_size]
        mine = round_chunks[dist.rank] if dist.rank < len(round_chunks) else None
        outcome = run_chunk(mine, *bounds[mine]) if mine is not None else None
        gathered = all_gather_objects((mine, outcome), dist)
        fresh = [(index, part) for index, part in gathered if index is not None]
        if record is not None:
            record.add([part for _, part in fresh])
        done.update(fresh)
        saved_for_test()
    return concat_outcomes([done[index] for index in range(len(bounds))])
