"""The sanity table of an adaptive evaluation: one `Check` type, every check, and `model_checks`,
the one place that makes a model's table.

The checks mirror AutoAttack's (randomized model, probability outputs, zero gradients, a
gradient-free attack beating the gradient attacks) and the checklist of Carlini et al. 2019, "On
evaluating adversarial robustness" (accuracy must not rise with eps, steps or restarts; eps = 0
reproduces clean accuracy; an unbounded-ish eps such as 64/255 drives accuracy to about 0%). A
'fail' means the robust number should not be trusted as it stands; a 'warn' asks for a closer
look. Accuracies are fractions in [0, 1].

`model_checks` returns, in this fixed order:

    randomized, logits-output, zero-gradients, black-box-beats-white-box, monotone-in-eps,
    [monotone-in-steps, monotone-in-restarts when a PGD sweep ran], eps0-equals-clean,
    large-eps-near-zero

The decision functions work on numbers and tensors (pure); `output_scores`, `input_gradients` and
`check_randomized` run a model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.cascade import SuiteResult
from defendr_cli.core.evaluation.metrics import eps_scalar
from defendr_cli.core.runtime import Runtime

STATUSES = ("pass", "warn", "fail")
PROBE_IMAGES = 16  # images used by the forward-only checks (randomized, output scores)


@dataclass(frozen=True)
class Check:
    """name: check id; status: 'pass' | 'warn' | 'fail'; value: the measured number (see each
    check; None when read back from results.json, which stores name, status, detail and passed);
    detail: one line for the sanity table."""

    name: str
    status: str
    value: float | None
    detail: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InputError(f"check status must be one of {', '.join(STATUSES)}, got '{self.status}'")

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict) -> "Check":
        return cls(data["name"], data["status"], None, data["detail"])


@dataclass
class HeldMasks:
    """Per-image outcome on the subset at one eps, bool (N,) each: `white_box` still correct after
    every gradient attack (clean-correct images only); `black_box` {gradient-free attack or
    transfer set: still correct after it}."""

    white_box: torch.Tensor
    black_box: dict[str, torch.Tensor] = field(default_factory=dict)


class GridPointLike(Protocol):
    """One PGD sweep configuration (core.evaluation.adaptive.results.GridPoint)."""

    eps_label: str
    steps: int
    restarts: int
    accuracy: float


@dataclass(frozen=True)
class ModelOutcome:
    """What the sanity table reads about one model's adaptive run on a subset of `count` images.

    eps_points: (eps as a scalar, robust accuracy), clean included as eps 0. held: per eps, the
    gradient and gradient-free outcomes. grid: the PGD sweep (empty when none ran).
    evaluated_as_rand: EOT gradients and several draws were used (what the 'rand' suite does).
    """

    stochastic: bool
    clean: float
    eps0_accuracy: float
    large_eps_accuracy: float
    eps_points: Sequence[tuple[float, float]]
    held: Sequence[HeldMasks]
    grid: Sequence[GridPointLike]
    evaluated_as_rand: bool


def _autocast(runtime: Runtime | None):
    return runtime.autocast() if runtime is not None else contextlib.nullcontext()


@torch.no_grad()
def output_scores(model: nn.Module, images: torch.Tensor, runtime: Runtime | None = None) -> torch.Tensor:
    """The model's raw outputs (N, K) float32 on images (N, 3, H, W) in [0, 1] (eval mode, restored)."""
    training = model.training
    model.eval()
    try:
        with _autocast(runtime):
            return model(images).float()
    finally:
        model.train(training)


def check_randomized(model: nn.Module, images: torch.Tensor, *, suite: str | None = None, passes: int = 5,
                     tolerance: float = 1e-4, runtime: Runtime | None = None) -> Check:
    """Forward `passes` times; value: the largest difference between passes of the L2-normalized outputs.

    Deterministic: pass. Randomized: pass when evaluated with the 'rand' suite (EOT, several draws),
    else warn (a single-draw gradient attack overstates a randomized defense).
    """
    outputs = [output_scores(model, images, runtime) for _ in range(max(2, passes))]
    normed = [o / (o.norm(dim=1, keepdim=True) + 1e-10) for o in outputs]
    diff = max(float((a - b).norm(dim=1).max()) for i, a in enumerate(normed) for b in normed[i + 1:])
    if diff <= tolerance:
        return Check("randomized", "pass", diff, "deterministic: repeated forward passes agree")
    if suite == "rand":
        return Check("randomized", "pass", diff, "randomized model, evaluated with the rand suite (EOT, draws)")
    return Check("randomized", "warn", diff,
                 f"randomized model (outputs differ by {diff:.3g} between passes): use --suite rand")


def check_output_scores(outputs: torch.Tensor, *, tolerance: float = 1e-5) -> Check:
    """outputs (N, K). Probabilities (all in [0, 1], rows sum to 1): fail, attacks need logits.
    Log-probabilities (rows logsumexp to 0): warn, margin/DLR losses see saturated scores.
    value: max |row sum - 1| for probabilities, max |logsumexp| otherwise."""
    outputs = outputs.detach().float()
    sums = (outputs.sum(dim=1) - 1).abs().max()
    if float(outputs.min()) > -tolerance and float(outputs.max()) < 1 + tolerance and float(sums) < tolerance:
        return Check("logits-output", "fail", float(sums),
                     "outputs are probabilities (rows sum to 1): gradient attacks need logits")
    lse = float(torch.logsumexp(outputs, dim=1).abs().max())
    if lse < tolerance * 10:
        return Check("logits-output", "warn", lse,
                     "outputs are log-probabilities (e.g. averaged softmax): check margin losses and gradients")
    return Check("logits-output", "pass", lse, "outputs are unnormalized logits")


def input_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    runtime: Runtime | None = None) -> torch.Tensor:
    """d CE(model(x), y) / dx per image, float32 like `images` (N, 3, H, W) (zeros when the output does
    not depend on the input); model in eval mode, restored."""
    training = model.training
    model.eval()
    try:
        x = images.detach().float().requires_grad_(True)
        with torch.enable_grad():
            with _autocast(runtime):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels.long(), reduction="sum")
            (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
        # an output that does not depend on the input at all (e.g. thresholded pixels) has no gradient
        return torch.zeros_like(x) if grad is None else grad
    finally:
        model.train(training)


def check_zero_gradients(gradients: torch.Tensor, *, fail_share: float = 0.1) -> Check:
    """gradients (N, ...): value = share of images whose input gradient is exactly zero everywhere.
    0: pass; above 0: warn; at least `fail_share`: fail (gradient attacks cannot move those images)."""
    if gradients.shape[0] == 0:
        return Check("zero-gradients", "pass", 0.0, "no image to check")
    zero = gradients.detach().reshape(gradients.shape[0], -1).abs().sum(dim=1) == 0
    share = float(zero.float().mean())
    status = "pass" if share == 0 else "fail" if share >= fail_share else "warn"
    return Check("zero-gradients", status, share,
                 f"{int(zero.sum())} of {len(zero)} images have an exactly zero input gradient"
                 + ("" if share == 0 else ": gradient attacks are blind there"))


def check_black_box_beats_white_box(white_box_held: torch.Tensor, black_box_held: dict[str, torch.Tensor], *,
                                    warn_share: float = 0.002, fail_share: float = 0.02) -> Check:
    """white_box_held: bool (N,), still correct after every white-box attack; black_box_held: {name:
    bool (N,)} per black-box or transfer attack (Square, cached transfer sets), still correct after
    it. value: share of images a black-box attack broke although every white-box attack failed.
    <= warn_share: pass; above: warn; above fail_share: fail (white-box gradients are masked)."""
    if not black_box_held:
        return Check("black-box-beats-white-box", "pass", 0.0, "no black-box or transfer attack to compare")
    beaten = torch.zeros_like(white_box_held, dtype=torch.bool)
    names = []
    for name, held in black_box_held.items():
        hit = white_box_held & ~held
        if bool(hit.any()):
            names.append(name)
        beaten |= hit
    share = float(beaten.float().mean()) if beaten.numel() else 0.0
    status = "pass" if share <= warn_share else "fail" if share > fail_share else "warn"
    detail = (f"{int(beaten.sum())} images broken by {', '.join(names)} where every white-box attack failed"
              if names else "no black-box attack broke an image the white-box attacks missed")
    return Check("black-box-beats-white-box", status, share, detail)


def check_monotone(axis: str, points: Sequence[tuple[float, float]], *, tolerance: float = 0.0) -> Check:
    """points: (budget, accuracy) along `axis` ('eps', 'steps', 'queries', ...). Accuracy must not rise
    by more than `tolerance` as the budget grows. value: the largest rise found (0 when none)."""
    ordered = sorted(points, key=lambda p: p[0])
    rises = [(a, b, y - x) for (a, x), (b, y) in zip(ordered, ordered[1:]) if y - x > tolerance]
    worst = max((r[2] for r in rises), default=0.0)
    if not rises:
        return Check(f"monotone-in-{axis}", "pass", 0.0, f"accuracy does not rise with {axis}")
    a, b, rise = max(rises, key=lambda r: r[2])
    return Check(f"monotone-in-{axis}", "fail", worst,
                 f"accuracy rises by {100 * rise:.1f} points from {axis}={a:g} to {axis}={b:g}: attack too weak or masked")


def check_eps_zero(clean_accuracy: float, eps0_accuracy: float, *, tolerance: float = 0.0,
                   count: int | None = None) -> Check:
    """An attack with eps = 0 must reproduce clean accuracy (same images, seeded randomness).
    value: |eps0 - clean|; above `tolerance` (0 for deterministic models): fail. With `count`
    (images) the accuracies are compared as numbers of correct images, so a fraction computed in
    float32 and the same fraction in float64 (0.99 vs 0.9900000095) are equal, as they should be."""
    gap = abs(eps0_accuracy - clean_accuracy)
    if count:
        gap = abs(round(eps0_accuracy * count) - round(clean_accuracy * count)) / count
    if gap <= tolerance:
        return Check("eps0-equals-clean", "pass", gap, f"eps=0 gives the clean accuracy {100 * clean_accuracy:.1f}%")
    return Check("eps0-equals-clean", "fail", gap,
                 f"eps=0 gives {100 * eps0_accuracy:.1f}% vs clean {100 * clean_accuracy:.1f}%: the attack changes images it should not")


def check_large_eps(accuracy: float, *, eps_label: str = "64/255", near_zero: float = 0.1,
                    fail_above: float = 0.5) -> Check:
    """A very large eps must drive accuracy to about 0. value: the accuracy left.
    <= near_zero: pass; above: warn; above fail_above: fail (gradients are almost certainly masked)."""
    status = "pass" if accuracy <= near_zero else "fail" if accuracy > fail_above else "warn"
    text = f"eps={eps_label} leaves {100 * accuracy:.1f}%"
    if status != "pass":
        text += f" (> {100 * near_zero:.0f}%): possible gradient masking"
    return Check("large-eps-near-zero", status, accuracy, text)


def suite_held_masks(result: SuiteResult, black_box: Sequence[str]) -> HeldMasks:
    """The held masks of a cascade for `check_black_box_beats_white_box`: an image held the gradient
    attacks when it was clean-correct and none of them broke it. black_box: the labels of the
    suite's gradient-free attacks (`SuiteAttack.gradient_free`)."""
    broken_by = result.broken_by
    white_held = torch.tensor([b is None or b in black_box for b in broken_by], dtype=torch.bool) & result.clean_mask
    held = {name: torch.tensor([b != name for b in broken_by], dtype=torch.bool)
            for name in black_box if name in result.names}
    return HeldMasks(white_held, held)


def monotone_tolerance(stochastic: bool, clean: float, count: int) -> float:
    """Allowed accuracy rise between budgets: one image (deterministic) or two binomial standard
    deviations of a difference (randomized), as a fraction of the subset."""
    if count <= 0:
        return 0.0
    if not stochastic:
        return 1.0 / count
    p = min(max(clean, 0.05), 0.95)
    return max(1.0 / count, 2.0 * math.sqrt(2.0 * p * (1 - p) / count))


def _rises(sequence: list[tuple[str, float]], tol: float) -> list[str]:
    """Pairs of consecutive settings where accuracy rose by more than `tol`."""
    return [f"{a} {100 * x:.1f}% -> {b} {100 * y:.1f}%"
            for (a, x), (b, y) in zip(sequence, sequence[1:]) if y > x + tol]


def check_grid_monotone(axis: str, grid: Sequence[GridPointLike], *, tolerance: float) -> Check:
    """The PGD sweep's accuracy must not rise with `axis` ('steps' or 'restarts') at a fixed eps and
    fixed other setting. value: the number of rises found."""
    other = "restarts" if axis == "steps" else "steps"
    groups: dict[tuple, list[GridPointLike]] = {}
    for g in grid:
        groups.setdefault((g.eps_label, getattr(g, other)), []).append(g)
    problems = []
    for items in groups.values():
        ordered = sorted(items, key=lambda g: getattr(g, axis))
        problems += _rises([(f"{axis}={getattr(g, axis)}", g.accuracy) for g in ordered], tolerance)
    detail = "; ".join(problems[:3]) if problems else f"non-increasing (tolerance {100 * tolerance:.1f} points)"
    return Check(f"monotone-in-{axis}", "fail" if problems else "pass", float(len(problems)), detail)


def _gradients(module: nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime,
               batch_size: int) -> torch.Tensor:
    out = []
    for start in range(0, len(images), batch_size):
        x = runtime.to_device(images[start:start + batch_size])
        y = runtime.to_device(labels[start:start + batch_size])
        out.append(input_gradients(module, x, y, runtime).cpu())
    return torch.cat(out) if out else images[:0]


def _worst_black_box(held: Sequence[HeldMasks]) -> Check:
    """The black-box check at the eps where it found the largest share."""
    worst = None
    for entry in held:
        check = check_black_box_beats_white_box(entry.white_box, entry.black_box)
        if worst is None or check.value > worst.value:
            worst = check
    return worst or check_black_box_beats_white_box(torch.zeros(0, dtype=torch.bool), {})


def model_checks(module: nn.Module, outcome: ModelOutcome, images: torch.Tensor, labels: torch.Tensor, *,
                 runtime: Runtime, batch_size: int, near_zero: float) -> list[Check]:
    """The sanity table of one model (order in the module docstring). images (N, 3, H, W) in [0, 1]
    and labels (N,): the subset the outcome was measured on."""
    count = len(images)
    probe = runtime.to_device(images[:PROBE_IMAGES])
    tolerance = monotone_tolerance(outcome.stochastic, outcome.clean, count)
    checks = [check_randomized(module, probe, suite="rand" if outcome.evaluated_as_rand else None, runtime=runtime),
              check_output_scores(output_scores(module, probe, runtime).cpu()),
              check_zero_gradients(_gradients(module, images, labels, runtime, batch_size)),
              _worst_black_box(outcome.held),
              check_monotone("eps", outcome.eps_points, tolerance=tolerance)]
    if outcome.grid:
        checks += [check_grid_monotone(axis, outcome.grid, tolerance=tolerance) for axis in ("steps", "restarts")]
    zero_tolerance = 0.0 if not outcome.stochastic else tolerance
    checks.append(check_eps_zero(outcome.clean, outcome.eps0_accuracy, tolerance=zero_tolerance, count=count))
    checks.append(check_large_eps(outcome.large_eps_accuracy, near_zero=near_zero))
    return checks
