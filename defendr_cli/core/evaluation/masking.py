"""Gradient-masking checks for an adaptive evaluation, each returning a `Check`.

They mirror AutoAttack's checks (randomized model, probability outputs, zero gradients, Square
beating the white-box attacks) and the checklist of Carlini et al. 2019, "On evaluating
adversarial robustness" (accuracy must not rise with the attack's budget; eps = 0 reproduces
clean accuracy; an unbounded-ish eps such as 64/255 drives accuracy to about 0%). A 'fail' means
the robust number should not be trusted as it stands; a 'warn' asks for a closer look.

The decision functions work on numbers and tensors (pure); `output_scores`, `input_gradients` and
`check_randomized` run a model. Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.suite import SuiteResult
from defendr_cli.core.runtime import Runtime

STATUSES = ("pass", "warn", "fail")


@dataclass(frozen=True)
class Check:
    """name: check id; status: 'pass' | 'warn' | 'fail'; value: the measured number (see each check);
    explanation: one line for the sanity table."""

    name: str
    status: str
    value: float
    explanation: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InputError(f"check status must be one of {', '.join(STATUSES)}, got '{self.status}'")

    def to_dict(self) -> dict:
        return asdict(self)


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


def suite_held_masks(result: SuiteResult, black_box: Sequence[str] = ("square",)
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(white_box_held, {black-box name: held}) from a cascade for `check_black_box_beats_white_box`:
    an image held the white-box attacks when it was clean-correct and none of them broke it."""
    broken_by = result.broken_by
    white_held = torch.tensor([b is None or b in black_box for b in broken_by], dtype=torch.bool) & result.clean_mask
    held = {name: torch.tensor([b != name for b in broken_by], dtype=torch.bool)
            for name in black_box if name in result.names}
    return white_held, held
