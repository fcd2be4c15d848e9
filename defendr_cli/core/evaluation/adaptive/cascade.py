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

Per image and attack the cascade also keeps an `AttackDetail`: the forward/backward passes the
attack spent on the image (counted at the model by core.attacks.counting.CountingModel, which
leaves the attack's results bit-identical), the run and iteration that broke it (when the attack
reports them), and the margin and perturbation norms of the image after the attack's stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackResult
from defendr_cli.core.attacks.counting import CountingModel
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
class RowsOutcome:
    """One attack on n rows: adv float32 (n, 3, H, W) in [0, 1] (CPU); forward/backward int64 (n,)
    counted passes; restart/iteration int64 (n,) the run and iteration that broke each row (-1:
    not broken, or the attack cannot tell)."""

    adv: torch.Tensor
    forward: torch.Tensor
    backward: torch.Tensor
    restart: torch.Tensor
    iteration: torch.Tensor


@dataclass
class AttackDetail:
    """Per image (N,) for one attack of the cascade: restart/iteration int64 (-1: it did not break
    the image), margin float32 (true logit minus the best other, on the image after this stage:
    the attack's output for rows it attacked, the image carried from before otherwise), linf/l2
    float32 of that image's perturbation (pixel units), forward/backward int64 counted passes
    (0 for images it did not attack)."""

    restart: torch.Tensor
    iteration: torch.Tensor
    margin: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    forward: torch.Tensor
    backward: torch.Tensor


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
    images it ran on and how many it broke. details: {attack name: AttackDetail}. draw_correct:
    bool (draws, N), the final images classified in each draw, and draw_margin float32 (draws, N)
    their margins (randomized models; None for deterministic ones).
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
    details: dict[str, AttackDetail] | None = None
    draw_correct: torch.Tensor | None = None
    draw_margin: torch.Tensor | None = None

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


def predict_logits(model: nn.Module, images: torch.Tensor, *, runtime: Runtime | None = None, seed: int = 0,
                   batch_size: int = 256) -> torch.Tensor:
    """float32 logits (N, K) of `model` on images (N, 3, H, W) [0, 1], on the CPU; global randomness
    (randomized defenses) seeded by `seed` and restored afterwards."""
    out = []
    rt = runtime or Runtime()
    with torch.no_grad(), seeded_randomness(seed, rt):
        for start in range(0, len(images), batch_size):
            x = _to(runtime, images[start:start + batch_size])
            with rt.autocast():
                out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def predict_classes(model: nn.Module, images: torch.Tensor, *, runtime: Runtime | None = None, seed: int = 0,
                    batch_size: int = 256) -> torch.Tensor:
    """argmax of `model` on images (N, 3, H, W) [0, 1], int64 (N,) on the CPU; global randomness
    (randomized defenses) seeded by `seed` and restored afterwards."""
    logits = predict_logits(model, images, runtime=runtime, seed=seed, batch_size=batch_size)
    return logits.argmax(dim=1) if len(images) else torch.zeros(0, dtype=torch.long)


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """float32 (N,): true-class logit minus the best other logit (logits (N, K), labels (N,))."""
    if logits.shape[0] == 0:
        return torch.zeros(0)
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, labels.view(-1, 1), float("-inf")).amax(dim=1)
    return (true - other).float()


def _unknown(count: int) -> torch.Tensor:
    return torch.full((count,), -1, dtype=torch.long)


def attack_rows_counted(attack: SuiteAttack, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                        rows: torch.Tensor, generator: torch.Generator, *, runtime: Runtime | None,
                        batch_size: int) -> RowsOutcome:
    """`attack` on the given rows of images (N, 3, H, W) [0, 1] / labels (N,) (CPU), in batches of
    `batch_size` sharing `generator`, each batch through a pass counter (core.attacks.counting)."""
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        counted = CountingModel(model, batch)
        result = attack.run(counted, _to(runtime, images[batch]), _to(runtime, labels[batch]), generator)
        counts = counted.counts()
        restart = result.restart.cpu() if result.restart is not None else _unknown(len(batch))
        iteration = result.broken_at_iteration.cpu() if result.broken_at_iteration is not None \
            else _unknown(len(batch))
        parts.append((result.adv.detach().float().cpu(), torch.as_tensor(counts.forward),
                      torch.as_tensor(counts.backward), restart.long(), iteration.long()))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long)
        return RowsOutcome(images[:0], empty, empty.clone(), empty.clone(), empty.clone())
    return RowsOutcome(*(torch.cat(column) for column in zip(*parts)))


def attack_rows(attack: SuiteAttack, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                rows: torch.Tensor, generator: torch.Generator, *, runtime: Runtime | None,
                batch_size: int) -> torch.Tensor:
    """`attack` on the given rows of images (N, 3, H, W) [0, 1] / labels (N,) (CPU), in batches of
    `batch_size` sharing `generator`: float32 (len(rows), 3, H, W) in [0, 1] on the CPU."""
    return attack_rows_counted(attack, model, images, labels, rows, generator, runtime=runtime,
                               batch_size=batch_size).adv


def _verdict(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct bool (N,), margin float32 (N,)) from logits (N, K) and labels (N,)."""
    if labels.numel() == 0:
        return torch.zeros(0, dtype=torch.bool), torch.zeros(0)
    return logits.argmax(dim=1) == labels, margins(logits, labels)


def perturbation_norms(adv: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L-inf, L2) float32 (N,) of adv - images (both (N, 3, H, W), pixel units)."""
    delta = (adv - images).flatten(1).float()
    if delta.shape[0] == 0:
        return torch.zeros(0), torch.zeros(0)
    return delta.abs().amax(dim=1), delta.norm(dim=1)


class _Cascade:
    """The cascade's state over N images while its attacks run (see `run_suite`)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, clean_mask: torch.Tensor,
                 clean_margin: torch.Tensor) -> None:
        self.images, self.labels, self.clean_mask = images, labels, clean_mask
        self.standing, self.margin, self.adv = clean_mask.clone(), clean_margin.clone(), images.clone()
        self.broken_by: list[str | None] = [None if ok else "clean" for ok in clean_mask.tolist()]
        self.accuracy_after: dict[str, float] = {}
        self.attacked: dict[str, int] = {}
        self.broken: dict[str, int] = {}
        self.details: dict[str, AttackDetail] = {}

    def stage(self, index: int, attack: SuiteAttack, model: nn.Module, *, runtime: Runtime | None, seed: int,
              batch_size: int) -> None:
        """Run attack number `index` on the images still standing and record its verdicts."""
        count = len(self.labels)
        rows = torch.nonzero(self.standing).flatten()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index + 1)
        out = attack_rows_counted(attack, model, self.images, self.labels, rows, generator, runtime=runtime,
                                  batch_size=batch_size)
        restart, iteration = _unknown(count), _unknown(count)
        forward, backward = torch.zeros(count, dtype=torch.long), torch.zeros(count, dtype=torch.long)
        if len(rows):
            self.adv[rows] = out.adv
            logits = predict_logits(model, out.adv, runtime=runtime, seed=seed + index + 1, batch_size=batch_size)
            still, self.margin[rows] = _verdict(logits, self.labels[rows])
            for row in rows[~still].tolist():
                self.broken_by[row] = attack.name
            self.standing[rows] = still
            restart[rows] = torch.where(still, -1, out.restart)
            iteration[rows] = torch.where(still, -1, out.iteration)
            forward[rows], backward[rows] = out.forward, out.backward
        linf, l2 = perturbation_norms(self.adv, self.images)
        self.details[attack.name] = AttackDetail(restart, iteration, self.margin.clone(), linf, l2, forward, backward)
        self.attacked[attack.name] = len(rows)
        self.broken[attack.name] = int(len(rows) - int(self.standing[rows].sum()))
        self.accuracy_after[attack.name] = _fraction(self.standing)


def _check_suite(images: torch.Tensor, labels: torch.Tensor, attacks: Sequence[SuiteAttack], draws: int,
                 batch_size: int) -> None:
    if images.dim() != 4 or labels.shape != (images.shape[0],):
        raise InputError(f"run_suite needs images (N, 3, H, W) and labels (N,), got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    names = [a.name for a in attacks]
    if len(set(names)) != len(names):
        raise InputError(f"attack names must be distinct in a suite: {', '.join(names)}")
    if draws < 1 or batch_size < 1:
        raise InputError(f"draws and batch_size must be >= 1 (got {draws}, {batch_size})")


def run_suite(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attacks: Sequence[SuiteAttack], *,
              runtime: Runtime | None = None, seed: int = 0, batch_size: int = 256, stochastic: bool = False,
              draws: int = 1) -> SuiteResult:
    """Run the cascade (see the module docstring). images: float32 (N, 3, H, W) in [0, 1] (CPU);
    labels: int64 (N,). Attack i gets a CPU generator seeded from (seed, i); the cascade's forward
    passes use seeded global randomness. `draws` only matters for stochastic models."""
    _check_suite(images, labels, attacks, draws, batch_size)
    images, labels = images.detach().float().cpu(), labels.detach().long().cpu()
    clean_logits = predict_logits(model, images, runtime=runtime, seed=seed, batch_size=batch_size)
    cascade = _Cascade(images, labels, *_verdict(clean_logits, labels))
    for index, attack in enumerate(attacks):
        cascade.stage(index, attack, model, runtime=runtime, seed=seed, batch_size=batch_size)
    standing, draw_correct, draw_margin = cascade.standing, None, None
    if stochastic:
        verdicts = [_verdict(predict_logits(model, cascade.adv, runtime=runtime, seed=seed + 7919 * (k + 1),
                                            batch_size=batch_size), labels) for k in range(draws)]
        draw_correct = torch.stack([v[0] for v in verdicts])
        draw_margin = torch.stack([v[1] for v in verdicts])
        draw_accuracies = [_fraction(row) for row in draw_correct]
        robust_mask = standing & draw_correct.all(dim=0)
        robust_accuracy = sum(draw_accuracies) / draws
    else:
        robust_mask = standing
        draw_accuracies = [_fraction(standing)]
        robust_accuracy = draw_accuracies[0]
    return SuiteResult([a.name for a in attacks], _fraction(cascade.clean_mask), cascade.accuracy_after,
                       robust_accuracy, _fraction(robust_mask), draw_accuracies, cascade.clean_mask, robust_mask,
                       cascade.broken_by, cascade.adv, cascade.attacked, cascade.broken, stochastic,
                       cascade.details, draw_correct, draw_margin)


def _fraction(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if mask.numel() else 0.0
