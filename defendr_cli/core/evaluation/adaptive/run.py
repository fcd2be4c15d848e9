"""The adaptive evaluation as an attack suite (AutoAttack-style) on every model, plus the checks.

Per model and eps, on a seeded subset of the test split (core.evaluation.adaptive.subset):

- the suite (core.evaluation.adaptive.cascade: each attack on the images still standing; 'auto'
  picks 'rand' for randomized models, 'standard' otherwise, see core.evaluation.adaptive.plan);
  randomized models get EOT gradients and their final images are classified over `draws` draws;
- ensembles (`core.models.ensemble.Ensemble`): also APGD-CE on the sum of the members' own losses
  (core.evaluation.adaptive.ensemble_route), the worst case per image kept and the winning route
  recorded;
- optionally the PGD step/restart sweep (`--attacks pgd`, core.evaluation.adaptive.pgd_sweep):
  its worst case per image is one more column and enters the robust column.

Robust accuracy is the per-image worst case over everything that ran (for randomized models the
lower of the suite's mean-over-draws accuracy and the PGD sweep's worst case). The sanity table
(core.evaluation.checks) is computed from the same runs. Seeds come from named streams
(core.evaluation.adaptive.seeds). Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.cascade import run_suite
from defendr_cli.core.evaluation.adaptive.eps import LARGE_EPS, AdaptiveEps
from defendr_cli.core.evaluation.adaptive.eps_run import EpsJob, EpsRun, SuiteTarget, run_eps
from defendr_cli.core.evaluation.adaptive.partial import AdaptivePartials, file_signature
from defendr_cli.core.evaluation.adaptive.pgd_sweep import attack_correct_mask
from defendr_cli.core.evaluation.adaptive.plan import (SuitePlan, cheap_entry, early_stop_entry, first_entry,
                                                      resolve_suite)
from defendr_cli.core.evaluation.adaptive.results import (AdaptiveResult, AdaptiveRow, AdaptiveSettings, EpsPoint,
                                                          GridPoint)
from defendr_cli.core.evaluation.adaptive.seeds import SeedPlan
from defendr_cli.core.evaluation.adaptive.subset import (Subset, TransferCopies, correct_mask, read_subset,
                                                         transfer_copies)
from defendr_cli.core.evaluation.checks import HeldMasks, ModelOutcome, model_checks, suite_held_masks
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.predictions import is_stochastic
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime


@dataclass(frozen=True)
class AdaptiveConfig:
    """How to attack. eps_values: the sweep's eps (sorted ascending before use); plan: the suite
    and the PGD sweep; subset: seeded test images (None: all); large_eps: the large-eps check's
    budget (pixel units); near_zero: the accuracy it must stay under; transfer_sets: cached
    adversarial test sets whose subset copies are scored too; partial_dir: where each model's row
    is saved as it completes (when `save_partials`); resume: reuse a row saved there with the same
    settings instead of attacking that model again (core.evaluation.adaptive.partial).
    chunk_size: images per chunk of the suite (None: batch_size), the unit of the per-image
    record's resume and of sharding over ranks (core.evaluation.adaptive.chunked); record_dir:
    where the per-image records are written (None: none); dist: the process group (chunks are
    dealt to ranks, every rank gets every result, rank 0 writes the records)."""

    eps_values: Sequence[AdaptiveEps]
    plan: SuitePlan = field(default_factory=SuitePlan)
    subset: int | None = 200
    seed: int = 0
    batch_size: int = 128
    large_eps: float = LARGE_EPS
    near_zero: float = 0.1
    transfer_sets: Sequence[Path] = ()
    partial_dir: Path | None = None
    resume: bool = False
    save_partials: bool = True
    chunk_size: int | None = None
    record_dir: Path | None = None
    dist: DistContext = SINGLE

    @property
    def seeds(self) -> SeedPlan:
        return SeedPlan(self.seed)


def run_adaptive_suite(models: list[EvalModel], data_path: Path, config: AdaptiveConfig, *, runtime: Runtime,
                       reporter: Reporter | None = None) -> AdaptiveResult:
    """The suite (and optionally the PGD sweep) against every model, with the sanity table.

    Returns an AdaptiveResult whose rows have one EpsPoint per eps: per-attack columns in
    `attacks` ({label: accuracy after it ran}, cumulative for the suite's attacks; 'pgd' the
    sweep's own worst case), `robust` (per-image worst case over everything), draws for
    randomized models and the route for ensembles; and `transfer` {cached set: accuracy on the
    subset's copies}.
    """
    if not models:
        raise InputError("no model to evaluate: give --model or --models")
    if not config.eps_values:
        raise InputError("the adaptive protocol needs at least one eps (--eps or cached adversarial sets)")
    config.plan.check()
    reporter = reporter or NullReporter()
    eps_values = sorted(config.eps_values, key=lambda e: eps_scalar(e.value))
    subset = read_subset(data_path, config.subset, config.seeds.subset)
    copies = transfer_copies(config.transfer_sets, subset.rows)
    partials = _partials(config, data_path, subset, eps_values, runtime)
    saved_rows = {model.key: partials.load(model.key) for model in models}  # read once: every rank decides alike
    results = []
    for model in models:
        if saved_rows[model.key] is not None:
            reporter.note(f"{model.name}: adaptive result of the interrupted run reused")
            results.append(saved_rows[model.key])
            continue
        row = _attack_model(model, subset, copies, eps_values, config, runtime=runtime, reporter=reporter)
        partials.save(model.key, row)
        results.append(row)
    return AdaptiveResult(seed=config.seed, subset=subset.rows.tolist(), settings=_settings(config, eps_values, subset),
                          models=results)


def _partials(config: AdaptiveConfig, data_path: Path, subset: Subset, eps_values: list[AdaptiveEps],
              runtime: Runtime) -> AdaptivePartials:
    """The saved rows, keyed by everything besides the model that a row depends on."""
    plan = config.plan
    return AdaptivePartials(config.partial_dir, {
        "data": file_signature(data_path), "rows": subset.rows.tolist(), "eps": [e.value for e in eps_values],
        "plan": [plan.suite, list(plan.attacks), plan.square_queries, plan.eot, plan.draws, plan.sweep_steps,
                 plan.sweep_restarts],
        "seed": config.seed, "batch_size": config.batch_size, "chunk_size": config.chunk_size or config.batch_size,
        "large_eps": config.large_eps,
        "near_zero": config.near_zero, "transfer": [file_signature(p) for p in config.transfer_sets],
        "device": str(runtime.device), "precision": runtime.precision}, reuse=config.resume,
        write=config.save_partials)


def _settings(config: AdaptiveConfig, eps_values: list[AdaptiveEps], subset: Subset) -> AdaptiveSettings:
    plan = config.plan
    return AdaptiveSettings(eps=[e.label for e in eps_values], steps=plan.sweep_steps if plan.pgd_sweep else [],
                            restarts=plan.sweep_restarts if plan.pgd_sweep else [], eot=plan.suite_eot(True),
                            subset=len(subset), large_eps=config.large_eps, near_zero=config.near_zero,
                            suite={"name": plan.suite_name(), "attacks": list(plan.attacks),
                                   "square_queries": plan.square_queries, "draws": plan.draws,
                                   "pgd_sweep": plan.pgd_sweep})


def _target(model: EvalModel, subset: Subset, plan: SuitePlan, runtime: Runtime) -> SuiteTarget:
    module = model.module.eval()
    stochastic = is_stochastic(module, runtime.to_device(subset.images[:2]))
    name, entries = plan.entries(stochastic)
    suite_eot = plan.suite_eot(stochastic)
    return SuiteTarget(model, module, stochastic, name, entries, suite_eot, {"eot": suite_eot} if stochastic else {})


def _attack_model(model: EvalModel, subset: Subset, copies: dict[str, TransferCopies],
                  eps_values: list[AdaptiveEps], config: AdaptiveConfig, *, runtime: Runtime,
                  reporter: Reporter) -> AdaptiveRow:
    """One model's row: clean and transfer scores, every eps, the eps=0 / large-eps runs, the checks."""
    plan, seeds, batch = config.plan, config.seeds, config.batch_size
    target = _target(model, subset, plan, runtime)
    clean = correct_mask(target.module, subset.images, subset.labels, runtime, seed=seeds.clean, batch_size=batch)
    transfer, transfer_held = _transfer_scores(target.module, subset, copies, runtime, seeds, batch)
    row = AdaptiveRow(name=model.name, kind=model.kind, stochastic=target.stochastic,
                      eot=target.suite_eot if target.entries else plan.pgd_eot(target.stochastic),
                      clean=float(clean.mean()), grid=[], points=[], transfer=transfer, eps0_accuracy=0.0,
                      large_eps_accuracy=0.0, suite=target.suite, budgets=target.budgets())
    held_all = []
    with reporter.task(f"{model.name}: adaptive suite ({target.suite})", total=len(eps_values) + 2) as task:
        for index, eps in enumerate(eps_values):
            pgd_masks = _pgd_sweep(target, subset, eps, row, config, runtime) if plan.pgd_sweep else None
            run = run_eps(target, _eps_job(config, subset, eps, seeds.suite(index), runtime), runtime=runtime,
                          pgd_masks=pgd_masks, transfer_held=transfer_held.get(str(eps_scalar(eps.value)), {}))
            _record(row, eps, run)
            held_all.append(run.held)
            task.advance(1, eps=eps.label, robust=run.robust)
        row.eps0_accuracy = _budget_accuracy(target, subset, 0.0, runtime=runtime, seed=seeds.eps0, batch_size=batch,
                                             cheap=True)
        task.advance(1)
        row.large_eps_accuracy = _budget_accuracy(target, subset, config.large_eps, runtime=runtime,
                                                  seed=seeds.large_eps, batch_size=batch)
        task.advance(1)
    outcome = ModelOutcome(
        stochastic=target.stochastic, clean=row.clean, eps0_accuracy=row.eps0_accuracy,
        large_eps_accuracy=row.large_eps_accuracy, held=held_all, grid=row.grid,
        eps_points=[(0.0, row.clean)] + [(eps_scalar(e.value), row.point(e.label).robust) for e in eps_values],
        evaluated_as_rand=target.stochastic and bool(target.entries) and target.suite_eot > 1 and plan.draws > 1)
    row.checks = model_checks(target.module, outcome, subset.images, subset.labels, runtime=runtime,
                              batch_size=batch, near_zero=config.near_zero)
    return row


def _eps_job(config: AdaptiveConfig, subset: Subset, eps: AdaptiveEps, seed: int, runtime: Runtime) -> EpsJob:
    """One eps's job: the suite seed of that eps, chunks of `chunk_size` (default batch_size) images."""
    return EpsJob(subset=subset, eps=eps, seed=seed, draws=config.plan.draws, batch_size=config.batch_size,
                  chunk_size=config.chunk_size or config.batch_size, record_dir=config.record_dir,
                  resume=config.resume, dist=config.dist,
                  extra={"evaluation_seed": config.seed, "device": str(runtime.device),
                         "precision": runtime.precision})


def _record(row: AdaptiveRow, eps: AdaptiveEps, run: EpsRun) -> None:
    """Add one eps's outcome to the model's row as its EpsPoint."""
    drawn = run.draws is not None
    row.set_point(EpsPoint(label=eps.label, robust=run.robust, eps=eps.value, attacks=dict(run.columns),
                           all_draws=run.all_draws if drawn else None, draws=run.draws if drawn else None,
                           route=run.route, passes=run.passes, record=run.record))


def _transfer_scores(module: torch.nn.Module, subset: Subset, copies: dict[str, TransferCopies], runtime: Runtime,
                     seeds: SeedPlan, batch_size: int) -> tuple[dict[str, float], dict[str, dict[str, torch.Tensor]]]:
    """({set: accuracy on its subset copies}, {eps key: {set: held bool (N,) over the whole subset}})."""
    transfer, held_by_eps = {}, {}
    for set_name, copy in copies.items():
        mask = correct_mask(module, copy.images, copy.labels, runtime, seed=seeds.clean, batch_size=batch_size)
        transfer[set_name] = float(mask.mean())
        held = torch.ones(len(subset), dtype=torch.bool)
        held[torch.as_tensor(copy.positions)] = torch.as_tensor(mask)
        held_by_eps.setdefault(str(eps_scalar(copy.eps)), {})[set_name] = held
    return transfer, held_by_eps


def _pgd_sweep(target: SuiteTarget, subset: Subset, eps: AdaptiveEps, row: AdaptiveRow, config: AdaptiveConfig,
               runtime: Runtime) -> list[np.ndarray]:
    """The PGD steps x restarts grid at one eps: per configuration the held mask (N,), each also
    appended to `row.grid` (its seed stream is the configuration's index over every eps)."""
    plan, masks = config.plan, []
    for steps in plan.sweep_steps:
        for restarts in plan.sweep_restarts:
            mask = attack_correct_mask(target.module, subset.images, subset.labels, runtime, eps=eps, steps=steps,
                                       restarts=restarts, eot=plan.pgd_eot(target.stochastic),
                                       seed=config.seeds.sweep(len(row.grid)), batch_size=config.batch_size)
            masks.append(mask)
            row.grid.append(GridPoint(eps.label, eps.value, steps, restarts, float(mask.mean())))
    return masks


def _budget_accuracy(target: SuiteTarget, subset: Subset, eps: float, *, runtime: Runtime, seed: int, batch_size: int,
                     cheap: bool = False) -> float:
    """Accuracy after the suite's first attack alone (APGD-CE when the suite is the PGD sweep alone)
    at `eps`: 0 for the eps=0 check (`cheap`: the fewest steps or queries, nothing can move) or
    the large-eps check's budget. At a budget, a deterministic model's images stop at their first
    adversarial iterate (early_stop): the check asks only whether each image breaks, and a broken
    image stays broken; a randomized model runs every step, so that its images hold up to fresh draws."""
    entry = first_entry(target.entries)
    if cheap:
        entry = cheap_entry(entry)
    elif not target.stochastic:
        entry = early_stop_entry(entry)
    attack = resolve_suite([entry], eps, runtime=runtime, common=target.common)
    return run_suite(target.module, subset.images, subset.labels, attack, runtime=runtime, seed=seed,
                     batch_size=batch_size).robust_accuracy
