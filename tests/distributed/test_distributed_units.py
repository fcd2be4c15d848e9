"""Sharding arithmetic and the single-process path of core.distributed (no process group needed)."""

from __future__ import annotations

import numpy as np
import pytest

from defendr_cli.core.distributed import (
    SINGLE,
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    broadcast_object,
    distributed_session,
    shard_range,
    split_range,
    torchrun_environment,
)
from defendr_cli.core.training.data import BatchSource, shard_items
from tests.training.train_helpers import write_tiny_cache


@pytest.mark.parametrize("count,world,align", [(30, 2, 8), (10, 4, 4), (5, 3, 1), (0, 2, 8), (17, 5, 3)])
def test_shard_ranges_are_contiguous_disjoint_and_batch_aligned(count, world, align):
    ranges = [shard_range(count, DistContext(rank=r, world_size=world), align=align) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == count
    for (_, stop), (start, _) in zip(ranges, ranges[1:]):
        assert stop == start
    for start, stop in ranges:
        assert start <= stop and (start == count or start % align == 0)


def test_split_range_cuts_nearly_equal_pieces():
    assert [split_range(10, 3, p) for p in range(3)] == [(0, 3), (3, 6), (6, 10)]


def test_shard_items_pad_gives_equal_nonempty_shares_and_exact_split_covers_once():
    items = np.stack([np.zeros(5, np.int64), np.arange(5)], 1)
    padded = [shard_items(items, DistContext(rank=r, world_size=4), pad=True) for r in range(4)]
    assert [s[:, 1].tolist() for s in padded] == [[0, 1], [2, 3], [4, 0], [1, 2]]  # repeats from the start
    exact = [shard_items(items, DistContext(rank=r, world_size=4), pad=False) for r in range(4)]
    assert np.concatenate(exact)[:, 1].tolist() == [0, 1, 2, 3, 4]


def test_rank_plans_partition_every_global_batch(tmp_path):
    cache = write_tiny_cache(tmp_path / "c.h5", per_class={"train": 8, "val": 2, "test": 2})
    plans = []
    for rank in range(2):
        source = BatchSource(cache, "train", 10, dist=DistContext(rank=rank, world_size=2))
        plans.append(source.rank_plan(seed=3, epoch=1))
        global_plan = source.plan(seed=3, epoch=1)
        source.close()
    assert len(plans[0]) == len(plans[1]) == len(global_plan) == 3  # 24 items: 10, 10, 4
    for batch, left, right in zip(global_plan, *plans):
        assert np.array_equal(np.concatenate([left, right]), batch)
    single = BatchSource(cache, "train", 10)
    assert all(np.array_equal(a, b) for a, b in zip(single.rank_plan(3, 1), global_plan))
    single.close()


def test_single_process_session_has_no_process_group(monkeypatch):
    import torch.distributed as torch_dist

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_environment() is None
    with distributed_session("cpu") as dist:
        assert dist == SINGLE and dist.is_main and not dist.is_distributed
        assert not torch_dist.is_initialized()
        assert all_reduce_sum([1, 2.5], dist) == [1.0, 2.5]
        assert broadcast_object({"a": 1}, dist) == {"a": 1} and all_gather_objects(3, dist) == [3]
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with distributed_session("cpu") as dist:
        assert not dist.is_distributed and not torch_dist.is_initialized()
