"""`reproduce --plan`: every stage a run would execute, its work, time, disk and memory; nothing runs.

The stages and whether each is current come from the same `plan_stages` and ledger `reproduce`
uses (a stage reruns when its key changed or an earlier stage it reads from reruns). The work of
each stage comes from core/pipeline/work.py; times are estimates:

    this machine:  FLOPs / (calibrated conv GFLOP/s at the stage's precision x CPU_UTILISATION)
                   + a fixed overhead per stage (STAGE_OVERHEAD_S) + checkpoint bytes read or
                     written at CHECKPOINT_BYTES_PER_S
    a named GPU:   FLOPs / (published dense bf16 peak x GPU_UTILISATION) + the same overhead

`check_disk` raises WriteError when the stages to run would write more than the workspace's
free space. Nothing here writes a file or creates a folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defendr_cli.core.atomic import free_bytes
from defendr_cli.core.errors import InputError, WriteError
from defendr_cli.core.pipeline import stages as st
from defendr_cli.core.pipeline import work
from defendr_cli.core.pipeline.reproduce import plan_stages
from defendr_cli.core.pipeline.state import PipelineLedger, stage_key
from defendr_cli.core.progress import NullReporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace

CPU_UTILISATION = 0.5  # share of the calibrated conv throughput a whole stage reaches on a CPU
GPU_UTILISATION = 0.4  # share of a GPU's published dense bf16 peak a stage reaches (stated, not measured)
STAGE_OVERHEAD_S = {"prepare": 0.1, "ensemble": 0.1, "attack": 1.0, "gradcam": 2.0}  # figures: matplotlib
CHECKPOINT_BYTES_PER_S = 350e6  # read + sha256 or write + fsync of a checkpoint (measured here: an
                                # ensemble of two ResNet-101 files, 2 x 170 MB, took 1.0 s)
DEFAULT_OVERHEAD_S = 0.5  # opening the cache, loading the model(s), writing the result
GPU_BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


@dataclass
class StagePlan:
    """One stage: 'run' or 'current' (skipped); its work; estimated seconds here and on the GPU."""

    id: str
    status: str
    work: work.StageWork
    seconds_here: float
    seconds_gpu: float


@dataclass
class RunPlan:
    stages: list[StagePlan]
    gpu: str
    gpu_utilisation: float
    cpu_gflops: dict[str, float]
    free_bytes: float
    notes: list[str] = field(default_factory=list)

    @property
    def to_run(self) -> list[StagePlan]:
        return [s for s in self.stages if s.status == "run"]

    @property
    def disk_bytes(self) -> float:
        return sum(s.work.disk_bytes for s in self.to_run)

    @property
    def peak_memory_bytes(self) -> float:
        return max((s.work.memory_bytes for s in self.to_run), default=0.0)

    def total_seconds(self, where: str) -> float:
        return sum(s.seconds_here if where == "here" else s.seconds_gpu for s in self.to_run)

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "gpu_utilisation": self.gpu_utilisation, "cpu_gflops": self.cpu_gflops,
                "free_bytes": self.free_bytes, "disk_bytes": self.disk_bytes,
                "peak_memory_bytes": self.peak_memory_bytes, "seconds_here": self.total_seconds("here"),
                "seconds_gpu": self.total_seconds("gpu"), "notes": self.notes,
                "stages": [{"id": s.id, "status": s.status, "seconds_here": s.seconds_here,
                            "seconds_gpu": s.seconds_gpu, **vars(s.work)} for s in self.stages]}


def stage_work(env: st.StageEnv, stage_id: str) -> work.StageWork:
    """The work model of one stage id of `plan_stages` (see core/pipeline/reproduce.py)."""
    settings, precision = env.settings, env.runtime.precision
    kind, _, rest = stage_id.partition(":")
    if kind == "prepare":
        return work.prepare_work(settings)
    if kind == "train":
        spec = {"method": "baseline"} if rest == "baseline" else st.method_specs(settings)[rest]
        return work.train_work(settings, rest, spec, st.training_runtime(env, spec).precision)
    if kind == "attack":
        for spec, splits in st.attack_specs(settings):
            if rest == f"{'+'.join(st.attack_labels(settings, spec, splits))}:{','.join(splits)}":
                return work.attack_work(settings, spec, splits, precision)
    if kind == "ensemble":
        return work.ensemble_work(settings, list(settings.get("ensembles", {}).get(rest, [])))
    if kind == "gradcam":
        return work.gradcam_work(settings, precision)
    if kind == "evaluate":
        return work.evaluate_work(settings, precision)
    return work.StageWork(kind, 0, 0.0, 0.0, precision, 1e4, work.PROCESS_BASE_BYTES)


def _statuses(env: st.StageEnv) -> list[tuple[str, str]]:
    """(stage id, 'run' | 'current'): current when its ledger key matches and nothing it reads reruns."""
    ledger = PipelineLedger.open(env.workspace.root)
    changing: set[str] = set()
    out = []
    for stage in plan_stages(env):
        inputs = stage.inputs()
        key = stage_key(stage.params, [p for p in inputs if p.exists()])
        current = ledger.is_current(stage.id, key) and not any(str(p) in changing for p in inputs)
        if not current:
            changing.update(str(p) for p in ledger.stages.get(stage.id, {}).get("outputs", []))
        out.append((stage.id, "current" if current else "run"))
    return out


def stage_seconds(item: work.StageWork, gflops: float, *, utilisation: float) -> float:
    """Estimated wall seconds of one stage at `gflops` (GFLOP/s) reached at `utilisation`."""
    overhead = STAGE_OVERHEAD_S.get(item.kind, DEFAULT_OVERHEAD_S) + item.read_bytes / CHECKPOINT_BYTES_PER_S
    if item.kind == "train":  # the checkpoint is written (best and last epoch) and hashed
        overhead += 2 * item.disk_bytes / CHECKPOINT_BYTES_PER_S
    if item.kind == "prepare":
        return overhead + item.disk_bytes / (work.PREPARE_BYTES_PER_S * max(1, os.cpu_count() or 1))
    return overhead + item.flops / (gflops * 1e9 * utilisation)


def plan_reproduce(workspace: Workspace, settings: dict[str, Any], runtime: Runtime,
                   calibration: dict[str, Any] | None, *, resume: bool = False, gpu: str = "H100",
                   gpu_utilisation: float = GPU_UTILISATION) -> RunPlan:
    """`plan_run` for the arguments `reproduce()` takes."""
    env = st.StageEnv(workspace, runtime, settings, NullReporter(), resume)
    return plan_run(env, calibration, gpu=gpu, gpu_utilisation=gpu_utilisation)


def plan_run(env: st.StageEnv, calibration: dict[str, Any] | None, *, gpu: str = "H100",
             gpu_utilisation: float = GPU_UTILISATION) -> RunPlan:
    """The plan of `reproduce` with `env`'s settings in its workspace (nothing runs or is written).

    calibration: core.calibration's dict (conv fp32_gflops / bf16_gflops are used); None leaves the
    times on this machine at 0 (disk and memory only). InputError for a GPU not in GPU_BF16_PEAK_TFLOPS."""
    if gpu not in GPU_BF16_PEAK_TFLOPS:
        raise InputError(f"unknown GPU '{gpu}': use one of {', '.join(GPU_BF16_PEAK_TFLOPS)}")
    conv = (calibration or {}).get("conv") or {}
    cpu = {"fp32": float(conv.get("fp32_gflops", 0.0)), "bf16": float(conv.get("bf16_gflops", 0.0))}
    gpu_gflops = GPU_BF16_PEAK_TFLOPS[gpu] * 1e3
    stages = []
    for stage_id, status in _statuses(env):
        item = stage_work(env, stage_id)
        here = cpu["bf16"] if item.precision in ("bf16", "fp16") else cpu["fp32"]
        seconds_here = stage_seconds(item, here, utilisation=CPU_UTILISATION) if here > 0 else 0.0
        stages.append(StagePlan(stage_id, status, item, seconds_here,
                                stage_seconds(item, gpu_gflops, utilisation=gpu_utilisation)))
    plan = RunPlan(stages, gpu, gpu_utilisation, cpu, float(free_bytes(Path(env.workspace.root).absolute())))
    plan.notes = storage_notes(env.settings, plan)
    return plan


def storage_notes(settings: dict[str, Any], plan: RunPlan) -> list[str]:
    """What the adversarial sets cost on disk and what reduces it (when they are most of it)."""
    adv = sum(s.work.disk_bytes for s in plan.to_run if s.work.kind == "attack")
    if adv < 0.5 * max(plan.disk_bytes, 1.0) or adv < 1e9:
        return []
    sets = sum(len(splits) for _, splits in st.attack_specs(settings))
    train_share = sum(s.work.disk_bytes for s in plan.to_run if s.work.kind == "attack"
                      and "train" in s.id.split(":")[-1].split(",")) / adv
    return [f"the {sets} adversarial sets alone take {adv / 1e9:.1f} GB in float16 "
            f"({100 * train_share:.0f}% of it copies of the train split)",
            "to reduce it: attack fewer splits (--set attack_splits='[\"test\"]' keeps the test sets the "
            "evaluation needs, but adv, alp and dunet then have no train copies to learn from); fewer "
            "attacks or eps (--set attacks='[...]'); or make the sets with `defendr attack --dtype uint8` "
            "(half the size, rounded to 1/255; reproduce itself stores float16)"]


def check_disk(plan: RunPlan) -> None:
    """WriteError when the stages to run need more disk than is free."""
    if plan.disk_bytes > plan.free_bytes:
        raise WriteError(f"this run would write {plan.disk_bytes / 1e9:.1f} GB but only "
                             f"{plan.free_bytes / 1e9:.1f} GB is free on the workspace's disk",
                             hint="free space, pick another --workdir, or shrink the run (see --plan)")
