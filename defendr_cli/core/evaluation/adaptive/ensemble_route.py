"""Ensembles attacked twice: through the combined output, and through the members' own losses.

An ensemble that averages softmax probabilities can hide its members' gradients: when one member
is confident, the averaged probability saturates and the combined output's gradient is weak, so an
attack on the combined output alone overstates the ensemble. `MemberLogProbSum` exposes every
member's own scores: its output is sum_m w_m * log_softmax(z_m) (N, K), where z_m are member m's
logits and w_m the ensemble's weights (M * w_m = 1 for equal weights, so the sum is plain).
Cross-entropy on that output equals the weighted sum of the members' own CE losses plus
log sum_k prod_m p_m(k)^(M w_m), a term that only rewards the members agreeing with each other;
its gradient is dominated by the members' own CE gradients.

`run_ensemble_suite` runs the suite on the combined output (`run_suite`), runs one more attack
(e.g. APGD-CE) against `MemberLogProbSum` on every clean-correct image, judges those images on the
real ensemble and keeps, per image, the worst case of the two. It records which one won.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.cascade import (AttackDetail, SuiteAttack, SuiteResult, attack_rows_counted,
                                                          margins, perturbation_norms, predict_logits, run_suite)
from defendr_cli.core.evaluation.adaptive.results import EnsembleRoute
from defendr_cli.core.models.ensemble import Ensemble
from defendr_cli.core.runtime import Runtime


class MemberLogProbSum(nn.Module):
    """sum_m (M * w_m) * log_softmax(member_m(x)), (N, K): attack target whose CE is the members' CE sum.

    `ensemble`: a core.models.ensemble.Ensemble (`members`, classifiers on pixels [0, 1], and
    `weights`, a tensor (M,) summing to 1).
    """

    def __init__(self, ensemble: Ensemble) -> None:
        super().__init__()
        if not isinstance(ensemble, Ensemble):
            raise InputError("the member-loss attack needs an ensemble (core.models.ensemble.Ensemble)")
        self.members = ensemble.members
        self.register_buffer("scale", ensemble.weights.detach().float() * len(ensemble.members), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(w * F.log_softmax(member(x).float(), dim=1) for w, member in zip(self.scale, self.members))


@dataclass
class EnsembleSuiteResult:
    """combined: the suite on the ensemble's output. member_loss_mask: bool (N,), still correct (on the
    real ensemble) after the member-loss attack (False for clean-misclassified images).
    robust_mask: bool (N,), the per-image worst case of both. robust_accuracy: its mean.
    wins: {'combined': images only the combined suite broke, 'member-loss': only the member-loss
    attack broke, 'both': both broke, 'neither': held against both} (clean-correct images only).
    winner: the attack route with more exclusive wins ('combined', 'member-loss' or 'tie').
    adv: float32 (N, 3, H, W) in [0, 1], the worst-case image per row. member_detail: the member
    attack's per-image AttackDetail (its counted passes, run, iteration, margin on the ensemble, norms)."""

    combined: SuiteResult
    member_loss_mask: torch.Tensor
    robust_mask: torch.Tensor
    robust_accuracy: float
    wins: dict[str, int]
    winner: str
    adv: torch.Tensor
    member_detail: AttackDetail | None = None

    def route_summary(self) -> EnsembleRoute:
        """What a report row keeps: the winner, the wins and both routes' accuracies."""
        return EnsembleRoute(winner=self.winner, wins=self.wins, combined=self.combined.robust_accuracy,
                             member_loss=float(self.member_loss_mask.float().mean()))

    def to_dict(self) -> dict:
        return {"combined": self.combined.to_dict(), "member_loss": float(self.member_loss_mask.float().mean()),
                "robust": self.robust_accuracy, "wins": dict(self.wins), "winner": self.winner}


def run_ensemble_suite(ensemble: Ensemble, images: torch.Tensor, labels: torch.Tensor,
                       attacks: Sequence[SuiteAttack], member_attack: SuiteAttack, *,
                       runtime: Runtime | None = None, seed: int = 0, batch_size: int = 256,
                       stochastic: bool = False, draws: int = 1) -> EnsembleSuiteResult:
    """Worst case per image of the suite on `ensemble` and `member_attack` on MemberLogProbSum(ensemble).

    images float32 (N, 3, H, W) in [0, 1], labels int64 (N,). The member attack runs on the
    images the ensemble classifies correctly when clean, in batches, with a CPU generator seeded
    from `seed`; its images are judged on the ensemble itself.
    """
    combined = run_suite(ensemble, images, labels, attacks, runtime=runtime, seed=seed, batch_size=batch_size,
                         stochastic=stochastic, draws=draws)
    surrogate = MemberLogProbSum(ensemble)
    images, labels = images.detach().float().cpu(), labels.detach().long().cpu()
    rows = torch.nonzero(combined.clean_mask).flatten()
    generator = torch.Generator().manual_seed(seed * 1_000_003 + 999)
    member_adv = images.clone()
    out = attack_rows_counted(member_attack, surrogate, images, labels, rows, generator, runtime=runtime,
                              batch_size=batch_size)
    member_mask = torch.zeros(len(labels), dtype=torch.bool)
    detail = _empty_detail(len(labels))
    if len(rows):
        member_adv[rows] = out.adv
        logits = predict_logits(ensemble, member_adv[rows], runtime=runtime, seed=seed + 999, batch_size=batch_size)
        member_mask[rows] = logits.argmax(dim=1) == labels[rows]
        detail.margin[rows] = margins(logits, labels[rows])
        detail.restart[rows] = torch.where(member_mask[rows], -1, out.restart)
        detail.iteration[rows] = torch.where(member_mask[rows], -1, out.iteration)
        detail.forward[rows], detail.backward[rows] = out.forward, out.backward
    detail.linf, detail.l2 = perturbation_norms(member_adv, images)
    wins, winner = route_from_masks(combined.clean_mask, combined.robust_mask, member_mask)
    robust_mask = combined.robust_mask & member_mask
    take_member = combined.clean_mask & ~member_mask & combined.robust_mask
    adv = torch.where(take_member[:, None, None, None], member_adv, combined.adv)
    return EnsembleSuiteResult(combined, member_mask, robust_mask, float(robust_mask.float().mean()),
                               wins, winner, adv, detail)


def _empty_detail(count: int) -> AttackDetail:
    minus = torch.full((count,), -1, dtype=torch.long)
    zeros = torch.zeros(count, dtype=torch.long)
    return AttackDetail(minus, minus.clone(), torch.zeros(count), torch.zeros(count), torch.zeros(count), zeros,
                        zeros.clone())


def route_from_masks(clean: torch.Tensor, combined_robust: torch.Tensor,
                     member_held: torch.Tensor) -> tuple[dict[str, int], str]:
    """(wins, winner) of the two routes from bool (N,) masks: clean-correct, held the combined suite,
    held the member-loss attack (see EnsembleSuiteResult)."""
    combined_broke = clean & ~combined_robust
    member_broke = clean & ~member_held
    wins = {"combined": int((combined_broke & ~member_broke).sum()),
            "member-loss": int((member_broke & ~combined_broke).sum()),
            "both": int((combined_broke & member_broke).sum()),
            "neither": int((clean & ~combined_broke & ~member_broke).sum())}
    winner = ("tie" if wins["combined"] == wins["member-loss"]
              else "combined" if wins["combined"] > wins["member-loss"] else "member-loss")
    return wins, winner
