"""AutoAttack-style cascade (Croce & Hein 2020): several attacks, each on the images still standing.

`run_suite` first classifies the clean images; every attack then runs only on the images that are
still classified correctly after the attacks before it, so the accuracy after the last attack is
the per-image worst case over the whole suite (the robust accuracy). Each attack is a
`SuiteAttack(name, run)` where `run(model, images, labels, generator) -> AttackResult`; whether an
image is broken is decided here, by the model's own prediction on the returned images (an attack's
`success` flag is not trusted: a targeted attack may miss its target and still misclassify).

Randomized models: the cascade decides with one seeded forward pass per stage; the final
adversarial images are then classified over `draws` seeded random draws. The headline robust
accuracy is the mean accuracy over draws and `all_draws_accuracy` the share of images correct in
every draw (a single draw overstates a randomized defense).

Which attacks a suite holds is decided in core.evaluation.adaptive.plan; the cascade only runs
`SuiteAttack`s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackResult
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.predictions import seeded_randomness
from defendr_cli.core.runtime import Runtime

AttackRun = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], AttackResult]


@dataclass(frozen=True)
class SuiteAttack:
    """One attack of a cascade: `name` (report column) and `run(model, images, labels, generator)`.

    images: float32 (n, 3, H, W) in [0, 1] on the model's device; labels int64 (n,); generator: a
    seeded CPU torch.Generator for the attack's random choices. Returns an AttackResult whose
    `adv` (n, 3, H, W) in [0, 1] is kept. gradient_free: the attack uses no gradient (Square), so
    an image it breaks that every gradient attack missed points to gradient masking.
    """

    name: str
    run: AttackRun
    gradient_free: bool = False


@dataclass
class SuiteResult:
    """Outcome of `run_suite` on N images.

    names: the attacks in order. clean_accuracy: fraction in [0, 1] (one seeded draw).
    accuracy_after: {attack name: accuracy after it ran}, cumulative, so non-increasing.
    robust_accuracy: the headline: the last column for deterministic models, the mean accuracy
    over `draws` draws on the final images for randomized ones. all_draws_accuracy: share of
    images correct in every draw (== robust_accuracy for deterministic models). draw_accuracies:
    one accuracy per draw. clean_mask, robust_mask: bool (N,) (robust: correct after the cascade
    and in every draw). broken_by: per image the first attack that broke it, 'clean' for images
    misclassified before any attack, None for images that held. adv: float32 (N, 3, H, W) in
    [0, 1], the final image of each row (the breaking attack's output; the last attack's output
    for images that held; the clean image for 'clean' rows). attacked/broken: per attack, how many
    images it ran on and how many it broke.
    """

    names: list[str]
    clean_accuracy: float
    accuracy_after: dict[str, float]
    robust_accuracy: float
    all_draws_accuracy: float
    draw_accuracies: list[float]
    clean_mask: torch.Tensor
    robust_mask: torch.Tensor
    broken_by: list[str | None]
    adv: torch.Tensor
    attacked: dict[str, int]
    broken: dict[str, int]
    stochastic: bool = False

    @property
    def count(self) -> int:
        return len(self.broken_by)

    def columns(self) -> dict[str, float]:
        """Report columns in order: clean, one per attack, robust."""
        return {"clean": self.clean_accuracy, **self.accuracy_after, "robust": self.robust_accuracy}

    def to_dict(self) -> dict:
        """JSON-able summary (no images)."""
        return {"attacks": list(self.names), "clean": self.clean_accuracy, "after": dict(self.accuracy_after),
                "robust": self.robust_accuracy, "all_draws": self.all_draws_accuracy,
                "draws": list(self.draw_accuracies), "stochastic": self.stochastic, "count": self.count,
                "attacked": dict(self.attacked), "broken": dict(self.broken),
                "robust_rows": torch.nonzero(self.robust_mask).flatten().tolist()}


def _to(runtime: Runtime | None, tensor: torch.Tensor) -> torch.Tensor:
    return runtime.to_device(tensor) if runtime is not None else tensor


def predict_classes(model: nn.Module, images: torch.Tensor, *, runtime: Runtime | None = None, seed: int = 0,
                    batch_size: int = 256) -> torch.Tensor:
    """argmax of `model` on images (N, 3, H, W) [0, 1], int64 (N,) on the CPU; global randomness
    (randomized defenses) seeded by `seed` and restored afterwards."""
    out = []
    rt = runtime or Runtime()
    with torch.no_grad(), seeded_randomness(seed, rt):
        for start in range(0, len(images), batch_size):
            x = _to(runtime, images[start:start + batch_size])
            with rt.autocast():
                out.append(model(x).float().argmax(dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def attack_rows(attack: SuiteAttack, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                rows: torch.Tensor, generator: torch.Generator, *, runtime: Runtime | None,
                batch_size: int) -> torch.Tensor:
    """`attack` on the given rows of images (N, 3, H, W) [0, 1] / labels (N,) (CPU), in batches of
    `batch_size` sharing `generator`: float32 (len(rows), 3, H, W) in [0, 1] on the CPU."""
    outputs = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        result = attack.run(model, _to(runtime, images[batch]), _to(runtime, labels[batch]), generator)
        outputs.append(result.adv.detach().float().cpu())
    return torch.cat(outputs) if outputs else images[:0]


def run_suite(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attacks: Sequence[SuiteAttack], *,
              runtime: Runtime | None = None, seed: int = 0, batch_size: int = 256, stochastic: bool = False,
              draws: int = 1) -> SuiteResult:
    """Run the cascade (see the module docstring). images: float32 (N, 3, H, W) in [0, 1] (CPU);
    labels: int64 (N,). Attack i gets a CPU generator seeded from (seed, i); the cascade's forward
    passes use seeded global randomness. `draws` only matters for stochastic models."""
    if images.dim() != 4 or labels.shape != (images.shape[0],):
        raise InputError(f"run_suite needs images (N, 3, H, W) and labels (N,), got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    names = [a.name for a in attacks]
    if len(set(names)) != len(names):
        raise InputError(f"attack names must be distinct in a suite: {', '.join(names)}")
    if draws < 1 or batch_size < 1:
        raise InputError(f"draws and batch_size must be >= 1 (got {draws}, {batch_size})")
    images, labels = images.detach().float().cpu(), labels.detach().long().cpu()
    clean_mask = predict_classes(model, images, runtime=runtime, seed=seed, batch_size=batch_size) == labels
    standing = clean_mask.clone()
    broken_by: list[str | None] = [None if ok else "clean" for ok in clean_mask.tolist()]
    adv = images.clone()
    accuracy_after, attacked, broken = {}, {}, {}
    for index, attack in enumerate(attacks):
        rows = torch.nonzero(standing).flatten()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index + 1)
        attack_adv = attack_rows(attack, model, images, labels, rows, generator, runtime=runtime,
                                 batch_size=batch_size)
        if len(rows):
            adv[rows] = attack_adv
            still = predict_classes(model, attack_adv, runtime=runtime, seed=seed + index + 1,
                                    batch_size=batch_size) == labels[rows]
            for row in rows[~still].tolist():
                broken_by[row] = attack.name
            standing[rows] = still
        attacked[attack.name] = len(rows)
        broken[attack.name] = int(len(rows) - int(standing[rows].sum()))
        accuracy_after[attack.name] = _fraction(standing)
    used_draws = draws if stochastic else 1
    if stochastic:
        per_draw = torch.stack([predict_classes(model, adv, runtime=runtime, seed=seed + 7919 * (k + 1),
                                                batch_size=batch_size) == labels for k in range(used_draws)])
        draw_accuracies = [_fraction(row) for row in per_draw]
        robust_mask = standing & per_draw.all(dim=0)
        robust_accuracy = sum(draw_accuracies) / used_draws
    else:
        robust_mask = standing
        draw_accuracies = [_fraction(standing)]
        robust_accuracy = draw_accuracies[0]
    return SuiteResult(names, _fraction(clean_mask), accuracy_after, robust_accuracy, _fraction(robust_mask),
                       draw_accuracies, clean_mask, robust_mask, broken_by, adv, attacked, broken, stochastic)


def _fraction(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else 0.0
