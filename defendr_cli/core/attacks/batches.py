"""Attacking one batch of a clean split for every eps of a stage run, stored-precision results.

`SplitAttacker.attack` returns the model's clean predictions and, per eps, the adversarial images
with predictions and success measured on the images as they will be stored (float16/uint8).
`attack_batch` runs it over a logical batch in chunks, halving the chunk on CUDA out-of-memory;
each chunk's random stream comes from `batch_generator(seed, split, batch index, row offset)`.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from defendr_cli.core.attacks.base import model_logits, random_targets
from defendr_cli.core.attacks.fgsm import fgsm_multi
from defendr_cli.core.attacks.registry import ATTACKS
from defendr_cli.core.io.adversarial import round_to_storage
from defendr_cli.core.progress import Reporter
from defendr_cli.core.runtime import Runtime

if TYPE_CHECKING:
    from defendr_cli.core.attacks.stage import AttackStageConfig


def batch_generator(seed: int, split: str, batch_index: int, offset: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, split, batch index, row offset in the batch)."""
    state = np.random.SeedSequence([seed, zlib.crc32(split.encode()), batch_index, offset]).generate_state(2)
    generator = torch.Generator()
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


class SplitAttacker:
    """Attacks batches of one split for every eps (used by run_attack_stage)."""

    def __init__(self, config: "AttackStageConfig", model: nn.Module, runtime: Runtime,
                 eps_pixels: list[float | torch.Tensor], step_sizes: list[float | torch.Tensor | None]) -> None:
        self.config = config
        self.model = model
        self.runtime = runtime
        self.eps_pixels = eps_pixels
        self.step_sizes = step_sizes

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        return model_logits(self.model, self.runtime, images)

    def attack(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
               active: list[bool]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor] | None]]:
        """Clean predictions and, per eps (None where inactive), the stored-precision results."""
        cfg = self.config
        images = self.runtime.to_device(images)
        clean_logits = self._logits(images)
        clean_pred = clean_logits.argmax(dim=1)
        attack_labels = clean_pred if cfg.label_mode == "predicted" else labels.to(images.device)
        targets = None
        if cfg.targeted == "least-likely":
            targets = clean_logits.argmin(dim=1)
        elif cfg.targeted == "random":
            targets = random_targets(attack_labels, clean_logits.shape[1], generator)
        common = dict(targeted="given" if targets is not None else False, targets=targets,
                      loss=cfg.loss, runtime=self.runtime)
        if cfg.attack == "fgsm":
            chosen = [eps for eps, on in zip(self.eps_pixels, active) if on]
            advs = iter([r.adv for r in fgsm_multi(self.model, images, attack_labels, chosen,
                                                   check_success=False, **common)])
            adv_list = [next(advs) if on else None for on in active]
        else:
            adv_list = []
            for eps, step_size, on in zip(self.eps_pixels, self.step_sizes, active):
                if not on:
                    adv_list.append(None)
                    continue
                params = dict(steps=cfg.steps, step_size=step_size, **common)
                if cfg.attack == "pgd":
                    params.update(random_start=cfg.random_start, restarts=cfg.restarts)
                # success is measured below on the stored images; restarts need it per restart
                params["check_success"] = (cfg.restarts or 1) > 1
                state = generator.get_state()  # every eps starts from the same stream
                adv_list.append(ATTACKS[cfg.attack](self.model, images, attack_labels, eps,
                                                    generator=generator, **params).adv)
                generator.set_state(state)
        outputs: list[dict[str, torch.Tensor] | None] = []
        for adv in adv_list:
            if adv is None:
                outputs.append(None)
                continue
            stored = round_to_storage(adv, cfg.dtype)
            adv_pred = self._logits(stored).argmax(dim=1)
            success = adv_pred == targets if targets is not None else adv_pred != attack_labels
            outputs.append({"adv": adv, "adv_pred": adv_pred, "success": success, "targets": targets})
        return clean_pred, outputs


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def attack_batch(attacker: SplitAttacker, images: torch.Tensor, labels: torch.Tensor, *, seed: int,
                  split: str, batch_index: int, active: list[bool], chunk: list[int], reporter: Reporter):
    """Attack one logical batch, in chunks of chunk[0] rows; on CUDA OOM halve it and retry."""
    while True:
        size = min(chunk[0], images.shape[0])
        try:
            parts = [attacker.attack(images[at:at + size], labels[at:at + size],
                                     batch_generator(seed, split, batch_index, at), active)
                     for at in range(0, images.shape[0], size)]
            break
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc) or attacker.runtime.device.type != "cuda" or size == 1:
                raise
            torch.cuda.empty_cache()
            chunk[0] = max(1, size // 2)
            reporter.note(f"out of GPU memory at batch size {size}: retrying with {chunk[0]}")
    clean_pred = torch.cat([p[0] for p in parts])
    merged: list[dict[str, torch.Tensor | None] | None] = []
    for k, on in enumerate(active):
        if not on:
            merged.append(None)
            continue
        rows = [p[1][k] for p in parts]
        merged.append({key: None if rows[0][key] is None else torch.cat([r[key] for r in rows])
                       for key in rows[0]})
    return clean_pred, merged
