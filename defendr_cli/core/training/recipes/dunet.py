"""`defendr train dunet`: the high-level representation guided denoiser (HGD, Liao et al. 2018).

What trains: a DUNET denoiser D (core.models.dunet) in front of a frozen target classifier f
(`--target`, default 'baseline'), loaded from its checkpoint in eval mode with requires_grad=False
and kept out of the module the loop optimizes (`recipe.module` is D alone).

Loss per batch of pairs (x clean, x_adv adversarial), pixels in [0, 1]:
    --guide logits    (LGD, default)  mean |f(x) - f(D(x_adv))| over the logits
    --guide features  (FGD)           the same on the output of f.last_conv_stage (forward hook)
    --guide pixels    (baseline)      mean |x - D(x_adv)|, the weak pixel-loss denoiser
With cached pairs and the logits guide, f(x) of every clean train image is computed once when the
run starts (f is frozen and in eval mode, so it is the same in every epoch) and looked up per batch.

Pairs: cached adversarial copies of the train split (`--adv` names or prefixes, several mixed,
each aligned with the clean split); with no --adv, every train-split set made from the target;
or `--online ATTACK` (--eps, --eps-space, --attack-steps) attacking f on every batch.

Validation: accuracy of f(D(x_adv)) on the val split, using the val-split twins of the training
sets when they exist (same name with '-val'), else FGSM against f at --eps computed on the fly.
The checkpoint has kind "denoised" (core.models.denoised): the denoiser's weights plus a
reference {name, fingerprint} to the target, checked whenever the denoiser is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from defendr_cli.core.attacks.eps import eps_in_pixels, parse_eps
from defendr_cli.core.attacks.fgsm import fgsm
from defendr_cli.core.attacks.set_names import sibling_set_name
from defendr_cli.core.errors import InputError, MissingArtefactError
from defendr_cli.core.io.adversarial import find_adv_sets, read_adv_info
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.models.loading import check_checkpoint_against_cache, load_model
from defendr_cli.core.models.denoised import denoised_config, freeze
from defendr_cli.core.models.dunet import DUNet, DUNetConfig
from defendr_cli.core.models.references import make_reference
from defendr_cli.core.training.data import BatchSource, TrainBatch, resolve_adv_sets
from defendr_cli.core.training.history import EpochRecord
from defendr_cli.core.training.options import TrainOptions, option
from defendr_cli.core.training.recipes.adversarial_source import (
    AdversarialSourceOptions,
    adv_set_parents,
    make_online_attack,
)
from defendr_cli.core.training.recipes.base import Recipe, RecipeSpec, StepResult, TrainContext

GUIDES = ("logits", "features", "pixels")
CLEAN_LOGITS_LIMIT = 2**26  # floats (256 MB) of the clean train logits kept by the logits guide


@dataclass
class DunetOptions(AdversarialSourceOptions):
    """The adversarial pairs (--adv sets, or --online ATTACK; neither: every train-split set made
    from the target), the guide loss, the frozen target and the denoiser's width."""

    guide: str = option("logits", choices=GUIDES, help="Guide loss on the target's logits | features | pixels.")
    target: str = option("baseline", help="Frozen target classifier.")
    width_mult: float = option(1.0, help="Denoiser width multiplier.")

    def validate(self) -> "DunetOptions":
        super().validate()
        if not self.width_mult > 0:
            raise InputError(f"--width-mult must be positive, got {self.width_mult}")
        if self.adv and self.online:
            raise InputError("`train dunet` takes either --adv SETS (cached pairs) or --online ATTACK, not both")
        return self

    def model_inputs(self) -> list[str]:
        return [self.target]


class FeatureTap:
    """Keeps the latest output of `module` (a forward hook); `remove()` releases the hook."""

    def __init__(self, module: nn.Module) -> None:
        self.output: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.output = output

    def remove(self) -> None:
        self._handle.remove()


def guided_loss(guide: str, target: nn.Module, tap: FeatureTap | None, clean: torch.Tensor,
                denoised: torch.Tensor, clean_logits: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean absolute guide loss, target logits on `denoised` or None); see the module docstring.

    clean_logits: f(clean) (n, K) when the caller already has it (logits guide only): the frozen
    target is then run once per batch instead of twice.
    """
    if guide == "pixels":
        return (clean - denoised).abs().float().mean(), None
    clean_features = None
    if clean_logits is None or guide != "logits":
        with torch.no_grad():
            clean_logits = target(clean)
            clean_features = tap.output if guide == "features" else None
    logits = target(denoised)
    if guide == "logits":
        return (clean_logits.float() - logits.float()).abs().mean(), logits
    return (clean_features.float() - tap.output.float()).abs().mean(), logits


class DunetRecipe(Recipe):
    """The Recipe of the guided denoiser: `module` is the denoiser alone, the target stays frozen."""

    def __init__(self, options: TrainOptions, context: TrainContext) -> None:
        self.options, self.context = options, context
        self.method_options: DunetOptions = options.method_options
        runtime, workspace = context.runtime, context.workspace
        self.guide = self.method_options.guide
        loaded = load_model(workspace, self.method_options.target, device=runtime.device)
        check_checkpoint_against_cache(loaded.checkpoint, context.data_info)
        self.target_name = loaded.name
        self.target = runtime.prepare_model(freeze(loaded.module))
        self.target_reference = make_reference(workspace, "target", loaded.path, loaded.fingerprint)
        self.tap = None
        if self.guide == "features":
            if not hasattr(self.target, "last_conv_stage"):
                raise InputError(f"--guide features needs a target with a last conv stage; '{loaded.name}' "
                                 f"({loaded.kind}) has none: use --guide logits")
            self.tap = FeatureTap(self.target.last_conv_stage)
        self.module = runtime.prepare_model(DUNet(DUNetConfig(width_mult=self.method_options.width_mult)))
        source = self.method_options
        self.online = make_online_attack(source, context) if source.online else None
        self.adv_paths = [] if self.online else self._train_sets()
        self.adv_parents = adv_set_parents(self.adv_paths)  # fingerprints computed once
        batch_size = options.batch_size
        self.train_batches = BatchSource(context.data_path, "train", batch_size,
                                         kind="clean" if self.online else "paired",
                                         adv_paths=self.adv_paths, workers=options.workers, dist=context.dist)
        self._val = self._validation_source(batch_size)
        self._clean_logits = self._target_clean_logits(batch_size)

    # -- data ---------------------------------------------------------------------------------
    def _train_sets(self) -> list:
        workspace, info = self.context.workspace, self.context.data_info
        refs = list(self.method_options.adv)
        if not refs:
            refs = [s.name for s in find_adv_sets(workspace, split="train", source_model=self.target_name)
                    if s.clean_fingerprint == info.fingerprint]
            if not refs:
                raise MissingArtefactError(
                    f"no adversarial sets of the train split made from '{self.target_name}' in {workspace.adv_dir}",
                    hint=f"make one with: defendr attack fgsm --model {self.target_name} --split train, "
                         f"or train with --online fgsm")
        return resolve_adv_sets(workspace, refs, split="train", clean_fingerprint=str(info.fingerprint),
                                method="dunet")

    def _validation_source(self, batch_size: int) -> BatchSource | None:
        """Val-split twins of the training sets when they exist, else clean val batches (online FGSM)."""
        context = self.context
        if not (context.data_info.split_counts or {}).get("val"):
            return None
        names = set(context.workspace.names("adv"))
        twins = [sibling_set_name(read_adv_info(p), "val") for p in self.adv_paths]  # same settings, val split
        twins = [t for t in twins if t in names]
        self.val_adv = twins
        if twins:
            paths = resolve_adv_sets(context.workspace, twins, split="val",
                                     clean_fingerprint=str(context.data_info.fingerprint), method="dunet")
            return BatchSource(context.data_path, "val", batch_size, kind="paired", adv_paths=paths, shuffle=False,
                               dist=context.dist, pad_shards=False)
        self._val_fgsm_eps = self._validation_eps()
        return BatchSource(context.data_path, "val", batch_size, kind="clean", shuffle=False,
                           dist=context.dist, pad_shards=False)

    def _validation_eps(self) -> float | torch.Tensor:
        """eps (pixel units) of the online val FGSM: the first training set's, else --eps."""
        if self.adv_paths:
            eps = read_adv_info(self.adv_paths[0]).eps
            return torch.tensor(eps, dtype=torch.float32) if isinstance(eps, list) else float(eps)
        return eps_in_pixels(parse_eps(self.method_options.eps), self.method_options.eps_space)

    @torch.no_grad()
    def _target_clean_logits(self, batch_size: int) -> torch.Tensor | None:
        """f(x) (rows, K) for every clean train image, computed once: the target is frozen (eval mode),
        so the logits guide's clean half is the same in every epoch. None (computed per batch
        instead) for the other guides, online pairs, or when the table would pass CLEAN_LOGITS_LIMIT."""
        info, runtime = self.context.data_info, self.context.runtime
        rows = int((info.split_counts or {}).get("train", 0))
        if self.guide != "logits" or self.online or not rows or rows * int(info.num_classes) > CLEAN_LOGITS_LIMIT:
            return None
        out = []
        with SplitReader(self.context.data_path, "train") as reader:
            for start in range(0, rows, 4 * batch_size):
                x = runtime.to_device(reader.read(np.arange(start, min(rows, start + 4 * batch_size))))
                with runtime.autocast():
                    out.append(self.target(x).float())
        return torch.cat(out)

    # -- Recipe interface ------------------------------------------------------------------------
    def batch_loss(self, batch: TrainBatch, forward: nn.Module) -> StepResult:
        adv = batch.adv_images
        if adv is None:
            adv = self.online(self.target, batch.images, batch.labels)
        clean_logits = None
        if self._clean_logits is not None and batch.clean_rows is not None:
            clean_logits = self._clean_logits[batch.clean_rows.to(self._clean_logits.device)]
        loss, logits = guided_loss(self.guide, self.target, self.tap, batch.images, forward(adv),
                                   clean_logits)
        return StepResult(loss, None if logits is None else logits.detach(), batch.labels)

    def validation_batches(self) -> Iterable[TrainBatch]:
        return self._val.epoch(0, 0) if self._val is not None else iter(())

    def validation_logits(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        adv = batch.adv_images
        if adv is None:
            with torch.enable_grad():
                adv = fgsm(self.target, batch.images, batch.labels, self._val_fgsm_eps,
                           runtime=self.context.runtime, check_success=False).adv
        return self.target(self.module(adv)), batch.labels

    def checkpoint_config(self) -> dict[str, Any]:
        info = self.context.data_info
        return denoised_config(self.module, self.target_reference) | {
            "guide": self.guide, "image_size": int(info.image_size), "num_classes": int(info.num_classes)}

    def parents(self) -> list[dict[str, str]]:
        info = self.context.data_info
        data = {"role": "data", "name": Path(self.context.data_path).stem, "fingerprint": str(info.fingerprint)}
        return [self.target_reference.to_dict(), data, *self.adv_parents]

    def summary(self, best: EpochRecord) -> str:
        pairs = f"online {self.method_options.online}" if self.online else "+".join(p.stem for p in self.adv_paths)
        val = "cached " + ",".join(self.val_adv) if getattr(self, "val_adv", None) else "online FGSM"
        acc_text = f"{best.val_acc:.3f}" if best.val_acc is not None else "n/a"
        return (f"DUNET x{self.method_options.width_mult:g} ({self.guide}-guided) in front of '{self.target_name}', "
                f"trained on {pairs}; val adv acc {acc_text} ({val})")

    def close(self) -> None:
        if self.tap is not None:
            self.tap.remove()
            self.tap = None
        self.train_batches.close()
        if self._val is not None:
            self._val.close()


SPEC = RecipeSpec("dunet", DunetOptions, DunetRecipe, kind="denoised",
                  help="Guided denoiser (HGD): a DUNET in front of a frozen target classifier.")
