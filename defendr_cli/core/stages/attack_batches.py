"""Attacking one batch of a clean split for every eps of an `attack` stage run, with results
measured on the images as they will be stored.

`SplitAttacker.attack` returns an `AttackedBatch`: the model's clean predictions and, per eps, an
`AttackResult` (core/attacks/base.py) whose predictions and success are measured on the
stored-precision images (float16/uint8). The goal
(attacked labels or targets) and the success check are `AttackContext.goal` and `.result`, the
same code the attacks use. `attack_batch` runs it over a logical batch in chunks, halving the
chunk on CUDA out-of-memory; each chunk's random stream comes from `batch_generator(seed, split,
batch index, row offset)`: random targets are drawn first, then every eps of a stochastic attack
starts from the same state of that stream.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from defendr_cli.core.attacks.base import AttackContext, AttackResult
from defendr_cli.core.io.adversarial import round_to_storage
from defendr_cli.core.progress import Reporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.attack_config import AttackStageConfig, attack_options



@dataclass
class AttackedBatch:
    """One batch of N rows attacked at every eps of a run.

    clean_pred: int64 (N,) the model's predictions on the clean images. results: per eps (None
    where inactive) an AttackResult: adv float32 (N, 3, H, W) in [0, 1] (not yet rounded to the
    storage dtype), adv_pred int64 (N,) and success bool (N,) of the stored-precision images,
    targets int64 (N,) of a targeted run, else None.
    """

    clean_pred: torch.Tensor
    results: list[AttackResult | None]


def _cat(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if parts[0] is None else torch.cat(parts)


def _concat(parts: list[AttackedBatch]) -> AttackedBatch:
    """The chunks of one batch, in row order, as one AttackedBatch."""
    results: list[AttackResult | None] = []
    for k, first in enumerate(parts[0].results):
        rows = [part.results[k] for part in parts]
        results.append(None if first is None else AttackResult(
            _cat([r.adv for r in rows]), _cat([r.success for r in rows]), _cat([r.adv_pred for r in rows]),
            _cat([r.targets for r in rows])))
    return AttackedBatch(torch.cat([part.clean_pred for part in parts]), results)


def batch_generator(seed: int, split: str, batch_index: int, offset: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, split, batch index, row offset in the batch)."""
    state = np.random.SeedSequence([seed, zlib.crc32(split.encode()), batch_index, offset]).generate_state(2)
    generator = torch.Generator()
    generator.manual_seed(int(state[0]) << 32 | int(state[1]))
    return generator


class SplitAttacker:
    """Attacks batches of one split for every eps of a validated config (used by run_attack).

    eps_pixels: per eps, pixel units (float or per-channel (3,) tensor); step_sizes: per eps, pixel
    units or None (the attack's default).
    """

    def __init__(self, config: AttackStageConfig, model: nn.Module, runtime: Runtime,
                 eps_pixels: list[float | torch.Tensor], step_sizes: list[float | torch.Tensor | None]) -> None:
        self.config = config
        self.spec = config.attack_spec
        self.options = attack_options(config)
        self.model = model
        self.runtime = runtime
        self.eps_pixels = eps_pixels
        self.step_sizes = step_sizes
        self.context = AttackContext(model, runtime, loss=None)  # classifies only; the attack has its loss

    def attack(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
               active: list[bool]) -> AttackedBatch:
        """Clean predictions and, per eps (None where inactive), the results on the stored-precision
        images (see `AttackedBatch`)."""
        cfg, ctx = self.config, self.context
        images = self.runtime.to_device(images)
        clean_logits = ctx.logits(images)
        goal = ctx.goal(images, labels, targeted=cfg.targeted, label_mode=cfg.label_mode, generator=generator,
                        clean_logits=clean_logits)
        keywords = dict(targeted="given" if goal.targeted else False, targets=goal.classes if goal.targeted else None,
                        loss=cfg.loss, runtime=self.runtime)
        attacked = labels.to(images.device) if goal.targeted else goal.classes  # untargeted: the labels attacked
        adv_list = self._adversarial(images, attacked, generator, active, keywords)
        results: list[AttackResult | None] = []
        for adv in adv_list:
            if adv is None:
                results.append(None)
                continue
            stored = ctx.result(round_to_storage(adv, cfg.dtype), goal)  # success on the stored images
            results.append(AttackResult(adv, stored.success, stored.adv_pred, stored.targets))
        return AttackedBatch(clean_logits.argmax(dim=1), results)

    def _adversarial(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                     active: list[bool], keywords: dict) -> list[torch.Tensor | None]:
        """Per eps (None where inactive) the attack's adversarial images, float32 (N, 3, H, W)."""
        spec = self.spec
        if spec.multi_eps is not None:
            chosen = [eps for eps, on in zip(self.eps_pixels, active) if on]
            advs = iter([r.adv for r in spec.multi_eps(self.model, images, labels, chosen, check_success=False,
                                                       **self.options, **keywords)])
            return [next(advs) if on else None for on in active]
        params = {**self.options, **{key: value for key, value in keywords.items() if key in spec.parameters}}
        if spec.accepts("check_success"):
            # success is measured on the stored images; restarts need it per restart
            params["check_success"] = (self.config.restarts or 1) > 1
        adv_list: list[torch.Tensor | None] = []
        for eps, step_size, on in zip(self.eps_pixels, self.step_sizes, active):
            if not on:
                adv_list.append(None)
                continue
            if "step_size" in spec.options:
                params["step_size"] = step_size
            if spec.stochastic:
                state = generator.get_state()  # every eps starts from the same stream
                adv_list.append(spec.function(self.model, images, labels, eps, generator=generator, **params).adv)
                generator.set_state(state)
            else:
                adv_list.append(spec.function(self.model, images, labels, eps, **params).adv)
        return adv_list


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def attack_batch(attacker: SplitAttacker, images: torch.Tensor, labels: torch.Tensor, *, seed: int,
                 split: str, batch_index: int, active: list[bool], chunk: list[int],
                 reporter: Reporter) -> AttackedBatch:
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
    return _concat(parts)
