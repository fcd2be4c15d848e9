"""Sanity checks of an adaptive evaluation (Carlini et al. 2019, "On evaluating adversarial robustness").

1. eps = 0 reproduces clean accuracy exactly (same images, same seeded randomness).
2. Accuracy never rises with eps, nor with steps or restarts (within a tolerance of one image for
   deterministic models, two binomial standard deviations for randomized ones).
3. A large eps (64/255) drives accuracy near 0; otherwise gradients are probably masked
   (status 'warn': the defense's numbers should not be trusted).
"""

from __future__ import annotations

import math

from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.evaluation.results import AdaptiveRow, GridPoint, SanityCheck

__all__ = ["SanityCheck", "tolerance", "check_eps_zero", "check_monotone", "check_large_eps", "run_checks"]


def tolerance(entry: AdaptiveRow, count: int) -> float:
    """Allowed rise in accuracy between two attack settings (fraction of the subset)."""
    if count <= 0:
        return 0.0
    if not entry.stochastic:
        return 1.0 / count
    p = min(max(entry.clean, 0.05), 0.95)
    return max(1.0 / count, 2.0 * math.sqrt(2.0 * p * (1 - p) / count))


def check_eps_zero(entry: AdaptiveRow) -> SanityCheck:
    clean, zero = entry.clean, entry.eps0_accuracy
    zeros = [g.accuracy for g in entry.grid if _is_zero(g.eps)]
    ok = zero == clean and all(a == clean for a in zeros)
    return SanityCheck("eps0-equals-clean", "pass" if ok else "fail",
                       f"clean {100 * clean:.2f}%, eps=0 attack {100 * zero:.2f}%")


def _is_zero(eps) -> bool:
    values = eps if isinstance(eps, list) else [eps]
    return all(float(v) == 0.0 for v in values)


def _rises(sequence: list[tuple[str, float]], tol: float) -> list[str]:
    """Pairs of consecutive settings where accuracy rose by more than `tol`."""
    return [f"{a} {100 * x:.1f}% -> {b} {100 * y:.1f}%"
            for (a, x), (b, y) in zip(sequence, sequence[1:]) if y > x + tol]


def _order_key(order_by: str):
    return (lambda g: eps_scalar(g.eps)) if order_by == "eps" else (lambda g: getattr(g, order_by))


def _setting(g: GridPoint, order_by: str) -> str:
    return f"{order_by}={g.eps_label if order_by == 'eps' else getattr(g, order_by)}"


def check_monotone(entry: AdaptiveRow, count: int) -> list[SanityCheck]:
    """Accuracy must not rise with eps (clean counts as eps 0), steps or restarts."""
    tol = tolerance(entry, count)
    checks = []
    for axis, group_by, order_by in (("eps", ("steps", "restarts"), "eps"),
                                     ("steps", ("eps_label", "restarts"), "steps"),
                                     ("restarts", ("eps_label", "steps"), "restarts")):
        groups: dict[tuple, list[GridPoint]] = {}
        for g in entry.grid:
            groups.setdefault(tuple(getattr(g, k) for k in group_by), []).append(g)
        problems = []
        for items in groups.values():
            seq = [(_setting(g, order_by), g.accuracy) for g in sorted(items, key=_order_key(order_by))]
            if axis == "eps":
                seq = [("clean", entry.clean)] + seq
            problems += _rises(seq, tol)
        status = "fail" if problems else "pass"
        detail = "; ".join(problems[:3]) if problems else f"non-increasing (tolerance {100 * tol:.1f} points)"
        checks.append(SanityCheck(f"monotone-in-{axis}", status, detail))
    return checks


def check_large_eps(entry: AdaptiveRow, near_zero: float) -> SanityCheck:
    acc = entry.large_eps_accuracy
    if acc <= near_zero:
        return SanityCheck("large-eps-near-zero", "pass", f"eps=64/255 leaves {100 * acc:.2f}%")
    return SanityCheck("large-eps-near-zero", "warn",
                       f"eps=64/255 leaves {100 * acc:.2f}% (> {100 * near_zero:.0f}%): possible gradient masking")


def run_checks(entry: AdaptiveRow, *, count: int, near_zero: float = 0.1) -> list[SanityCheck]:
    """Every check on one model's adaptive row (see core.evaluation.adaptive_suite.run_adaptive_suite)."""
    return [check_eps_zero(entry), *check_monotone(entry, count), check_large_eps(entry, near_zero)]
