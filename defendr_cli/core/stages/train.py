"""The `train` stage: train one model with a registered recipe and write models/<name>.pt.

    result = run_train(workspace, options, runtime, reporter=reporter, dist=dist)

`options` is a TrainOptions (core.training.options) whose `method_options` are the method's own
dataclass; build it from flat values with core.training.recipes.registry.train_options. The loop
(core.training.loop.train) does the work, including data parallelism when `dist` has more than
one process (every rank calls run_train; only rank 0 writes files).
"""

from __future__ import annotations

import contextlib

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.locks import artefact_lock
from defendr_cli.core.progress import Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.training.loop import TrainResult, make_context, train
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.workspace import Workspace

__all__ = ["TrainResult", "run_train"]


def run_train(workspace: Workspace, options: TrainOptions, runtime: Runtime, *, reporter: Reporter | None = None,
              dist: DistContext = SINGLE) -> TrainResult:
    """Train (or resume, with options.resume) on the clean cache `options.data` (None: the workspace's
    only cache) and return the written checkpoint's path and record (core.io.checkpoint_record.Checkpoint),
    history and best epoch."""
    # the whole run holds models/<name>.pt's lock (rank 0 writes it): a second `train` of the same
    # name stops at once with ArtefactBusyError naming this process
    with artefact_lock(workspace.path_for("model", options.model_name)) if dist.is_main else contextlib.nullcontext():
        context = make_context(workspace, runtime, options.data, reporter, dist=dist)
        return train(options, context)
