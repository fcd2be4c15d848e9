"""FGSM, PGD (no random start), BIM and MI-FGSM equal plain reference loops written here, exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.attacks import bim, fgsm, mifgsm, pgd


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 36, 5)).eval()


def _data():
    gen = torch.Generator().manual_seed(2)
    return torch.rand(6, 3, 6, 6, generator=gen), torch.randint(0, 5, (6,), generator=gen)


def _grad(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def test_fgsm_equals_reference():
    model, (x, y) = _model(), _data()
    reference = (x + 0.05 * _grad(model, x, y).sign()).clamp(0, 1)
    assert torch.equal(fgsm(model, x, y, 0.05).adv, reference)


def test_pgd_without_random_start_equals_reference():
    model, (x, y) = _model(), _data()
    eps, alpha, steps = 0.03, 0.01, 5
    adv = x.clone()
    for _ in range(steps):
        adv = adv + alpha * _grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    result = pgd(model, x, y, eps, steps=steps, step_size=alpha, random_start=False)
    assert torch.equal(result.adv, adv)
    assert torch.equal(result.success, model(adv).argmax(1) != y)


def test_pgd_default_step_size_is_madry():
    model, (x, y) = _model(), _data()
    explicit = pgd(model, x, y, 0.04, steps=4, step_size=2.5 * 0.04 / 4, random_start=False).adv
    assert torch.equal(pgd(model, x, y, 0.04, steps=4, random_start=False).adv, explicit)


def test_bim_is_pgd_from_clean_with_eps_over_steps():
    model, (x, y) = _model(), _data()
    expected = pgd(model, x, y, 0.03, steps=3, step_size=0.01, random_start=False).adv
    assert torch.equal(bim(model, x, y, 0.03, steps=3).adv, expected)


def test_mifgsm_equals_reference():
    model, (x, y) = _model(), _data()
    eps, steps = 0.03, 4
    alpha, g, adv = eps / steps, torch.zeros_like(x), x.clone()
    for _ in range(steps):
        grad = _grad(model, adv, y)
        g = 1.0 * g + grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        adv = (adv + alpha * g.sign()).clamp(min=(x - eps).clamp(min=0), max=(x + eps).clamp(max=1))
    assert torch.equal(mifgsm(model, x, y, eps, steps=steps).adv, adv)


def test_targeted_fgsm_descends_towards_target():
    model, (x, y) = _model(), _data()
    target = (y + 1) % 5
    reference = (x - 0.05 * _grad(model, x, target).sign()).clamp(0, 1)
    assert torch.equal(fgsm(model, x, y, 0.05, targeted=True, targets=target).adv, reference)
