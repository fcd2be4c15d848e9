"""`defendr attack --plan` and `defendr train METHOD --plan`: the work, time, disk and memory of
one command; nothing runs.

Training uses the same work model as `reproduce --plan` (core/pipeline/work.py) with the cache's
real split counts and the run's resolved options. For an attack, the model is loaded on the CPU and one blank image is pushed through it under FlopCounterMode
(any model kind: classifier, DUNET + target, randomized, ensemble, imported), so the FLOPs are
those of what the attack will differentiate. Passes per image: clean and adversarial predictions
(2) + 2 per input-gradient step and restart (see core/pipeline/work.py). Times as in core/pipeline/plan.py.
"""

from __future__ import annotations

from typing import Any

from defendr_cli.core.atomic import free_bytes
from defendr_cli.core.errors import InputError
from defendr_cli.core.io.checkpoint import read_checkpoint
from defendr_cli.core.io.reader import IN_MEMORY_BYTES, read_cache_info
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.pipeline import plan as run_plan
from defendr_cli.core.pipeline import work
from defendr_cli.core.pipeline.costs import loaded_model_cost
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack import AttackStageConfig, validate_config
from defendr_cli.core.training.data import resolve_adv_sets
from defendr_cli.core.training.options import TrainOptions
from defendr_cli.core.workspace import Workspace


def plan_attack(workspace: Workspace, config: AttackStageConfig, runtime: Runtime, calibration: dict[str, Any] | None,
                *, gpu: str = "H100") -> run_plan.RunPlan:
    """One row per split: images (x eps), passes, FLOPs, seconds here and on `gpu`, disk, memory."""
    config = validate_config(config)
    if gpu not in run_plan.GPU_BF16_PEAK_TFLOPS:
        raise InputError(f"unknown GPU '{gpu}': use one of {', '.join(run_plan.GPU_BF16_PEAK_TFLOPS)}")
    cache_path = workspace.resolve("data", config.data) if config.data else workspace.default_data()
    info = read_cache_info(cache_path)
    cost = loaded_model_cost(load_model(workspace, config.model).module, info.image_size)
    steps = 1 if config.attack == "fgsm" else int(config.steps or 10)
    passes = 2 + work.INPUT_GRADIENT_PASSES * steps * int(config.restarts or 1)
    image_bytes = 3 * info.image_size ** 2
    row_bytes = image_bytes * work.STORAGE_BYTES.get(config.dtype, 2) + work.ROW_COLUMN_BYTES
    stages = []
    for split in config.splits:
        images = int(info.split_counts.get(split, 0)) * len(config.eps)
        split_bytes = int(info.split_counts.get(split, 0)) * image_bytes
        memory = (work.PROCESS_BASE_BYTES + cost.parameters * 4 + config.batch_size * cost.activation_numel * 4
                  + 2 * config.batch_size * image_bytes * 4 + (split_bytes if split_bytes < IN_MEMORY_BYTES else 0))
        item = work.StageWork("attack", images, float(passes), images * passes * cost.forward_flops,
                              runtime.precision, images * row_bytes, memory,
                              [f"{len(config.eps)} eps x {info.split_counts.get(split, 0)} images; model "
                               f"{cost.forward_flops / 1e9:.2f} GFLOP per image forward"])
        stages.append(_timed(f"attack:{config.attack}:{split}", item, calibration, gpu))
    return _plan(stages, calibration, gpu, workspace.adv_dir)


def plan_train(workspace: Workspace, options: TrainOptions, runtime: Runtime, calibration: dict[str, Any] | None,
               *, gpu: str = "H100") -> run_plan.RunPlan:
    """One row: epochs x items x passes of this training run (see core/pipeline/work.py)."""
    cache_path = workspace.resolve("data", options.data) if options.data else workspace.default_data()
    info = read_cache_info(cache_path)
    options = options.resolved(info.image_size)
    method = options.method_options
    adv_sets = resolve_adv_sets(workspace, list(getattr(method, "adv", []) or []), split="train",
                                clean_fingerprint=info.fingerprint, method=options.method)
    arch = getattr(method, "arch", None)  # classifier recipes only (ClassifierOptions)
    if options.method == "dunet":  # the denoiser trains in front of its frozen target's architecture
        target = read_checkpoint(workspace.resolve("model", getattr(method, "target", "baseline")))
        arch = str(target.config.get("arch") or arch)
    settings = {"data": {"classes": info.num_classes, "per_class": 0, "image_size": info.image_size,
                         "counts": dict(info.split_counts)},
                "model": {"arch": arch, "freeze_backbone": bool(getattr(method, "freeze_backbone", False))},
                "train": {"epochs": options.epochs, "batch_size": options.batch_size}}
    spec = {"method": options.method, "adv": [str(p) for p in adv_sets]}
    for key in ("online", "attack_steps", "adv_ratio", "width_mult"):
        if getattr(method, key, None) is not None:
            spec[key] = getattr(method, key)
    item = work.train_work(settings, options.model_name, spec, runtime.precision)
    return _plan([_timed(f"train:{options.model_name}", item, calibration, gpu)], calibration, gpu,
                 workspace.dir_for("model"))


def _timed(stage_id: str, item: work.StageWork, calibration: dict[str, Any] | None, gpu: str) -> run_plan.StagePlan:
    conv = (calibration or {}).get("conv") or {}
    here_gflops = float(conv.get("bf16_gflops" if item.precision in ("bf16", "fp16") else "fp32_gflops", 0.0))
    here = run_plan.stage_seconds(item, here_gflops, utilisation=run_plan.CPU_UTILISATION) if here_gflops else 0.0
    gpu_seconds = run_plan.stage_seconds(item, run_plan.GPU_BF16_PEAK_TFLOPS[gpu] * 1e3,
                                         utilisation=run_plan.GPU_UTILISATION)
    return run_plan.StagePlan(stage_id, "run", item, here, gpu_seconds)


def _plan(stages: list[run_plan.StagePlan], calibration: dict[str, Any] | None, gpu: str, folder) -> run_plan.RunPlan:
    if gpu not in run_plan.GPU_BF16_PEAK_TFLOPS:
        raise InputError(f"unknown GPU '{gpu}': use one of {', '.join(run_plan.GPU_BF16_PEAK_TFLOPS)}")
    conv = (calibration or {}).get("conv") or {}
    cpu = {"fp32": float(conv.get("fp32_gflops", 0.0)), "bf16": float(conv.get("bf16_gflops", 0.0))}
    return run_plan.RunPlan(stages, gpu, run_plan.GPU_UTILISATION, cpu, float(free_bytes(folder)))
