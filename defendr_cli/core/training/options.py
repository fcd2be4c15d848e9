"""TrainOptions: every setting of one training run, in one typed object.

Which method reads what (`defendr train METHOD`):
    all        name, arch, epochs, batch_size, lr, optimizer, weight_decay, schedule, pretrained,
               freeze_backbone, seed, data, workers, resume, force, defense/defense_variant/passes
               (an inference-time defense recorded in a classifier's config)
    adv        adv (paper mode: cached adversarial copies of the train split, doubled dataset)
               or online + eps + eps_space + attack_steps + adv_ratio (attack each batch)
    alp        adv (cached pairs) or online + eps + eps_space + attack_steps; pair_weight
    clp        pair_weight
    lsq        squeeze_weight
    dunet      adv or online + eps + eps_space, target, guide, width_mult (recipes/dunet.py)

`None` for epochs / batch_size / arch means "the default for this run" (see `resolved`):
paper settings (resnet101, Adam lr 1e-3, batch 128, 15 epochs) for full-size archs; for caches of
<= 64 px images (and no --pretrained) arch defaults to tinyresnet with 8 epochs of batch 64
(the quick CPU profile).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from defendr_cli.core.errors import InputError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "none")
GUIDES = ("logits", "features", "pixels")
EPS_SPACES = ("pixel", "normalized")
DEFENSES = ("none", "random-resize-pad")
SMALL_IMAGE_PX = 64


@dataclass
class TrainOptions:
    method: str = "baseline"
    name: str | None = None                 # model name in models/ (default: the method)
    arch: str | None = None                 # None: resnet101, or tinyresnet for <= 64 px caches
    epochs: int | None = None               # None: 15 (full-size archs) or 8 (tiny archs)
    batch_size: int | None = None           # None: 128 (full-size) or 64 (tiny)
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    pretrained: str | None = None           # path to a torchvision state dict, or 'imagenet'
    freeze_backbone: bool = False
    adv: list[str] = field(default_factory=list)   # adv set names or prefixes (train split)
    online: str | None = None               # attack name for on-the-fly adversarial examples
    eps: str = "4/255"                      # text, pixel units unless eps_space == 'normalized'
    eps_space: str = "pixel"
    attack_steps: int = 10                  # PGD steps for online attacks
    adv_ratio: float = 0.5                  # share of each batch attacked (adv --online)
    pair_weight: float = 0.5                # lambda of ALP / CLP
    squeeze_weight: float = 0.05            # lambda of logit squeezing
    guide: str = "logits"                   # dunet: loss on logits, features or pixels
    target: str = "baseline"                # dunet: the frozen classifier guiding the denoiser
    width_mult: float = 1.0                 # dunet: denoiser width multiplier
    defense: str = "none"
    defense_variant: str = "paper"
    passes: int | None = None
    seed: int = 0
    data: str | None = None                 # clean cache name or path (default: the only one)
    workers: int = 0                        # data-loading worker processes (0: in-process)
    resume: bool = False
    force: bool = False

    @property
    def model_name(self) -> str:
        return self.name or self.method

    def validate(self) -> "TrainOptions":
        """InputError on any out-of-range value; returns self."""
        _choice("--optimizer", self.optimizer, OPTIMIZERS)
        _choice("--schedule", self.schedule, SCHEDULES)
        _choice("--guide", self.guide, GUIDES)
        _choice("--eps-space", self.eps_space, EPS_SPACES)
        _choice("--defense", self.defense, DEFENSES)
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size)):
            if value is not None and value < 1:
                raise InputError(f"{flag} must be at least 1, got {value}")
        if not self.lr > 0:
            raise InputError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise InputError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.adv_ratio <= 1.0:
            raise InputError(f"--adv-ratio must be in (0, 1], got {self.adv_ratio}")
        if self.pair_weight < 0 or self.squeeze_weight < 0:
            raise InputError("--pair-weight and --squeeze-weight must be >= 0")
        if self.attack_steps < 1:
            raise InputError(f"--attack-steps must be at least 1, got {self.attack_steps}")
        if self.workers < 0:
            raise InputError(f"--workers must be >= 0, got {self.workers}")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise InputError(f"--name must be a plain file name, got '{self.name}'")
        return self

    def resolved(self, image_size: int) -> "TrainOptions":
        """A copy with arch / epochs / batch_size filled in for a cache of `image_size` px."""
        from defendr_cli.core.models.registry import DEFAULT_ARCH, TINY_ARCHS

        small = image_size <= SMALL_IMAGE_PX and not self.pretrained  # pretrained weights exist for resnets only
        arch = self.arch or ("tinyresnet" if small else DEFAULT_ARCH)
        tiny = arch in TINY_ARCHS
        return replace(
            self,
            name=self.model_name,
            arch=arch,
            epochs=self.epochs or (8 if tiny else 15),
            batch_size=self.batch_size or (64 if tiny else 128),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (safe for weights_only checkpoints)."""
        out = asdict(self)
        out["adv"] = list(self.adv)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{flag} must be one of {', '.join(allowed)}, got '{value}'")
