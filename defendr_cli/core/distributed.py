"""Data-parallel runs with torch.distributed, started by torchrun.

`torchrun --nproc-per-node N -m defendr_cli train|attack|evaluate ...` starts N processes with
RANK / WORLD_SIZE / LOCAL_RANK (and MASTER_ADDR / MASTER_PORT) in their environment. The stage
commands open a session around their work:

    with distributed_session("auto") as dist:      # DistContext(rank, world_size, local_rank, device)
        ...library calls get `dist`...

Without those variables (or with WORLD_SIZE=1) the session is a single process: world_size 1,
no process group, nothing else changes. With them, the process group is initialised (NCCL when
the rank computes on a CUDA GPU, `cuda:LOCAL_RANK`; gloo on CPUs) and destroyed on exit.

Library code receives the small `DistContext` and uses the helpers below; there is no global
state beyond torch.distributed itself. Every helper is a no-op (or the identity) for world size 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as torch_dist

from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import resolve_device

TIMEOUT_ENV = "DEFENDR_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 60  # rank 0 may write large files while the others wait at a barrier


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel run.

    rank: 0..world_size-1 (global); local_rank: index on this machine (selects the GPU);
    device: where this rank computes (cuda:local_rank on GPUs, cpu otherwise).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that prints and writes final files."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


SINGLE = DistContext()


def torchrun_environment() -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) from torchrun's variables, or None when not under torchrun."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if not all(name in os.environ for name in names[:2]):
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as exc:
        raise InputError(f"torchrun variables RANK/WORLD_SIZE/LOCAL_RANK must be integers: {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"invalid torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return rank, world, local


def rank_device(device: str, local_rank: int) -> torch.device:
    """The device of one rank: 'auto' -> cuda:local_rank when CUDA is available, else cpu;
    'cuda' or 'cuda:N' -> cuda:local_rank (one process per GPU); 'cpu' -> cpu."""
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise InputError(f"unsupported device '{device}' for a distributed run: use auto, cpu or cuda")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is available")
    if local_rank >= torch.cuda.device_count():
        raise InputError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) on this machine: "
                         f"start at most one process per GPU (--nproc-per-node)")
    return torch.device("cuda", local_rank)


def _timeout() -> timedelta:
    try:
        return timedelta(minutes=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_MIN)))
    except ValueError as exc:
        raise InputError(f"{TIMEOUT_ENV} must be a number of minutes") from exc


@contextlib.contextmanager
def distributed_session(device: str = "auto") -> Iterator[DistContext]:
    """Yield the DistContext of this process; initialise and tear down the process group if needed.

    Single process (no torchrun variables, or WORLD_SIZE=1): DistContext with world_size 1 and the
    device from core.runtime.resolve_device; no process group. A process group that is already
    initialised (a caller set it up) is used as is and left open.
    """
    env = torchrun_environment()
    if env is None or env[1] == 1:
        yield DistContext(device=resolve_device(device))
        return
    rank, world, local = env
    target = rank_device(device, local)
    owns_group = not torch_dist.is_initialized()
    if owns_group:
        if target.type == "cuda":
            torch.cuda.set_device(target)
        backend = "nccl" if target.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=_timeout())
    try:
        yield DistContext(rank=rank, world_size=world, local_rank=local, device=target)
    finally:
        if owns_group and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _comm_device(dist: DistContext) -> torch.device:
    """Tensors for collectives live on the GPU with NCCL, on the CPU with gloo."""
    return dist.device if torch_dist.get_backend() == "nccl" else torch.device("cpu")


def barrier(dist: DistContext) -> None:
    """Wait until every rank gets here."""
    if dist.is_distributed:
        torch_dist.barrier()


def all_reduce_sum(values: Sequence[float], dist: DistContext) -> list[float]:
    """Element-wise sums over ranks of a few numbers (counts, loss sums), in float64."""
    if not dist.is_distributed:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device(dist))
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def broadcast_object(obj: Any, dist: DistContext, src: int = 0) -> Any:
    """Rank `src`'s (picklable, small) object on every rank."""
    if not dist.is_distributed:
        return obj
    box = [obj if dist.rank == src else None]
    torch_dist.broadcast_object_list(box, src=src, device=_comm_device(dist))
    return box[0]


def all_gather_objects(obj: Any, dist: DistContext) -> list[Any]:
    """Every rank's (picklable) object, in rank order, on every rank."""
    if not dist.is_distributed:
        return [obj]
    out: list[Any] = [None] * dist.world_size
    torch_dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: torch.nn.Module, dist: DistContext, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers into `module` on every rank (in place)."""
    if not dist.is_distributed:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            torch_dist.broadcast(tensor.data, src=src)


def split_range(count: int, parts: int, part: int) -> tuple[int, int]:
    """[start, stop) of part `part` when `count` items are cut into `parts` contiguous, disjoint,
    nearly equal pieces (the first pieces are the shorter ones; a piece may be empty)."""
    return part * count // parts, (part + 1) * count // parts


def shard_range(count: int, dist: DistContext, *, align: int = 1) -> tuple[int, int]:
    """[start, stop) rows of this rank's contiguous shard of `count` rows.

    With `align` (a batch size) shards are whole blocks of `align` rows (the last one may be short),
    so shard boundaries are batch boundaries: rank r's batches are exactly the single-process
    batches with the same indices. The shards of all ranks cover 0..count in order.
    """
    if align < 1:
        raise ValueError("align must be at least 1")
    blocks = -(-count // align)
    first, last = split_range(blocks, dist.world_size, dist.rank)
    return min(count, first * align), min(count, last * align)
