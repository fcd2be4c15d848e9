"""DUNET shapes, residual design, straight-through clamp, and the DenoisedClassifier wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from defendr_cli.core.models.denoised import DenoisedClassifier, freeze
from defendr_cli.core.models.dunet import DUNet, DUNetConfig, straight_through_clamp


def _small(width_mult: float = 0.125) -> DUNet:
    return DUNet(DUNetConfig(width_mult=width_mult)).eval()


@pytest.mark.parametrize("size", [(16, 16), (32, 32), (17, 23), (33, 31), (5, 7)])
def test_dunet_keeps_shape_at_even_and_odd_sizes(size):
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = _small()(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_dunet_handles_299_pixels():
    x = torch.rand(1, 3, 299, 299)
    with torch.no_grad():
        y = DUNet(DUNetConfig(width_mult=1 / 16)).eval()(x)
    assert y.shape == (1, 3, 299, 299)


def test_reference_widths_and_depths():
    net = DUNet()
    convs = [[m for m in block if isinstance(m, nn.Conv2d)] for block in net.encoder]
    assert [len(c) for c in convs] == [2, 3, 3, 3, 3]
    assert [c[-1].out_channels for c in convs] == [64, 128, 256, 256, 256]
    assert [c[0].stride for c in convs] == [(1, 1)] + [(2, 2)] * 4
    dec = [[m for m in block.fuse if isinstance(m, nn.Conv2d)] for block in net.decoder]
    assert [c[-1].out_channels for c in dec] == [64, 128, 256, 256]
    assert [len(c) for c in dec] == [2, 3, 3, 3]
    # lateral fusion: decoder level 3 sees upsampled e4 (256) + e3 (256)
    assert dec[3][0].in_channels == 512 and dec[0][0].in_channels == 128 + 64


def test_residual_design_zero_noise_head_is_identity():
    net = _small()
    with torch.no_grad():
        net.noise_head.weight.zero_()
        net.noise_head.bias.zero_()
    x = torch.rand(2, 3, 19, 21)
    assert torch.equal(net(x), x)
    with torch.no_grad():
        net.noise_head.bias.fill_(0.1)  # predicted noise 0.1 everywhere -> output x - 0.1 (clamped)
    assert torch.allclose(net(x), (x - 0.1).clamp(0, 1), atol=1e-6)


def test_straight_through_clamp_passes_gradients():
    x = torch.tensor([-0.5, 0.3, 1.7], requires_grad=True)
    y = straight_through_clamp(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.3, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_gradient_reaches_the_input_through_the_denoiser():
    net = _small()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_config_round_trip():
    cfg = DUNetConfig(width_mult=0.25)
    assert DUNetConfig.from_dict(cfg.to_dict()) == cfg


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.last_conv_stage = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.bn(self.last_conv_stage(x).mean((2, 3))))


def test_denoised_classifier_keeps_classifier_frozen_and_exposes_parts():
    clf = _Tiny()
    model = DenoisedClassifier(_small(), clf)
    model.train()
    assert model.denoiser.training and not model.classifier.training
    assert model.last_conv_stage is clf.last_conv_stage
    assert all(not p.requires_grad for p in clf.parameters())
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 3)
    assert freeze(nn.Linear(2, 2)).weight.requires_grad is False
