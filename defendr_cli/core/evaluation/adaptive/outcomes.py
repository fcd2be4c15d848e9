"""Per-image outcomes of the suite at one eps, and the accuracies computed from them.

`ImageOutcomes` holds, for n images of the subset (a chunk, or all of them), what the cascade
(core.evaluation.adaptive.cascade) decided per image and attack: the clean verdict, which attack
broke the image, the run and iteration, the margin and norms after each stage, and the counted
passes; for randomized models also the final images' verdicts and margins per draw. Extra routes
follow the cascade's attacks in `attacks`: 'member-loss' for ensembles
(core.evaluation.adaptive.ensemble_route) and 'pgd' for the PGD sweep (both break images on their
own, outside the cascade). Chunks are concatenated (`concat_outcomes`) and the report's numbers
come from the whole (`summarize`); the per-image record (core.evaluation.adaptive.record) stores
and restores them exactly. Accuracies are fractions in [0, 1], computed in float32 by torch as the
cascade does, so the numbers do not depend on how the images were chunked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.cascade import SuiteResult
from defendr_cli.core.evaluation.adaptive.ensemble_route import EnsembleSuiteResult, route_from_masks
from defendr_cli.core.evaluation.adaptive.results import EnsembleRoute
from defendr_cli.core.rows import RowRecord

MEMBER_ROUTE = "member-loss"
PGD_ROUTE = "pgd"
_PER_ATTACK = ("broken", "restart", "iteration", "margin", "linf", "l2", "forward", "backward")


@dataclass
class ImageOutcomes(RowRecord):
    """n images, A attacks (the first `cascade` are the suite's, in order; then extra routes), D draws.

    positions: int64 (n,) positions in the subset; labels int64 (n,); clean bool (n,), the cascade's
    clean verdict. Per attack (A, n): broken bool (the attack broke the image: for the cascade, the
    first attack that did), restart / iteration int64 (-1: not broken or unknown), margin / linf /
    l2 float32 (after the attack's stage; pixel units), forward / backward int64 counted passes.
    gradient_free: per cascade attack. draw_correct bool (D, n) and draw_margin float32 (D, n):
    the final images in each draw (randomized models; None otherwise).
    """

    rows_of = "positions"

    positions: np.ndarray
    labels: np.ndarray
    attacks: list[str]
    cascade: int
    gradient_free: list[bool]
    clean: np.ndarray
    broken: np.ndarray
    restart: np.ndarray
    iteration: np.ndarray
    margin: np.ndarray
    linf: np.ndarray
    l2: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    draw_correct: np.ndarray | None = None
    draw_margin: np.ndarray | None = None

    @property
    def stochastic(self) -> bool:
        return self.draw_correct is not None

    def standing(self) -> np.ndarray:
        """bool (n,): clean-correct and broken by none of the cascade's attacks."""
        return self.clean & ~self.broken[:self.cascade].any(axis=0)

    def route(self, name: str) -> int | None:
        """Index of extra route `name` in `attacks`, None when it did not run."""
        return self.attacks.index(name) if name in self.attacks[self.cascade:] else None


def outcomes_from_suite(result: SuiteResult, positions: np.ndarray, labels: torch.Tensor,
                        gradient_free: Sequence[bool]) -> ImageOutcomes:
    """The cascade's per-image outcomes (result.details must be filled, as run_suite does)."""
    if result.details is None:
        raise InputError("the suite result carries no per-image details")
    details = [result.details[name] for name in result.names]
    stack = {key: np.stack([getattr(d, key).numpy() for d in details]) if details else
             np.zeros((0, result.count), dtype=np.float32 if key in ("margin", "linf", "l2") else np.int64)
             for key in _PER_ATTACK[1:]}
    broken = np.array([[b == name for b in result.broken_by] for name in result.names], dtype=bool)
    broken = broken.reshape(len(result.names), result.count)
    return ImageOutcomes(
        np.asarray(positions, dtype=np.int64), labels.numpy().astype(np.int64), list(result.names), len(details),
        list(gradient_free), result.clean_mask.numpy().astype(bool), broken, **stack,
        draw_correct=None if result.draw_correct is None else result.draw_correct.numpy().astype(bool),
        draw_margin=None if result.draw_margin is None else result.draw_margin.numpy().astype(np.float32))


def with_route(outcomes: ImageOutcomes, name: str, broken: np.ndarray, **values: np.ndarray) -> ImageOutcomes:
    """`outcomes` with one more route `name` (bool (n,) broken; per-image `values` of _PER_ATTACK,
    defaults: -1 restart/iteration, margin/linf/l2 of the cascade's last stage, 0 passes)."""
    n, last = len(outcomes), max(outcomes.cascade - 1, 0)
    defaults = {"restart": np.full(n, -1, np.int64), "iteration": np.full(n, -1, np.int64),
                "margin": outcomes.margin[last] if outcomes.cascade else np.zeros(n, np.float32),
                "linf": outcomes.linf[last] if outcomes.cascade else np.zeros(n, np.float32),
                "l2": outcomes.l2[last] if outcomes.cascade else np.zeros(n, np.float32),
                "forward": np.zeros(n, np.int64), "backward": np.zeros(n, np.int64)}
    row = {"broken": np.asarray(broken, dtype=bool), **defaults, **values}
    stacked = {key: np.concatenate([getattr(outcomes, key), np.asarray(row[key])[None].astype(
        getattr(outcomes, key).dtype)]) for key in _PER_ATTACK}
    return replace(outcomes, attacks=[*outcomes.attacks, name], **stacked)


def outcomes_from_ensemble(result: EnsembleSuiteResult, positions: np.ndarray, labels: torch.Tensor,
                           gradient_free: Sequence[bool]) -> ImageOutcomes:
    """The combined suite's outcomes plus the member-loss route (images it broke on the ensemble)."""
    base = outcomes_from_suite(result.combined, positions, labels, gradient_free)
    member = result.member_detail
    broken = base.clean & ~result.member_loss_mask.numpy().astype(bool)
    values = {} if member is None else {key: getattr(member, key).numpy() for key in _PER_ATTACK[1:]}
    return with_route(base, MEMBER_ROUTE, broken, **values)


def concat_outcomes(parts: Sequence[ImageOutcomes]) -> ImageOutcomes:
    """One ImageOutcomes from chunks (same attacks), ordered by position."""
    if not parts:
        raise InputError("no outcomes to concatenate")
    first = parts[0]
    if any(p.attacks != first.attacks for p in parts):
        raise InputError("chunks of one suite ran different attacks")
    order = np.argsort(np.concatenate([p.positions for p in parts]), kind="stable")

    def cat(key: str, axis: int) -> np.ndarray | None:
        values = [getattr(p, key) for p in parts]
        if any(v is None for v in values):
            return None
        return np.concatenate(values, axis=axis).take(order, axis=axis)

    columns = {key: cat(key, 1) for key in (*_PER_ATTACK, "draw_correct", "draw_margin")}
    return replace(first, positions=cat("positions", 0), labels=cat("labels", 0), clean=cat("clean", 0), **columns)


def _fraction(mask: np.ndarray) -> float:
    return float(torch.from_numpy(np.ascontiguousarray(mask)).float().mean()) if mask.size else 0.0


@dataclass
class EpsSummary:
    """What one eps reports, from the outcomes of the whole subset: columns {attack: accuracy after
    it}, cumulative over the cascade; suite_robust: the suite's headline (mean over draws for a
    randomized model) on the combined output; robust_mask bool (n,): held everything (every draw,
    every route); draws: per-draw accuracies (randomized); route: the ensemble summary; white /
    black: held masks for the checks (gradient attacks; each gradient-free attack)."""

    columns: dict[str, float]
    suite_robust: float
    robust_mask: np.ndarray
    draws: list[float] | None
    route: EnsembleRoute | None
    white: np.ndarray
    black: dict[str, np.ndarray] = field(default_factory=dict)


def summarize(outcomes: ImageOutcomes) -> EpsSummary:
    """The eps's numbers (see EpsSummary); identical to the un-chunked cascade's."""
    clean, k = outcomes.clean, outcomes.cascade
    columns, standing = {}, clean.copy()
    for index, name in enumerate(outcomes.attacks[:k]):
        standing &= ~outcomes.broken[index]
        columns[name] = _fraction(standing)
    draws = None
    robust_mask, suite_robust = standing, _fraction(standing)
    if outcomes.stochastic:
        draws = [_fraction(row) for row in outcomes.draw_correct]
        robust_mask = standing & outcomes.draw_correct.all(axis=0)
        suite_robust = sum(draws) / len(draws)
    gradient = [i for i in range(k) if not outcomes.gradient_free[i]]
    white = clean & ~outcomes.broken[gradient].any(axis=0)
    black = {name: ~outcomes.broken[i] for i, name in enumerate(outcomes.attacks[:k]) if outcomes.gradient_free[i]}
    route = None
    member = outcomes.route(MEMBER_ROUTE)
    if member is not None:
        held = clean & ~outcomes.broken[member]
        wins, winner = route_from_masks(torch.from_numpy(clean), torch.from_numpy(robust_mask), torch.from_numpy(held))
        route = EnsembleRoute(winner=winner, wins=wins, combined=suite_robust, member_loss=_fraction(held))
        robust_mask, white = robust_mask & held, white & held
    return EpsSummary(columns, suite_robust, robust_mask, draws, route, white, black)
