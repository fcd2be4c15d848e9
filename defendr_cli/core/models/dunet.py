"""DUNET: the U-Net denoiser of the high-level representation guided denoiser (HGD).

Liao et al. 2018, "Defense against Adversarial Attacks Using High-Level Representation Guided
Denoiser", Figure 3. The network predicts the adversarial noise and subtracts it from its input
(a residual design), so `D(x) = x - noise(x)`.

Shape (reference widths, `width_mult=1`):

    encoder  level 0: 2 x conv3x3-BN-ReLU,  64 ch, full resolution     -> e0 (H,    W)
             level 1: 3 x conv3x3-BN-ReLU, 128 ch, first conv stride 2 -> e1 (H/2,  W/2)
             level 2: 3 x ...               256 ch, stride 2           -> e2 (H/4,  W/4)
             level 3: 3 x ...               256 ch, stride 2           -> e3 (H/8,  W/8)
             level 4: 3 x ...               256 ch, stride 2           -> e4 (H/16, W/16)
    decoder  level k (k = 3, 2, 1, 0): bilinear upsample of the deeper decoder output to the exact
             size of e_k, concatenate with e_k (lateral connection), conv3x3-BN-ReLU blocks with
             widths [64, 128, 256, 256] for k = 0..3 and [2, 3, 3, 3] convs
    head     conv1x1 -> 3 channels: the predicted noise, in pixel units

Any image size works, odd sizes and 299 included: every upsample targets the lateral feature's
exact size. `width_mult` scales every width (rounded, at least 4 channels) for small CPU runs.

Input: pixels (N, 3, H, W) in [0, 1]. Output: the denoised image, same shape, clamped to [0, 1]
with a straight-through clamp: the forward value is clamped, the backward pass treats the clamp as
the identity, so white-box attacks through the denoiser receive gradients everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

REFERENCE_ENCODER_WIDTHS = (64, 128, 256, 256, 256)
REFERENCE_ENCODER_DEPTHS = (2, 3, 3, 3, 3)
REFERENCE_DECODER_WIDTHS = (64, 128, 256, 256)
REFERENCE_DECODER_DEPTHS = (2, 3, 3, 3)


@dataclass(frozen=True)
class DUNetConfig:
    """Everything needed to rebuild a DUNET (stored in the denoised checkpoint's config)."""

    width_mult: float = 1.0
    encoder_widths: tuple[int, ...] = field(default=REFERENCE_ENCODER_WIDTHS)
    encoder_depths: tuple[int, ...] = field(default=REFERENCE_ENCODER_DEPTHS)
    decoder_widths: tuple[int, ...] = field(default=REFERENCE_DECODER_WIDTHS)
    decoder_depths: tuple[int, ...] = field(default=REFERENCE_DECODER_DEPTHS)

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "DUNetConfig":
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in known.items()})


def straight_through_clamp(x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Clamp in the forward pass, identity in the backward pass (gradient 1 everywhere)."""
    return x + (x.clamp(low, high) - x).detach()


def _scaled(width: int, width_mult: float) -> int:
    return max(4, int(round(width * width_mult)))


class ConvBlock(nn.Sequential):
    """`depth` x (conv3x3 - BatchNorm - ReLU); the first conv has the given stride."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, stride: int = 1) -> None:
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3,
                          stride=stride if i == 0 else 1, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class DecoderBlock(nn.Module):
    """Upsample the deeper features to the lateral's size, concatenate, then a ConvBlock."""

    def __init__(self, deep_channels: int, lateral_channels: int, out_channels: int, depth: int) -> None:
        super().__init__()
        self.fuse = ConvBlock(deep_channels + lateral_channels, out_channels, depth)

    def forward(self, deep: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(deep, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([up, lateral], dim=1))


class DUNet(nn.Module):
    """Denoiser D: pixels (N,3,H,W) in [0,1] -> denoised pixels (N,3,H,W) in [0,1] = x - noise(x)."""

    def __init__(self, config: DUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or DUNetConfig()
        cfg = self.config
        if len(cfg.encoder_widths) != len(cfg.encoder_depths) or len(cfg.encoder_widths) < 2:
            raise ValueError("encoder widths and depths must have the same length (at least 2)")
        if len(cfg.decoder_widths) != len(cfg.encoder_widths) - 1 or len(cfg.decoder_depths) != len(cfg.decoder_widths):
            raise ValueError("the decoder needs one width and depth per encoder level except the deepest")
        enc = [_scaled(w, cfg.width_mult) for w in cfg.encoder_widths]
        dec = [_scaled(w, cfg.width_mult) for w in cfg.decoder_widths]
        self.encoder = nn.ModuleList()
        in_channels = 3
        for level, (width, depth) in enumerate(zip(enc, cfg.encoder_depths)):
            self.encoder.append(ConvBlock(in_channels, width, depth, stride=1 if level == 0 else 2))
            in_channels = width
        # decoder[k] produces level k from (deeper output, e_k); built deepest first, stored by level.
        decoder: list[DecoderBlock] = [None] * len(dec)  # type: ignore[list-item]
        deep_channels = enc[-1]
        for level in reversed(range(len(dec))):
            decoder[level] = DecoderBlock(deep_channels, enc[level], dec[level], cfg.decoder_depths[level])
            deep_channels = dec[level]
        self.decoder = nn.ModuleList(decoder)
        self.noise_head = nn.Conv2d(dec[0], 3, kernel_size=1)

    def predict_noise(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted adversarial noise (N,3,H,W), in pixel units (unbounded)."""
        features = []
        h = (x - 0.5) * 2.0  # [-1, 1], the range HGD's network sees
        for block in self.encoder:
            h = block(h)
            features.append(h)
        h = features[-1]
        for level in reversed(range(len(self.decoder))):
            h = self.decoder[level](h, features[level])
        return self.noise_head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return straight_through_clamp(x - self.predict_noise(x))
