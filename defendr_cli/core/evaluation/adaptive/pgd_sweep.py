"""The PGD step/restart sweep (`--attacks pgd`): PGD against the whole evaluated module.

The attacked function is exactly the module under evaluation, so gradients flow through the
denoiser, through the randomization (with EOT: the gradient is averaged over `eot` random draws
when the model is stochastic) and through every ensemble member.
"""

from __future__ import annotations

import numpy as np
import torch

from defendr_cli.core.attacks.pgd import pgd
from defendr_cli.core.evaluation.adaptive.eps import AdaptiveEps
from defendr_cli.core.evaluation.adaptive.subset import correct_mask
from defendr_cli.core.evaluation.predictions import seeded_randomness
from defendr_cli.core.runtime import Runtime


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
