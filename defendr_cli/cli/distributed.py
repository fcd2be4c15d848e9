"""torchrun support for the stage commands (train, attack, evaluate).

    with stage_session(device, precision) as (dist, runtime):
        with stage_reporter(dist, console, enabled=not as_json) as reporter:
            ...
        if not dist.is_main:
            return          # only rank 0 prints tables and writes final files

A single process (no torchrun variables) gets world size 1 and the runtime `make_runtime` would
build; under torchrun every rank computes on its own device (cuda:LOCAL_RANK, or the CPU with gloo).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from rich.console import Console

from defendr_cli.cli.progress import RichReporter
from defendr_cli.core.distributed import DistContext, distributed_session
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace

StageResult = TypeVar("StageResult")


@contextlib.contextmanager
def stage_session(device: str, precision: str) -> Iterator[tuple[DistContext, Runtime]]:
    """The DistContext of this process and its Runtime; the process group lives inside the block."""
    with distributed_session(device) as dist:
        yield dist, Runtime(dist.device, precision)


@contextlib.contextmanager
def stage_reporter(dist: DistContext, console: Console, *, enabled: bool = True) -> Iterator[Reporter]:
    """Rich progress bars on rank 0; a NullReporter on the other ranks."""
    if not dist.is_main:
        yield NullReporter()
        return
    with RichReporter(console, enabled=enabled) as reporter:
        if dist.is_distributed:
            reporter.note(f"data-parallel run: {dist.world_size} processes ({dist.device.type})")
        yield reporter


def run_distributed_stage(device: str, precision: str, console: Console, call, *,
                          enabled: bool = True) -> tuple[DistContext, object]:
    """`call(runtime, reporter, dist)` inside this process's session and reporter (every torchrun
    rank runs it); returns (dist, its result) so rank 0 alone prints."""
    with stage_session(device, precision) as (dist, runtime):
        with stage_reporter(dist, console, enabled=enabled) as reporter:
            return dist, call(runtime, reporter, dist)


def run_stage(stage: Callable[..., StageResult], workspace: Workspace, config: object, device: str,
              precision: str, console: Console, *, enabled: bool = True) -> tuple[DistContext, StageResult]:
    """`stage(workspace, config, runtime, reporter=..., dist=...)` (run_train, run_attack, run_evaluate)
    through `run_distributed_stage`: every torchrun rank runs it; returns (dist, its result)."""
    return run_distributed_stage(
        device, precision, console, enabled=enabled,
        call=lambda runtime, reporter, dist: stage(workspace, config, runtime, reporter=reporter, dist=dist))
