"""One model at one eps: the suite in chunks (core.evaluation.adaptive.chunked), its per-image record,
its counted passes, combined with the PGD sweep's masks into the numbers a report row keeps.

`SuiteTarget` is a model as attacked (its suite, EOT); `EpsJob` everything else one eps needs
(subset, eps, seed, draws, batch and chunk sizes, the record's folder and header inputs, the
process group). `run_eps` returns an `EpsRun`. Accuracies are fractions in [0, 1]; passes are
counts of forward/backward passes through the model (core.attacks.counting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from defendr_cli.core.distributed import SINGLE, DistContext
from defendr_cli.core.evaluation.adaptive.cascade import SuiteAttack, run_suite
from defendr_cli.core.evaluation.adaptive.chunked import ChunkRun, run_chunks
from defendr_cli.core.evaluation.adaptive.ensemble_route import run_ensemble_suite
from defendr_cli.core.evaluation.adaptive.eps import AdaptiveEps
from defendr_cli.core.evaluation.adaptive.outcomes import (MEMBER_ROUTE, PGD_ROUTE, ImageOutcomes,
                                                           outcomes_from_ensemble, outcomes_from_suite, summarize,
                                                           with_route)
from defendr_cli.core.evaluation.adaptive.plan import PGD_LABEL, SuiteEntry, entry_budget, member_entry, resolve_suite
from defendr_cli.core.evaluation.adaptive.record import OutcomeLayout, SuiteRecord, record_filename, rows_digest
from defendr_cli.core.evaluation.adaptive.results import EnsembleRoute
from defendr_cli.core.evaluation.adaptive.seeds import SeedPlan
from defendr_cli.core.evaluation.adaptive.subset import Subset
from defendr_cli.core.evaluation.checks import HeldMasks
from defendr_cli.core.evaluation.predictions import seeded_randomness
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.io.per_image_record import RecordHeader
from defendr_cli.core.models.ensemble import Ensemble
from defendr_cli.core.runtime import Runtime


@dataclass(frozen=True)
class SuiteTarget:
    """One model as attacked: its module, whether it is randomized, its suite and the EOT the
    suite's attacks use (`common` holds it for every attack that takes it)."""

    model: EvalModel
    module: torch.nn.Module
    stochastic: bool
    suite: str
    entries: list[SuiteEntry]
    suite_eot: int
    common: dict

    def budgets(self) -> dict[str, dict]:
        """{attack label: what it ran with} (plan.entry_budget), the member-loss route's for ensembles."""
        out = {entry.label: entry_budget(entry, self.common) for entry in self.entries}
        if isinstance(self.module, Ensemble) and self.entries:
            out[MEMBER_ROUTE] = entry_budget(member_entry(self.entries), self.common)
        return out


@dataclass(frozen=True)
class EpsJob:
    """What one eps needs besides the target: the subset, the eps, the suite seed of this eps,
    draws (randomized models), batch_size (images per attack batch), chunk_size (images per
    resumable, shardable chunk), record_dir (None: no per-image record), resume, the process
    group, and `extra` (JSON-able settings the record's header also depends on)."""

    subset: Subset
    eps: AdaptiveEps
    seed: int
    draws: int
    batch_size: int
    chunk_size: int
    record_dir: Path | None = None
    resume: bool = False
    dist: DistContext = SINGLE
    extra: dict = field(default_factory=dict)


@dataclass
class EpsRun:
    """One eps of one model: per-attack columns, the robust accuracy and what the checks need;
    passes {attack: {'forward', 'backward', 'images'}, 'total': {...}}; record: the record's file name."""

    columns: dict[str, float] = field(default_factory=dict)
    robust: float = 0.0
    all_draws: float | None = None
    draws: list[float] | None = None
    route: EnsembleRoute | None = None
    held: HeldMasks | None = None
    passes: dict | None = None
    record: str | None = None


def _chunk_runner(target: SuiteTarget, job: EpsJob, attacks: Sequence[SuiteAttack], runtime: Runtime,
                  pgd_held: torch.Tensor | None) -> ChunkRun:
    """The suite on chunk [start, stop) of the subset, seeded by chunk (global randomness too, so a
    randomized model's draws inside the attacks repeat from run to run), with the member-loss route
    (ensembles) and the PGD sweep's verdict."""
    gradient_free = [a.gradient_free for a in attacks]
    draws = job.draws if target.stochastic else 1
    member = None
    if isinstance(target.module, Ensemble):
        member = resolve_suite([member_entry(target.entries)], job.eps.as_attack_eps(), runtime=runtime,
                               common=target.common)[0]

    def run(index: int, start: int, stop: int) -> ImageOutcomes:
        seed = SeedPlan.chunk(job.seed, index)
        images, labels = job.subset.images[start:stop], job.subset.labels[start:stop]
        positions = np.arange(start, stop)
        common = dict(runtime=runtime, seed=seed, batch_size=job.batch_size, stochastic=target.stochastic,
                      draws=draws)
        with seeded_randomness(seed, runtime):  # every chunk, the first too: a randomized model's draws repeat
            if member is not None:
                ens = run_ensemble_suite(target.module, images, labels, attacks, member, **common)
                outcome = outcomes_from_ensemble(ens, positions, labels, gradient_free)
            else:
                result = run_suite(target.module, images, labels, attacks, **common)
                outcome = outcomes_from_suite(result, positions, labels, gradient_free)
        if pgd_held is not None:
            outcome = with_route(outcome, PGD_ROUTE, outcome.clean & ~pgd_held[start:stop].numpy())
        return outcome

    return run


def _suite_record(target: SuiteTarget, job: EpsJob, layout: OutcomeLayout) -> SuiteRecord | None:
    if job.record_dir is None:
        return None
    eps = job.eps.value
    header = RecordHeader(
        suite=target.suite, budgets=target.budgets(), eps=[float(v) for v in eps] if isinstance(eps, (list, tuple))
        else float(eps), seed=job.seed, model_fingerprint=target.model.fingerprint,
        extra={**job.extra, "model": target.model.name, "model_key": target.model.key, "eps": job.eps.label,
               "attacks": list(layout.attacks), "draws": layout.draws, "chunk_size": job.chunk_size,
               "batch_size": job.batch_size, "subset_rows": rows_digest(job.subset.rows),
               "subset_size": len(job.subset)})
    source_ids = job.subset.source_ids or tuple(str(int(r)) for r in job.subset.rows)
    return SuiteRecord(job.record_dir / record_filename(target.model.name, job.eps.label), header,
                       job.subset.rows, source_ids, layout, resume=job.resume, write=job.dist.is_main)


def suite_outcomes(target: SuiteTarget, job: EpsJob, attacks: Sequence[SuiteAttack], runtime: Runtime,
                   pgd_held: torch.Tensor | None) -> tuple[ImageOutcomes, str | None]:
    """(the outcomes over the whole subset, the record's file name or None)."""
    routes = ((MEMBER_ROUTE,) if isinstance(target.module, Ensemble) else ()) + \
        ((PGD_ROUTE,) if pgd_held is not None else ())
    layout = OutcomeLayout(tuple(a.name for a in attacks) + routes, len(attacks),
                           tuple(a.gradient_free for a in attacks), job.draws if target.stochastic else 0)
    record = _suite_record(target, job, layout)
    runner = _chunk_runner(target, job, attacks, runtime, pgd_held)
    try:
        outcomes = run_chunks(runner, len(job.subset), job.chunk_size, record=record, dist=job.dist)
        path = record.finish() if record is not None else None
    except BaseException:
        if record is not None:
            record.close()
        raise
    return outcomes, (path.name if path is not None else (record.path.name if record is not None else None))


def passes_summary(outcomes: ImageOutcomes) -> dict:
    """{attack: {'forward', 'backward' (sums over the subset), 'images' (images it attacked)},
    'total': {'forward', 'backward'}}: the counted cost (the PGD sweep is not counted)."""
    out, forward, backward = {}, 0, 0
    for index, name in enumerate(outcomes.attacks):
        if name == PGD_ROUTE:
            continue
        f, b = int(outcomes.forward[index].sum()), int(outcomes.backward[index].sum())
        out[name] = {"forward": f, "backward": b, "images": int((outcomes.forward[index] > 0).sum())}
        forward, backward = forward + f, backward + b
    out["total"] = {"forward": forward, "backward": backward}
    return out


def run_eps(target: SuiteTarget, job: EpsJob, *, runtime: Runtime, pgd_masks: list[np.ndarray] | None,
            transfer_held: dict[str, torch.Tensor]) -> EpsRun:
    """The suite (and the ensemble route) at one eps, combined with the PGD sweep's masks."""
    out = EpsRun()
    white = torch.ones(len(job.subset), dtype=torch.bool)
    transfer = {f"transfer:{k}": v for k, v in transfer_held.items()}
    pgd_held = None
    if pgd_masks is not None:
        pgd_held = torch.as_tensor(np.logical_and.reduce(pgd_masks))
        out.columns[PGD_LABEL] = float(pgd_held.float().mean())
        white &= pgd_held
    if not target.entries:
        out.robust, out.held = out.columns[PGD_LABEL], HeldMasks(white, transfer)
        return out
    attacks = resolve_suite(target.entries, job.eps.as_attack_eps(), runtime=runtime, common=target.common)
    outcomes, out.record = suite_outcomes(target, job, attacks, runtime, pgd_held)
    summary = summarize(outcomes)
    out.columns.update(summary.columns)
    out.route, out.passes = summary.route, passes_summary(outcomes)
    out.held = HeldMasks(white & torch.from_numpy(summary.white),
                         {**{k: torch.from_numpy(v) for k, v in summary.black.items()}, **transfer})
    robust_mask = torch.from_numpy(summary.robust_mask)
    if pgd_held is not None:
        robust_mask = robust_mask & pgd_held
    if target.stochastic:
        headline = summary.suite_robust if out.route is None else float(robust_mask.float().mean())
        out.robust = min(headline, out.columns.get(PGD_LABEL, 1.0))
        out.all_draws, out.draws = float(robust_mask.float().mean()), list(summary.draws)
    else:
        out.robust = float(robust_mask.float().mean())
    return out
