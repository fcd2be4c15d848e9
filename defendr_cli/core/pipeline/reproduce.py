"""`defendr reproduce`: every stage of the paper's pipeline, in order, skipping what is current.

Stages (ids as recorded in the workspace ledger, see state.py):

    prepare                      clean cache from the profile's source
    train:baseline               the undefended classifier
    attack:<prefix>              adversarial sets from the baseline (train/val/test, or test only)
    train:<method model>         adv, advpgd, alp, clp, lsq, dunet (profile's `methods`)
    ensemble:<name>              manifests (profile's `ensembles`)
    gradcam                      paired heat maps -> reports/reproduce/gradcam/
    evaluate                     transfer + adaptive protocols -> reports/reproduce/ (embeds the above)

A stage runs when its ledger key (parameters + input file signatures) changed or its outputs are
gone; a changed parameter therefore reruns that stage and, through the changed outputs, only what
depends on it. With `resume=True` interrupted training runs and attack sets continue where they
stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from defendr_cli.core.calibration import cached_calibration
from defendr_cli.core.locks import artefact_lock
from defendr_cli.core.pipeline import evaluation_stage as ev
from defendr_cli.core.pipeline import stages as st
from defendr_cli.core.pipeline.html_report import write_reproduce_html
from defendr_cli.core.pipeline.paper_report import read_phenomena
from defendr_cli.core.pipeline.state import PipelineLedger, stage_key
from defendr_cli.core.pipeline.timing import write_timing
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime, seed_everything
from defendr_cli.core.workspace import Workspace

REPORT_NAME = "reproduce"


@dataclass
class Stage:
    """One step: `params` and `inputs()` make its ledger key; `run()` returns its output files."""

    id: str
    params: dict[str, Any]
    inputs: Callable[[], list[Path]]
    run: Callable[[], list[Path]]


@dataclass
class StageRecord:
    """One stage of this run: status 'ran' or 'current' (skipped); wall and CPU seconds (0 when skipped)."""

    id: str
    status: str  # 'ran' or 'current'
    seconds: float
    outputs: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0


@dataclass
class ReproduceResult:
    settings: dict[str, Any]
    stages: list[StageRecord]
    report_dir: Path
    phenomena: list[dict[str, Any]]
    seconds: float
    calibration: dict[str, Any] | None = None


def plan_stages(env: st.StageEnv) -> list[Stage]:
    """The ordered stages for `env.settings` (nothing runs here)."""
    settings, ws = env.settings, env.workspace
    data_path = lambda: [ws.path_for("data", st.data_name(settings), create_dir=False)]  # noqa: E731
    baseline = lambda: [ws.path_for("model", "baseline", create_dir=False)]  # noqa: E731
    common = {"seed": env.seed, "precision": env.runtime.precision}
    if env.runtime.memory_format != "auto":  # absent when auto: older workspaces stay current
        common["memory_format"] = env.runtime.memory_format
    plan = [Stage("prepare", {**common, "data": settings["data"]}, lambda: [], lambda: st.pipeline_prepare(env))]
    plan.append(Stage("train:baseline", {**common, "model": settings["model"], "train": settings["train"]},
                      data_path, lambda: st.pipeline_train(env, "baseline", {"method": "baseline"})))
    for spec, splits in st.attack_specs(settings):
        labels = "+".join(st.attack_labels(settings, spec, splits))
        plan.append(Stage(f"attack:{labels}:{','.join(splits)}", {**common, "spec": spec, "splits": splits},
                          lambda: data_path() + baseline(),
                          lambda spec=spec, splits=splits: st.pipeline_attack(env, spec, splits)))
    for name, spec in st.method_specs(settings).items():
        plan.append(Stage(f"train:{name}", {**common, "model": settings["model"], "train": settings["train"],
                                              "spec": spec},
                          lambda name=name, spec=spec: st.training_inputs(env, name, spec),
                          lambda name=name, spec=spec: st.pipeline_train(env, name, spec)))
    for name, members in settings.get("ensembles", {}).items():
        plan.append(Stage(f"ensemble:{name}", {"members": members},
                          lambda members=members: [ws.path_for("model", m, create_dir=False) for m in members],
                          lambda name=name, members=members: st.pipeline_ensemble(env, name, members)))
    plan.append(Stage("gradcam", {**common, "gradcam": settings["gradcam"]},
                      lambda: ev.gradcam_inputs(env), lambda: ev.pipeline_gradcam(env, REPORT_NAME)))
    plan.append(Stage("evaluate", {**common, "evaluate": settings["evaluate"], "checks": settings["checks"],
                                   "randomization": settings["randomization"]},
                      lambda: ev.evaluation_inputs(env) + ev.gradcam_outputs(env, REPORT_NAME), lambda: ev.pipeline_evaluate(env, REPORT_NAME)))
    return plan


def reproduce(workspace: Workspace, settings: dict[str, Any], runtime: Runtime, *, resume: bool = False,
              reporter: Reporter | None = None,
              on_stage: Callable[[StageRecord], None] | None = None,
              calibration: Callable[[torch.device], dict[str, Any]] | None = cached_calibration) -> ReproduceResult:
    """Run every stage that is not current; return what ran, the report folder and the checks.

    `on_stage` is called after each stage (the CLI prints a line per stage). When a stage ran, the
    report gets the per-stage time table and `calibration(device)`'s figures (core.calibration;
    None leaves them out), see core/pipeline/timing.py.
    """
    # one reproduce per workspace: the whole run holds reports/<REPORT_NAME>'s lock (its stages'
    # own locks are re-entrant), so a second `reproduce` stops at once naming this process
    with artefact_lock(workspace.dir_for("report") / REPORT_NAME):
        started = time.perf_counter()
        reporter = reporter or NullReporter()
        seed_everything(int(settings.get("seed", 0)))
        env = st.StageEnv(workspace, runtime, settings, reporter, resume)
        st.check_train_settings(env)  # one line before any stage runs when a setting is unusable
        for note in st.preflight_notes(settings):
            reporter.note(note)
        ledger = PipelineLedger.open(workspace.root)
        records: list[StageRecord] = []
        for stage in plan_stages(env):
            t0, cpu0 = time.perf_counter(), time.process_time()
            key = stage_key(stage.params, [p for p in stage.inputs() if p.exists()])
            if ledger.is_current(stage.id, key):
                record = StageRecord(stage.id, "current", 0.0, list(ledger.stages[stage.id]["outputs"]))
            else:
                ledger.forget(stage.id)
                outputs = stage.run()
                # inputs are re-read: a stage may have created files its own key depends on
                ledger.record(stage.id, stage_key(stage.params, [p for p in stage.inputs() if p.exists()]), outputs)
                record = StageRecord(stage.id, "ran", time.perf_counter() - t0, [str(p) for p in outputs],
                                     time.process_time() - cpu0)
            records.append(record)
            if on_stage:
                on_stage(record)
        stages_seconds = time.perf_counter() - started
        report_dir = workspace.dir_for("report") / REPORT_NAME
        figures = None
        if any(r.status == "ran" for r in records):
            if calibration is not None:
                reporter.note("calibrating the machine (matmul and conv GFLOP/s) for the report")
                figures = calibration(runtime.device)
            ledger.refresh_outputs(write_timing(report_dir, records, stages_seconds, figures))
        write_reproduce_html(workspace, settings, report_dir)  # last: it shows the timing and the checks
        phenomena = read_phenomena(report_dir)
        return ReproduceResult(settings, records, report_dir, phenomena, stages_seconds, figures)
