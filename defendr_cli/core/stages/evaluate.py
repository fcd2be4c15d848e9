"""`evaluate` as one function: transfer tables, the optional adaptive sweep, a report folder.

    run_evaluate(workspace, EvaluateConfig(models=["baseline", "adv"]), runtime) -> EvaluateResult

Both `defendr evaluate` and the reproduce pipeline call this. Under torchrun (`dist`) every rank
computes its share; only rank 0 writes the report.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defendr_cli.core.attacks.eps import EpsValue
from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.eps import AdaptiveEps, sweep_eps
from defendr_cli.core.evaluation.adaptive.partial import PARTIAL_DIRNAME
from defendr_cli.core.evaluation.adaptive.plan import SuitePlan
from defendr_cli.core.evaluation.adaptive.run import AdaptiveConfig, run_adaptive_suite
from defendr_cli.core.evaluation.html.gallery import GALLERY_DIR, write_gallery
from defendr_cli.core.evaluation.html.writer import write_html_report
from defendr_cli.core.evaluation.predictions import PREDICTIONS_DIRNAME, safe_key
from defendr_cli.core.evaluation.report.folder import ReportFiles, all_tables, write_report
from defendr_cli.core.evaluation.report.suite_compare import sibling_results
from defendr_cli.core.evaluation.report.robustbench import RobustBenchEntry, robustbench_entries, write_robustbench
from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult
from defendr_cli.core.evaluation.transfer.results import TransferResult
from defendr_cli.core.evaluation.selection import load_eval_models, select_adv_sets
from defendr_cli.core.evaluation.report.table import Table
from defendr_cli.core.evaluation.transfer.run import run_transfer
from defendr_cli.core.io.adversarial import read_adv_info
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.locks import artefact_lock
from defendr_cli.core.models.defenses import defense_spec
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.workspace import Workspace, validate_name

DEFAULT_ADAPTIVE_EPS = AdaptiveEps("8/255", 8 / 255)


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate and how.

    models: names or paths ('M+random-resize-pad' wraps M at evaluation time); ensembles: member
    lists, one on-the-spot ensemble row each. data: clean cache name or path (None: the
    workspace's only one). adv: adversarial test sets by names / prefixes / 'all' / 'none', or
    `adv_paths` (explicit files, used instead of `adv` when given). defense: wrap every model
    ('random-resize-pad'), with `defense_variant` and `passes`. name: report folder under
    reports/ (None: derived from the model names). batch_size: images per forward pass.
    Adaptive evaluation (when `adaptive`): eps are those of the evaluated sets (only the sets named
    in `eps_from_sets` when given), then `extra_eps` (pixel units); `adaptive_models` restricts the
    models attacked (None: all); `suite` 'auto' | 'standard' | 'fast' | 'rand' | 'quick' | 'custom' with
    `attacks` (custom; 'pgd' adds the PGD steps x restarts sweep to any suite); `square_queries`
    overrides Square's budget; `eot` gradient samples for randomized models (None: 20 for the
    suite, 30 for the PGD sweep); `draws` random draws of the final images (randomized models);
    `subset` seeded test images (None: all). report_settings: the settings dump written into the
    report (None: this config's evaluation settings). resume: reuse the adaptive results of models
    an interrupted run of the same settings saved under reports/<name>/.partial/ (predictions are
    always reused from the prediction cache), and continue an interrupted suite from its per-image
    record. chunk_size: images per chunk of the suite (None: batch_size; the unit of resume and of
    sharding over ranks); record: write the per-image records (per_image-<model>-<eps>.h5/.csv).
    """

    models: list[str] = field(default_factory=list)
    ensembles: list[list[str]] = field(default_factory=list)
    data: str | Path | None = None
    adv: str = "all"
    adv_paths: list[Path] | None = None
    defense: str | None = None
    defense_variant: str = "paper"
    passes: int | None = None
    name: str | None = None
    seed: int = 0
    batch_size: int = 128
    adaptive: bool = False
    adaptive_models: list[str] | None = None
    eps_from_sets: list[str] | None = None
    extra_eps: list[EpsValue] = field(default_factory=list)
    suite: str = "auto"
    attacks: list[str] = field(default_factory=list)
    square_queries: int | None = None
    draws: int = 10
    eot: int | None = None
    steps: list[int] = field(default_factory=lambda: [10, 100])
    restarts: list[int] = field(default_factory=lambda: [1, 5])
    subset: int | None = 200
    report_settings: dict[str, Any] | None = None
    resume: bool = False
    chunk_size: int | None = None
    record: bool = True


@dataclass
class EvaluateResult:
    """The results, their tables and the report written (files is None on ranks other than 0);
    robustbench: one RobustBench-style entry per attacked model (also robustbench-<model>.json and
    results.json's 'robustbench' key)."""

    report_name: str
    report_dir: Path
    transfer: TransferResult
    adaptive: AdaptiveResult | None
    tables: list[Table]
    files: ReportFiles | None
    notes: list[str] = field(default_factory=list)
    html: Path | None = None  # reports/<name>/report.html (rank 0)
    robustbench: list[RobustBenchEntry] = field(default_factory=list)


def _check(config: EvaluateConfig) -> None:
    if not config.models and not config.ensembles:
        raise InputError("nothing to evaluate: give --model M, --models a,b,c or --ensemble a,b,c")
    if config.batch_size < 1 or (config.chunk_size is not None and config.chunk_size < 1):
        raise InputError("--batch-size and --chunk-size must be at least 1")
    if config.name is not None:
        validate_name(config.name)
    if config.adaptive:
        _plan(config).check()


def _plan(config: EvaluateConfig) -> SuitePlan:
    return SuitePlan(suite=config.suite, attacks=tuple(a.strip().lower() for a in config.attacks if a.strip()),
                     square_queries=config.square_queries, eot=config.eot, draws=config.draws,
                     steps=tuple(config.steps), restarts=tuple(config.restarts))


def _report_settings(config: EvaluateConfig, data_path: Path, model_names: list[str], runtime: Runtime,
                     spec: dict | None) -> dict[str, Any]:
    settings = {"models": model_names, "data": str(data_path), "adv": config.adv, "seed": config.seed,
                "device": str(runtime.device), "precision": runtime.precision, "batch_size": config.batch_size,
                "defense": spec}
    if config.adaptive:
        settings.update({"suite": config.suite, "attacks": config.attacks, "square_queries": config.square_queries,
                         "draws": config.draws, "eot": config.eot, "steps": config.steps,
                         "restarts": config.restarts, "subset": config.subset})
    return settings


def _adaptive_eps(config: EvaluateConfig, transfer: TransferResult, reporter: Reporter) -> list[AdaptiveEps]:
    sets = transfer.adv_sets
    if config.eps_from_sets is not None:
        sets = [s for s in sets if s.name in config.eps_from_sets]
    eps_values = sweep_eps(sets, config.extra_eps)
    if not eps_values:
        reporter.note("no cached adversarial set and no --eps: the adaptive sweep uses eps 8/255")
        eps_values = [DEFAULT_ADAPTIVE_EPS]
    return eps_values


def run_evaluate(workspace: Workspace, config: EvaluateConfig, runtime: Runtime, *,
                 reporter: Reporter | None = None, dist: DistContext = SINGLE) -> EvaluateResult:
    """Select data, models and adversarial sets; run the transfer protocol and (optionally) the
    adaptive suite (core.evaluation.adaptive.run); write reports/<name>/ (results.json, CSV tables, figures, report.md) on rank 0."""
    _check(config)
    reporter = reporter or NullReporter()
    data_path = workspace.resolve("data", str(config.data)) if config.data else workspace.default_data()
    cache_info = read_cache_info(data_path)
    spec = defense_spec(config.defense, config.defense_variant) if config.defense else None
    notes: list[str] = []
    if config.adv_paths is not None:
        adv_paths = list(config.adv_paths)
    else:
        adv_paths = select_adv_sets(workspace, config.adv, cache_info.fingerprint, notes)
    models = load_eval_models(workspace, config.models, config.ensembles, device=runtime.device, defense=spec,
                              variant=config.defense_variant, passes=config.passes,
                              image_size=cache_info.image_size)
    report_name = config.name or safe_key("eval", *[m.name for m in models])[:80]
    folder = workspace.reports_dir / report_name
    # one evaluate per report folder: a second process stops at once (ArtefactBusyError naming the first)
    with artefact_lock(folder) if dist.is_main else contextlib.nullcontext():
        for note in notes:
            reporter.note(note)
        transfer = run_transfer(models, data_path, adv_paths, runtime=runtime, seed=config.seed,
                                batch_size=config.batch_size, cache_dir=workspace.reports_dir / PREDICTIONS_DIRNAME,
                                reporter=reporter, dist=dist)
        adaptive = None
        if config.adaptive:
            wanted = config.adaptive_models
            attacked = [m for m in models if m.name in wanted] if wanted else models
            # the suite's chunks are dealt to ranks; every rank gets every result; rank 0 writes the
            # per-image records (next to the report) and the report
            adaptive_config = AdaptiveConfig(
                eps_values=_adaptive_eps(config, transfer, reporter), plan=_plan(config), subset=config.subset,
                seed=config.seed, batch_size=config.batch_size, transfer_sets=adv_paths,
                partial_dir=folder / PARTIAL_DIRNAME, resume=config.resume, save_partials=dist.is_main,
                chunk_size=config.chunk_size, record_dir=folder if config.record else None, dist=dist)
            adaptive = run_adaptive_suite(attacked, data_path, adaptive_config, runtime=runtime, reporter=reporter)
        files, html, siblings = None, None, None
        entries = robustbench_entries(adaptive, Path(data_path).stem)
        if dist.is_main:
            settings = config.report_settings
            if settings is None:
                settings = _report_settings(config, data_path, [m.name for m in models], runtime, spec)
            siblings = sibling_results(workspace.reports_dir, report_name) if adaptive else None
            files = write_report(folder, name=report_name, transfer=transfer, adaptive=adaptive, settings=settings,
                                 extra={"robustbench": [e.to_dict() for e in entries]} if entries else None,
                                 siblings=siblings)
            write_robustbench(folder, entries)
            shutil.rmtree(folder / PARTIAL_DIRNAME, ignore_errors=True)  # the report holds them now
            html = _write_html(workspace, config, folder, models, data_path, adv_paths, transfer, runtime)
    return EvaluateResult(report_name=report_name, report_dir=folder, transfer=transfer, adaptive=adaptive,
                          tables=all_tables(transfer, adaptive, siblings), files=files, notes=notes,
                          html=html, robustbench=entries)


def _write_html(workspace: Workspace, config: EvaluateConfig, folder: Path, models: list, data_path: Path,
                adv_paths: list[Path], transfer: TransferResult, runtime: Runtime) -> Path:
    """The gallery (on the primary cached set; none without one) and report.html."""
    primary = next((p for p in adv_paths if read_adv_info(p).name == transfer.primary_set), None)
    if primary is not None:
        write_gallery(folder, models, data_path, primary, runtime, seed=config.seed)
    else:
        shutil.rmtree(folder / GALLERY_DIR, ignore_errors=True)
    return write_html_report(folder, command=command_line(workspace, config, folder.name, runtime, adv_paths))


def command_line(workspace: Workspace, config: EvaluateConfig, report_name: str, runtime: Runtime,
                 adv_paths: list[Path]) -> str:
    """The `defendr evaluate` command that makes this report again (shell-quoted)."""
    parts = ["defendr", "--workdir", str(workspace.root), "evaluate"]
    parts += ["--models", ",".join(config.models)] if config.models else []
    for members in config.ensembles:
        parts += ["--ensemble", ",".join(members)]
    parts += ["--adv", ",".join(p.stem for p in adv_paths) or "none"] if config.adv_paths is not None else \
        ["--adv", config.adv]
    parts += ["--data", str(config.data)] if config.data else []
    if config.defense:
        parts += ["--defense", config.defense, "--defense-variant", config.defense_variant]
    parts += ["--seed", str(config.seed), "--batch-size", str(config.batch_size), "--device", str(runtime.device),
              "--precision", runtime.precision, "--name", report_name]
    if config.adaptive:
        parts += ["--adaptive", "--suite", config.suite, "--draws", str(config.draws),
                  "--steps", ",".join(map(str, config.steps)), "--restarts", ",".join(map(str, config.restarts))]
        parts += ["--attacks", ",".join(config.attacks)] if config.attacks else []
        parts += ["--square-queries", str(config.square_queries)] if config.square_queries is not None else []
        parts += ["--eot", str(config.eot)] if config.eot is not None else []
        parts += ["--subset", str(config.subset)] if config.subset is not None else []
        parts += ["--chunk-size", str(config.chunk_size)] if config.chunk_size is not None else []
        parts += ["--eps", ",".join(e.label for e in config.extra_eps)] if config.extra_eps else []
    return shlex.join(parts)
