"""Evaluation work split over the ranks of a data-parallel run (core.distributed), exactly.

`predict_sharded` is `predictions.predict` over a reader's rows: each rank predicts a contiguous
shard of whole batches (the same batches as one process) and the predictions are gathered, so
every rank holds the single-process `Predictions`. A stochastic model (randomized defense) draws
its randomness from one seeded stream over the whole pass, which a shard cannot reproduce, so
such a model is evaluated whole on every rank (same numbers, no speed-up).

`map_over_ranks` runs independent, self-seeded jobs (e.g. one adaptive-attack configuration
each) round-robin over the ranks and gathers the results in job order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from defendr_cli.core.distributed import SINGLE, DistContext, all_gather_objects, broadcast_object, shard_range
from defendr_cli.core.evaluation.predictions import Predictions, _sorted_predictions, is_stochastic, predict
from defendr_cli.core.progress import Reporter
from defendr_cli.core.runtime import Runtime



def predict_sharded(model: torch.nn.Module, reader: Any, runtime: Runtime, dist: DistContext = SINGLE, *,
                    batch_size: int, seed: int = 0, reporter: Reporter | None = None,
                    description: str = "predict") -> Predictions:
    """Predictions of `model` on every row of `reader` (a SplitReader or AdvSetReader: len(),
    iter_batches(batch_size, indices=...)), equal to predict(model, reader.iter_batches(batch_size), ...)."""
    count = len(reader)
    if not dist.is_distributed or _is_stochastic(model, reader, runtime, dist):
        return predict(model, reader.iter_batches(batch_size), runtime, seed=seed, total=count,
                       reporter=reporter, description=description)
    start, stop = shard_range(count, dist, align=batch_size)
    local = predict(model, reader.iter_batches(batch_size, indices=np.arange(start, stop)), runtime, seed=seed,
                    total=stop - start, reporter=reporter, description=description)
    parts = all_gather_objects((local.preds, local.labels, local.indices), dist)
    return _sorted_predictions(*(list(column) for column in zip(*parts)))


@torch.no_grad()
def _is_stochastic(model: torch.nn.Module, reader: Any, runtime: Runtime, dist: DistContext) -> bool:
    """Rank 0's verdict on whether two passes over the first two rows differ."""
    verdict = False
    if dist.is_main and len(reader):
        images = next(iter(reader.iter_batches(2))).images
        with runtime.autocast():
            verdict = is_stochastic(model, runtime.to_device(images))
    return bool(broadcast_object(verdict, dist))
