"""L-inf eps-ball geometry, kept apart from the attack loops (after MadryLab robustness).

All tensors are images in [0, 1] of shape (N, C, H, W). eps and step sizes are pixel units: a
float or a per-channel tensor of shape (C,), broadcast over (N, C, H, W) by `as_channel_tensor`.
"""

from __future__ import annotations

import torch


def as_channel_tensor(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A float or per-channel (C,) value -> a tensor broadcastable to `like` (N, C, H, W)."""
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if tensor.dim() == 0:
        return tensor
    if tensor.dim() != 1 or tensor.numel() != like.shape[1]:
        raise ValueError(f"per-channel value must have shape ({like.shape[1]},), got {tuple(tensor.shape)}")
    return tensor.view(1, -1, 1, 1)


def ball_bounds(images: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower/upper pixel bounds of the eps-ball around `images` intersected with [0, 1].

    Clipping to these bounds equals projecting onto the ball then clipping to [0, 1].
    """
    lower = torch.clamp(images - eps, min=0.0)
    upper = torch.clamp(images + eps, max=1.0)
    return lower, upper


def project(adv: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Clip `adv` element-wise into [lower, upper] (the ball_bounds of the clean images)."""
    return torch.clamp(adv, min=lower, max=upper)


def sign_step(adv: torch.Tensor, direction: torch.Tensor, step_size: torch.Tensor) -> torch.Tensor:
    """One L-inf steepest-ascent step: adv + step_size * sign(direction)."""
    return adv + step_size * direction.sign()


def random_start(images: torch.Tensor, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """images + uniform noise in [-eps, eps], clipped to [0, 1] (Madry et al. random start).

    The noise is drawn on the generator's device (CPU by default) and moved to the images' device,
    so a seeded CPU generator gives the same start on every device.
    """
    gen_device = generator.device if generator is not None else images.device
    noise = torch.rand(images.shape, generator=generator, device=gen_device, dtype=torch.float32)
    noise = noise.to(device=images.device, dtype=images.dtype)
    return torch.clamp(images + (2.0 * noise - 1.0) * eps, 0.0, 1.0)


def random_start_at_radius(images: torch.Tensor, eps: torch.Tensor,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """APGD's random start (Croce & Hein 2020): uniform noise in [-1, 1] rescaled per image so
    its largest |element| is 1, times eps (the start lies on the ball's surface), clipped to [0, 1].

    Drawn on the generator's device (CPU by default) like `random_start`.
    """
    gen_device = generator.device if generator is not None else images.device
    noise = 2.0 * torch.rand(images.shape, generator=generator, device=gen_device, dtype=torch.float32) - 1.0
    noise = noise.to(device=images.device, dtype=images.dtype)
    peak = noise.abs().flatten(1).amax(dim=1).view(-1, *([1] * (images.dim() - 1)))
    return torch.clamp(images + eps * noise / (peak + 1e-12), 0.0, 1.0)
