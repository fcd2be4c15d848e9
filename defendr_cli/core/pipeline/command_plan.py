"""`defendr attack --plan`: the work, time, disk and memory of one attack command; nothing runs.

The model is loaded on the CPU and one blank image is pushed through it under FlopCounterMode
(any model kind: classifier, DUNET + target, randomized, ensemble, imported), so the FLOPs are
those of what the attack will differentiate. Passes per image: clean and adversarial predictions
(2) + 3 per gradient step and restart (see core/pipeline/work.py). Times as in core/pipeline/plan.py.
"""

from __future__ import annotations

from typing import Any

from defendr_cli.core.atomic import free_bytes
from defendr_cli.core.io.reader import IN_MEMORY_BYTES, read_cache_info
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.pipeline import plan as run_plan
from defendr_cli.core.pipeline import work
from defendr_cli.core.pipeline.costs import loaded_model_cost
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack import AttackStageConfig, validate_config
from defendr_cli.core.workspace import Workspace


def plan_attack(workspace: Workspace, config: AttackStageConfig, runtime: Runtime, calibration: dict[str, Any] | None,
                *, gpu: str = "H100") -> run_plan.RunPlan:
    """One row per split: images (x eps), passes, FLOPs, seconds here and on `gpu`, disk, memory."""
    config = validate_config(config)
    cache_path = workspace.resolve("data", config.data) if config.data else workspace.default_data()
    info = read_cache_info(cache_path)
    cost = loaded_model_cost(load_model(workspace, config.model).module, info.image_size)
    steps = 1 if config.attack == "fgsm" else int(config.steps or 10)
    passes = 2 + 3 * steps * int(config.restarts or 1)
    image_bytes = 3 * info.image_size ** 2
    row_bytes = image_bytes * work.STORAGE_BYTES.get(config.dtype, 2) + work.ROW_COLUMN_BYTES
    conv = (calibration or {}).get("conv") or {}
    here_gflops = float(conv.get("bf16_gflops" if runtime.precision in ("bf16", "fp16") else "fp32_gflops", 0.0))
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
        here = run_plan.stage_seconds(item, here_gflops, utilisation=run_plan.CPU_UTILISATION) if here_gflops else 0.0
        gpu_seconds = run_plan.stage_seconds(item, run_plan.GPU_BF16_PEAK_TFLOPS[gpu] * 1e3,
                                             utilisation=run_plan.GPU_UTILISATION)
        stages.append(run_plan.StagePlan(f"attack:{config.attack}:{split}", "run", item, here, gpu_seconds))
    cpu = {"fp32": float(conv.get("fp32_gflops", 0.0)), "bf16": float(conv.get("bf16_gflops", 0.0))}
    return run_plan.RunPlan(stages, gpu, run_plan.GPU_UTILISATION, cpu, float(free_bytes(workspace.adv_dir)))
