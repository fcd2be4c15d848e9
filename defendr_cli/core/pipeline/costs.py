"""What one image costs a model: forward FLOPs, trainable share, activation and parameter bytes.

Counted once per (architecture, classes, image size) with torch.utils.flop_counter on the meta
device: no weights are allocated and no arithmetic runs, so ResNet-101 at 299 px costs about a
second of Python. FLOPs count 2 per multiply-add (FlopCounterMode's convention, the same as the
calibration's GFLOP/s).

    ModelCost.forward_flops      FLOPs of one forward pass of one image
    ModelCost.trainable_share    share of those FLOPs in the last stage + head (what a frozen
                                 backbone still back-propagates through), in [0, 1]
    ModelCost.activation_numel   elements of every module output of one image's forward (what
                                 autograd keeps for the backward pass, an upper bound)
    ModelCost.parameters         parameter count
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from defendr_cli.core.models.dunet import DUNet, DUNetConfig
from defendr_cli.core.models.registry import build_classifier


@dataclass(frozen=True)
class ModelCost:
    forward_flops: float
    trainable_share: float
    activation_numel: int
    parameters: int

    def plus(self, other: "ModelCost") -> "ModelCost":
        """The cost of running both (a denoiser in front of a classifier, ensemble members)."""
        flops = self.forward_flops + other.forward_flops
        share = (self.forward_flops * self.trainable_share + other.forward_flops * other.trainable_share) / max(flops, 1.0)
        return ModelCost(flops, share, self.activation_numel + other.activation_numel, self.parameters + other.parameters)


def _measure(module: nn.Module, image_size: int, trainable_prefixes: tuple[str, ...], *,
             device: str = "meta") -> ModelCost:
    """Count one forward of a (1, 3, S, S) image through `module` on `device` ('meta': no arithmetic)."""
    outputs = [0]

    def count(_module, _inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            outputs[0] += output.numel()

    hooks = [m.register_forward_hook(count) for m in module.modules() if not list(m.children())]
    try:
        with torch.device(device), torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, 3, image_size, image_size) if device != "meta" else torch.empty(1, 3, image_size, image_size))
    finally:
        for hook in hooks:
            hook.remove()
    total = float(counter.get_total_flops())
    per_module = counter.get_flop_counts()
    trainable = sum(sum(per_module.get(prefix, {}).values()) for prefix in trainable_prefixes)
    return ModelCost(total, min(1.0, trainable / total) if total and trainable_prefixes else 1.0,
                     int(outputs[0]), sum(p.numel() for p in module.parameters()))


@functools.lru_cache(maxsize=32)
def classifier_cost(arch: str, num_classes: int, image_size: int) -> ModelCost:
    """The cost of `build_classifier(arch, num_classes)` on one S x S image."""
    with torch.device("meta"):
        model = build_classifier(arch, num_classes)
    trainable = model.trainable_parts()  # what a frozen backbone still trains: last stage and head
    names = [name for name, module in model.named_modules() if any(module is part for part in trainable)]
    prefixes = tuple(f"{type(model).__name__}.{name}" for name in names)
    return _measure(model.eval(), image_size, prefixes)


@functools.lru_cache(maxsize=8)
def denoiser_cost(width_mult: float, image_size: int) -> ModelCost:
    """The cost of a DUNET of `width_mult` on one S x S image (all of it trains)."""
    with torch.device("meta"):
        model = DUNet(DUNetConfig(width_mult=float(width_mult)))
    return _measure(model.eval(), image_size, ())


def loaded_model_cost(module: nn.Module, image_size: int) -> ModelCost:
    """The cost of an already loaded CPU model (any kind: classifier, denoised, ensemble, imported),
    from one forward of a blank image (a second of CPU for ResNet-101 at 299 px)."""
    return _measure(module.eval(), image_size, (), device="cpu")
