"""The adaptive evaluation as an attack suite (AutoAttack-style) on every model, plus the checks.

Per model and eps, on a seeded subset of the test split:

- the suite (core.evaluation.suite: each attack on the images still standing; 'auto' picks 'rand'
  for randomized models, 'standard' otherwise); randomized models get EOT gradients and their
  final images are classified over `draws` random draws;
- ensembles (modules with `members` and `weights`): also APGD-CE on the sum of the members' own
  losses (core.evaluation.ensemble_attack), the worst case per image kept and the winning route
  recorded;
- optionally the PGD step/restart sweep (`--attacks pgd`, the earlier protocol, same numbers):
  its worst case per image is one more column and enters the robust column.

Robust accuracy is the per-image worst case over everything that ran (for randomized models the
lower of the suite's mean-over-draws accuracy and the PGD sweep's worst case). The sanity table
(core.evaluation.suite_checks) is computed from the same runs. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defendr_cli.core.attacks.registry import attack_parameters
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive_partial import AdaptivePartials, file_signature
from defendr_cli.core.evaluation.adaptive import (LARGE_EPS, AdaptiveEps, attack_correct_mask, correct_mask,
                                                  subset_rows)
from defendr_cli.core.evaluation.ensemble_attack import run_ensemble_suite
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.predictions import is_stochastic
from defendr_cli.core.evaluation.results import AdaptiveResult, AdaptiveRow, AdaptiveSettings, GridPoint
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.evaluation.suite import (ATTACK_ENTRIES, DEFAULT_DRAWS, DEFAULT_RAND_EOT, SuiteEntry,
                                               choose_suite, resolve_suite, run_suite, suite_entries)
from defendr_cli.core.evaluation.suite_checks import HeldMasks, model_checks
from defendr_cli.core.io.adversarial import AdvSetReader
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.progress import NullReporter, Reporter
from defendr_cli.core.runtime import Runtime

PGD_LABEL = "pgd"
BLACK_BOX = ("square",)  # suite attacks that use no gradient
DEFAULT_PGD_EOT = 30


@dataclass(frozen=True)
class SuitePlan:
    """What to run: `suite` name ('auto' | 'standard' | 'rand' | 'quick' | 'custom'); `attacks` for
    custom ('pgd' means the PGD step/restart sweep and may be added to any suite);
    `square_queries` overrides Square's queries; `eot` gradient samples for randomized models
    (None: 20 for the suite, 30 for the PGD sweep); `draws` final random draws; `steps` /
    `restarts` the PGD sweep's grids."""

    suite: str = "auto"
    attacks: tuple[str, ...] = ()
    square_queries: int | None = None
    eot: int | None = None
    draws: int = DEFAULT_DRAWS
    steps: tuple[int, ...] = (10, 100)
    restarts: tuple[int, ...] = (1, 5)

    @property
    def pgd_sweep(self) -> bool:
        return PGD_LABEL in self.attacks

    @property
    def cascade_attacks(self) -> list[str]:
        return [a for a in self.attacks if a != PGD_LABEL]

    def suite_name(self) -> str:
        """'auto' with attacks given means 'custom'."""
        name = self.suite.strip().lower()
        return "custom" if name == "auto" and self.attacks else name

    def entries(self, stochastic: bool) -> tuple[str, list[SuiteEntry]]:
        """(resolved suite name, its entries; empty for a custom suite of 'pgd' alone)."""
        name = choose_suite(self.suite_name(), stochastic)
        if name == "custom" and not self.cascade_attacks:
            if not self.pgd_sweep:
                raise InputError("--suite custom needs --attacks, e.g. --attacks apgd-ce,square")
            return name, []
        overrides: dict[str, dict[str, Any]] = {}
        if self.square_queries is not None:
            if self.square_queries < 1:
                raise InputError(f"--square-queries must be at least 1, got {self.square_queries}")
            overrides["square"] = {"n_queries": self.square_queries}
        entries = suite_entries(name, stochastic=stochastic, attacks=self.cascade_attacks if name == "custom" else ())
        return name, [replace(e, params={**e.params, **overrides[e.label]}) if e.label in overrides else e
                      for e in entries]

    def check(self) -> None:
        if self.draws < 1 or (self.eot is not None and self.eot < 1):
            raise InputError("--draws and --eot must be positive integers")
        if self.pgd_sweep and (not self.steps or min(self.steps) < 1 or not self.restarts or min(self.restarts) < 1):
            raise InputError("--steps and --restarts must be positive integers")
        self.entries(False)
        self.entries(True)


@dataclass
class _EpsRun:
    columns: dict[str, float] = field(default_factory=dict)
    robust: float = 0.0
    all_draws: float | None = None
    draws: list[float] | None = None
    route: dict | None = None
    held: HeldMasks | None = None


def _member_entry(entries: Sequence[SuiteEntry]) -> SuiteEntry:
    return next((e for e in entries if e.label == "apgd-ce"), ATTACK_ENTRIES["apgd-ce"])


def _single_attack_accuracy(module, images, labels, entry: SuiteEntry, eps: float, *, runtime, common, seed,
                            batch_size, params: dict | None = None) -> float:
    entry = replace(entry, params={**entry.params, **(params or {})})
    attack = resolve_suite([entry], eps, runtime=runtime, common=common)
    return run_suite(module, images, labels, attack, runtime=runtime, seed=seed, batch_size=batch_size).robust_accuracy


def _run_eps(model: EvalModel, images, labels, eps: AdaptiveEps, entries, plan: SuitePlan, *, runtime, stochastic,
             common, pgd_masks, transfer_held, seed, batch_size) -> _EpsRun:
    module = model.module
    out = _EpsRun()
    white = torch.ones(len(labels), dtype=torch.bool)
    if pgd_masks is not None:
        pgd_held = torch.as_tensor(np.logical_and.reduce(pgd_masks))
        out.columns[PGD_LABEL] = float(pgd_held.float().mean())
        white &= pgd_held
    draws = plan.draws if stochastic else 1
    if entries:
        attacks = resolve_suite(entries, eps.as_attack_eps(), runtime=runtime, common=common)
        if hasattr(module, "members") and hasattr(module, "weights"):
            member = resolve_suite([_member_entry(entries)], eps.as_attack_eps(), runtime=runtime, common=common)[0]
            ens = run_ensemble_suite(module, images, labels, attacks, member, runtime=runtime, seed=seed,
                                     batch_size=batch_size, stochastic=stochastic, draws=draws)
            result, robust_mask = ens.combined, ens.robust_mask
            out.route = {"winner": ens.winner, "wins": ens.wins, "combined": ens.combined.robust_accuracy,
                         "member_loss": float(ens.member_loss_mask.float().mean())}
            white &= ens.member_loss_mask
        else:
            result = run_suite(module, images, labels, attacks, runtime=runtime, seed=seed, batch_size=batch_size,
                               stochastic=stochastic, draws=draws)
            robust_mask = result.robust_mask
        out.columns.update(result.accuracy_after)
        white &= result.clean_mask & torch.tensor([b is None or b in BLACK_BOX for b in result.broken_by])
        black = {name: torch.tensor([b != name for b in result.broken_by]) for name in BLACK_BOX if name in result.names}
        if pgd_masks is not None:
            robust_mask = robust_mask & pgd_held
        if stochastic:
            headline = result.robust_accuracy if out.route is None else float(robust_mask.float().mean())
            out.robust = min(headline, out.columns.get(PGD_LABEL, 1.0))
            out.all_draws, out.draws = float(robust_mask.float().mean()), list(result.draw_accuracies)
        else:
            out.robust = float(robust_mask.float().mean())
    else:
        black = {}
        out.robust = out.columns[PGD_LABEL]
    black.update({f"transfer:{k}": v for k, v in transfer_held.items()})
    out.held = HeldMasks(white, black)
    return out


def run_adaptive_suite(models: list[EvalModel], data_path: Path, *, runtime: Runtime, eps_values: list[AdaptiveEps],
                       plan: SuitePlan, subset: int | None = 200, seed: int = 0, batch_size: int = 128,
                       large_eps: float = LARGE_EPS, near_zero: float = 0.1, transfer_sets: Sequence[Path] = (),
                       reporter: Reporter | None = None, partial_dir: Path | None = None, resume: bool = False,
                       save_partials: bool = True) -> AdaptiveResult:
    """The suite (and optionally the PGD sweep) against every model, with the sanity table.

    Returns an AdaptiveResult whose rows have per-attack columns in `attacks` ({label: {eps label:
    accuracy after it ran}}, cumulative for the suite's attacks; 'pgd' the sweep's own worst
    case), `robust` {eps label: per-image worst case over everything}, `transfer` {cached set:
    accuracy on the subset's copies}, draws for randomized models and the route for ensembles.
    With `partial_dir` each model's row is saved there as it completes (when `save_partials`), and
    with `resume` a row saved with the same settings is reused instead of attacking that model
    again (core.evaluation.adaptive_partial).
    """
    if not models:
        raise InputError("no model to evaluate: give --model or --models")
    if not eps_values:
        raise InputError("the adaptive protocol needs at least one eps (--eps or cached adversarial sets)")
    plan.check()
    reporter = reporter or NullReporter()
    eps_values = sorted(eps_values, key=lambda e: eps_scalar(e.value))
    with SplitReader(data_path, "test") as reader:
        rows = subset_rows(len(reader), subset, seed)
        images = reader.read(rows)
        labels = torch.as_tensor(np.asarray(reader.labels)[rows], dtype=torch.int64)
    copies = _transfer_copies(transfer_sets, rows)
    steps, restarts = sorted(set(plan.steps)), sorted(set(plan.restarts))
    partials = AdaptivePartials(partial_dir, {
        "data": file_signature(data_path), "rows": rows.tolist(), "eps": [e.value for e in eps_values],
        "plan": [plan.suite, list(plan.attacks), plan.square_queries, plan.eot, plan.draws, steps, restarts],
        "seed": seed, "batch_size": batch_size, "large_eps": large_eps, "near_zero": near_zero,
        "transfer": [file_signature(p) for p in transfer_sets], "device": str(runtime.device),
        "precision": runtime.precision}, reuse=resume, write=save_partials)
    saved_rows = {model.key: partials.load(model.key) for model in models}  # read once: every rank decides alike
    results = []
    for model in models:
        if saved_rows[model.key] is not None:
            reporter.note(f"{model.name}: adaptive result of the interrupted run reused")
            results.append(saved_rows[model.key])
            continue
        module = model.module.eval()
        stochastic = is_stochastic(module, runtime.to_device(images[:2]))
        name, entries = plan.entries(stochastic)
        suite_eot = (plan.eot or DEFAULT_RAND_EOT) if stochastic else 1
        common = {"eot": suite_eot} if stochastic else {}
        clean = correct_mask(module, images, labels, runtime, seed=seed + 1, batch_size=batch_size)
        transfer, transfer_by_eps = {}, {}
        for set_name, (x, y, positions, set_eps) in copies.items():
            mask = correct_mask(module, x, y, runtime, seed=seed + 1, batch_size=batch_size)
            transfer[set_name] = float(mask.mean())
            held = torch.ones(len(rows), dtype=torch.bool)
            held[torch.as_tensor(positions)] = torch.as_tensor(mask)
            transfer_by_eps.setdefault(str(eps_scalar(set_eps)), {})[set_name] = held
        row = AdaptiveRow(name=model.name, kind=model.kind, stochastic=stochastic,
                          eot=suite_eot if entries else (plan.eot or DEFAULT_PGD_EOT) if stochastic else 1,
                          clean=float(clean.mean()), grid=[], robust={}, transfer=transfer, eps0_accuracy=0.0,
                          large_eps_accuracy=0.0, suite=name)
        held_all = []
        with reporter.task(f"{model.name}: adaptive suite ({name})", total=len(eps_values) + 2) as task:
            for index, eps in enumerate(eps_values):
                pgd_masks = None
                if plan.pgd_sweep:
                    pgd_eot = (plan.eot or DEFAULT_PGD_EOT) if stochastic else 1
                    pgd_masks = []
                    for s in steps:
                        for r in restarts:
                            mask = attack_correct_mask(module, images, labels, runtime, eps=eps, steps=s, restarts=r,
                                                       eot=pgd_eot, seed=seed + 1000 * len(row.grid),
                                                       batch_size=batch_size)
                            pgd_masks.append(mask)
                            row.grid.append(GridPoint(eps.label, eps.value, s, r, float(mask.mean())))
                run = _run_eps(model, images, labels, eps, entries, plan, runtime=runtime, stochastic=stochastic,
                               common=common, pgd_masks=pgd_masks,
                               transfer_held=transfer_by_eps.get(str(eps_scalar(eps.value)), {}),
                               seed=seed + 100 * index, batch_size=batch_size)
                for label, value in run.columns.items():
                    row.attacks.setdefault(label, {})[eps.label] = value
                row.robust[eps.label] = run.robust
                row.eps_values[eps.label] = eps.value
                if run.draws is not None:
                    row.all_draws[eps.label], row.draws[eps.label] = run.all_draws, run.draws
                if run.route is not None:
                    row.route[eps.label] = run.route
                held_all.append(run.held)
                task.advance(1, eps=eps.label, robust=run.robust)
            first = entries[0] if entries else ATTACK_ENTRIES["apgd-ce"]
            row.eps0_accuracy = _single_attack_accuracy(module, images, labels, first, 0.0, runtime=runtime,
                                                        common=common, seed=seed + 1, batch_size=batch_size,
                                                        params=_cheap(first))
            task.advance(1)
            row.large_eps_accuracy = _single_attack_accuracy(module, images, labels, first, large_eps, runtime=runtime,
                                                             common=common, seed=seed, batch_size=batch_size)
            task.advance(1)
        points = [(0.0, row.clean)] + [(eps_scalar(e.value), row.robust[e.label]) for e in eps_values]
        row.checks = model_checks(module, row, images, labels, runtime=runtime, held=held_all, eps_points=points,
                                  evaluated_as_rand=stochastic and bool(entries) and suite_eot > 1 and plan.draws > 1,
                                  batch_size=batch_size, near_zero=near_zero)
        partials.save(model.key, row)
        results.append(row)
    settings = AdaptiveSettings(eps=[e.label for e in eps_values], steps=steps if plan.pgd_sweep else [],
                                restarts=restarts if plan.pgd_sweep else [], eot=plan.eot or DEFAULT_RAND_EOT,
                                subset=len(rows), large_eps=large_eps, near_zero=near_zero,
                                suite={"name": plan.suite_name(), "attacks": list(plan.attacks),
                                       "square_queries": plan.square_queries, "draws": plan.draws,
                                       "pgd_sweep": plan.pgd_sweep})
    return AdaptiveResult(seed=seed, subset=rows.tolist(), settings=settings, models=results)


def _transfer_copies(paths: Sequence[Path], rows: np.ndarray) -> dict[str, tuple]:
    """{set name: (adversarial copies of the subset rows it holds (n, 3, H, W), labels (n,), their
    positions in the subset (n,), the set's eps)}; rows: the sorted subset rows of the test split."""
    out = {}
    for path in paths:
        with AdvSetReader(path) as reader:
            picked = np.flatnonzero(np.isin(reader.clean_indices, rows))
            positions = np.searchsorted(rows, np.asarray(reader.clean_indices)[picked])
            out[reader.info.name] = (reader.read(picked), torch.as_tensor(reader.labels[picked], dtype=torch.int64),
                                     positions, reader.info.eps)
    return out


def _cheap(entry: SuiteEntry) -> dict:
    """An attack at eps 0 cannot move an image: the fewest steps or queries do."""
    accepted = attack_parameters(entry.attack)
    return {k: 2 for k in ("steps", "n_queries") if k in accepted}
