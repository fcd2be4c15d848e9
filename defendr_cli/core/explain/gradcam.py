"""Grad-CAM (Selvaraju et al. 2017) on a classifier's last convolutional stage.

    with GradCAM(model, layer) as cam:
        maps, preds = cam(images)           # maps float32 (N, H, W) in [0, 1], preds int64 (N,)

`model` maps pixels (N, 3, H, W) in [0, 1] to logits; `layer` is a module inside it whose output
is a feature map (N, C, h, w). The map for class c is ReLU(sum_k alpha_k A_k) with alpha_k the
spatial mean of d score_c / d A_k, upsampled bilinearly to (H, W) and scaled to [0, 1] per image
(an all-zero map stays 0). The forward hook is registered on entering the block and removed on
leaving it (or by `release()`), as in pytorch-grad-cam's base_cam; gradients are taken with
torch.autograd.grad on the hooked activation only, so no parameter .grad is touched and no graph
outlives a call (memory stays flat over many batches).

`explain_targets(module, name)` says what to explain for each kind of model: the whole model
with its classifier's stage (a denoised model: through the denoiser), each member of an
ensemble, and the inner classifier of a randomized model (random resizing would misalign maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.models.ensemble import Ensemble
from defendr_cli.core.models.randomization import RandomResizePad
from defendr_cli.core.errors import InputError


class GradCAM:
    """Hooks `layer` of `model` while inside a `with` block; call it on image batches."""

    def __init__(self, model: nn.Module, layer: nn.Module) -> None:
        self.model = model
        self.layer = layer
        self._handle = None
        self._activation: torch.Tensor | None = None

    def __enter__(self) -> "GradCAM":
        if self._handle is None:
            self._handle = self.layer.register_forward_hook(self._keep_activation)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Remove the hook and drop the stored activation."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._activation = None

    def _keep_activation(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise InputError(f"Grad-CAM needs a layer with a (N, C, h, w) output, got {type(output).__name__}")
        self._activation = output

    def __call__(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps (N, H, W) in [0, 1] for `classes` (default: the predicted class) and predictions (N,)."""
        if self._handle is None:
            raise RuntimeError("use GradCAM inside a `with` block")
        self.model.eval()
        try:
            with torch.enable_grad():
                logits = self.model(images)
                activation = self._activation
                if activation is None:
                    raise InputError("the Grad-CAM layer was not run by the model's forward pass")
                preds = logits.argmax(dim=1)
                chosen = preds if classes is None else classes.to(logits.device)
                score = logits.gather(1, chosen[:, None]).sum()
                (grads,) = torch.autograd.grad(score, activation)
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * activation.detach()).sum(dim=1, keepdim=True))
            cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            return scale_per_image(cam).cpu(), preds.detach().cpu()
        finally:
            self._activation = None


def scale_per_image(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> min-max scaled to [0, 1] per image; a constant map becomes all zeros."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    span = (flat.max(dim=1).values[:, None, None] - low)
    return torch.where(span > 0, (maps - low) / span.clamp_min(1e-12), torch.zeros_like(maps)).float()


@dataclass
class ExplainTarget:
    """What to run Grad-CAM on: `module` (pixels -> logits) hooked at `layer`; `label` for figures."""

    label: str
    module: nn.Module
    layer: nn.Module


def explain_targets(module: nn.Module, name: str) -> list[ExplainTarget]:
    """One target per classifier the model contains (see the module docstring)."""

    if isinstance(module, Ensemble):
        targets = []
        for member_name, member in zip(module.names, module.members):
            targets += explain_targets(member, f"{name}/{member_name}")
        return targets
    if isinstance(module, RandomResizePad):
        return explain_targets(module.classifier, f"{name} (classifier without randomization)")
    layer = getattr(module, "last_conv_stage", None)
    if not isinstance(layer, nn.Module):
        raise InputError(f"model '{name}' has no last convolutional stage to explain")
    return [ExplainTarget(name, module, layer)]
