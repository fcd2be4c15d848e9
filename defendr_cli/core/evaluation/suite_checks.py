"""The sanity table of the adaptive suite: gradient-masking checks and the Carlini et al. checklist.

`model_checks` runs every check of core.evaluation.masking on one model and returns them as
`SanityCheck`s (name, 'pass' | 'warn' | 'fail', one line each), in a fixed order:

    randomized, logits-output, zero-gradients, black-box-beats-white-box, monotone-in-eps,
    [monotone-in-steps, monotone-in-restarts when a PGD sweep ran], eps0-equals-clean,
    large-eps-near-zero
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from defendr_cli.core.evaluation import masking
from defendr_cli.core.evaluation.results import AdaptiveRow, SanityCheck
from defendr_cli.core.evaluation.sanity import check_monotone as grid_monotone
from defendr_cli.core.runtime import Runtime

PROBE_IMAGES = 16  # images used by the forward-only checks (randomized, output scores)


@dataclass
class HeldMasks:
    """Per-image outcome on the subset at one eps, bool (N,) each: `white_box` still correct after
    every white-box attack (clean-correct images only); `black_box` {attack or transfer set:
    still correct after it}."""

    white_box: torch.Tensor
    black_box: dict[str, torch.Tensor] = field(default_factory=dict)


def to_sanity(check: masking.Check) -> SanityCheck:
    return SanityCheck(check.name, check.status, check.explanation)


def monotone_tolerance(stochastic: bool, clean: float, count: int) -> float:
    """Allowed accuracy rise between budgets: one image (deterministic) or two binomial standard
    deviations of a difference (randomized), as a fraction of the subset."""
    if count <= 0:
        return 0.0
    if not stochastic:
        return 1.0 / count
    p = min(max(clean, 0.05), 0.95)
    return max(1.0 / count, 2.0 * math.sqrt(2.0 * p * (1 - p) / count))


def _gradients(module: nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime,
               batch_size: int) -> torch.Tensor:
    out = []
    for start in range(0, len(images), batch_size):
        x = runtime.to_device(images[start:start + batch_size])
        y = runtime.to_device(labels[start:start + batch_size])
        out.append(masking.input_gradients(module, x, y, runtime).cpu())
    return torch.cat(out) if out else images[:0]


def model_checks(module: nn.Module, row: AdaptiveRow, images: torch.Tensor, labels: torch.Tensor, *,
                 runtime: Runtime, held: Sequence[HeldMasks], eps_points: Sequence[tuple[float, float]],
                 evaluated_as_rand: bool, batch_size: int, near_zero: float) -> list[SanityCheck]:
    """Every check for one model. images (N, 3, H, W) in [0, 1] and labels (N,): the subset.
    held: per eps, the white-box and black-box outcomes. eps_points: (eps as a scalar, robust
    accuracy), clean included as eps 0. evaluated_as_rand: EOT gradients and several draws were
    used (what the 'rand' suite does). `row` gives clean, eps0 and large-eps accuracies and the
    PGD grid."""
    count = len(images)
    probe = runtime.to_device(images[:PROBE_IMAGES])
    checks = [masking.check_randomized(module, probe, suite="rand" if evaluated_as_rand else None, runtime=runtime),
              masking.check_output_scores(masking.output_scores(module, probe, runtime).cpu()),
              masking.check_zero_gradients(_gradients(module, images, labels, runtime, batch_size))]
    worst = None
    for entry in held:
        check = masking.check_black_box_beats_white_box(entry.white_box, entry.black_box)
        if worst is None or check.value > worst.value:
            worst = check
    checks.append(worst or masking.check_black_box_beats_white_box(torch.zeros(0, dtype=torch.bool), {}))
    tolerance = monotone_tolerance(row.stochastic, row.clean, count)
    checks.append(masking.check_monotone("eps", eps_points, tolerance=tolerance))
    out = [to_sanity(c) for c in checks]
    if row.grid:
        out += [c for c in grid_monotone(row, count) if c.name in ("monotone-in-steps", "monotone-in-restarts")]
    zero_tolerance = 0.0 if not row.stochastic else tolerance
    out.append(to_sanity(masking.check_eps_zero(row.clean, row.eps0_accuracy, tolerance=zero_tolerance,
                                                count=count)))
    out.append(to_sanity(masking.check_large_eps(row.large_eps_accuracy, near_zero=near_zero)))
    return out
