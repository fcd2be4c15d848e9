"""Adaptive white-box protocol (beyond the paper): the building blocks the attack suite
(core.evaluation.adaptive_suite) runs against the whole evaluated model.

The attacked function is exactly the module under evaluation, so gradients flow through the
denoiser, through the randomization (with EOT: the gradient is averaged over `eot` random draws
when the model is stochastic) and through every ensemble member. Here: the eps of a sweep, the
seeded test subset, per-image correctness on clean images and after one PGD configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from defendr_cli.core.attacks import pgd
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.predictions import seeded_randomness
from defendr_cli.core.evaluation.results import AdvSetSummary
from defendr_cli.core.runtime import Runtime

LARGE_EPS = 64 / 255


@dataclass(frozen=True)
class AdaptiveEps:
    """One eps of the sweep: label as given ('8/255') and value in pixel units (float or (3,) list)."""

    label: str
    value: float | list[float]

    def as_attack_eps(self) -> float | torch.Tensor:
        return torch.tensor(self.value, dtype=torch.float32) if isinstance(self.value, list) else float(self.value)


def sweep_eps(adv_sets: Sequence[AdvSetSummary], extra: Sequence = ()) -> list[AdaptiveEps]:
    """The eps of the adaptive sweep: those of `adv_sets` (a transfer result's sets), then `extra`
    (EpsValue(label, value) in pixel units), one entry per distinct value."""
    values = [AdaptiveEps(s.eps_label, s.eps) for s in adv_sets]
    values += [AdaptiveEps(e.label, e.value) for e in extra]
    unique: dict[str, AdaptiveEps] = {}
    for value in values:
        unique.setdefault(str(value.value), value)
    return list(unique.values())


def subset_rows(count: int, subset: int | None, seed: int) -> np.ndarray:
    """Sorted seeded choice of `subset` rows out of `count` (all rows when subset is None or >= count)."""
    if subset is None or subset >= count:
        return np.arange(count)
    if subset < 1:
        raise InputError(f"--subset must be at least 1, got {subset}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, count, 7]))
    return np.sort(rng.choice(count, size=subset, replace=False))


@torch.no_grad()
def correct_mask(module: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime,
                 *, seed: int, batch_size: int) -> np.ndarray:
    """Boolean (N,): argmax(module(images)) == labels, randomness seeded by `seed`."""
    out = []
    with seeded_randomness(seed, runtime):
        for start in range(0, len(images), batch_size):
            x = runtime.to_device(images[start : start + batch_size])
            with runtime.autocast():
                logits = module(x)
            out.append((logits.argmax(1).cpu() == labels[start : start + batch_size]).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def attack_correct_mask(module: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, runtime: Runtime, *,
                        eps: AdaptiveEps, steps: int, restarts: int, eot: int, seed: int, batch_size: int) -> np.ndarray:
    """Per-image correctness (N,) of `module` on PGD examples computed against `module` itself."""
    advs = []
    with seeded_randomness(seed, runtime):
        generator = torch.Generator().manual_seed(seed)  # CPU: the same starts on every device
        for start in range(0, len(images), batch_size):
            x = runtime.to_device(images[start : start + batch_size])
            y = runtime.to_device(labels[start : start + batch_size])
            result = pgd(module, x, y, eps.as_attack_eps(), steps=steps, restarts=restarts, eot=eot,
                         generator=generator, runtime=runtime)
            advs.append(result.adv.detach().cpu())
    adv = torch.cat(advs) if advs else images[:0]
    return correct_mask(module, adv, labels, runtime, seed=seed + 1, batch_size=batch_size)
