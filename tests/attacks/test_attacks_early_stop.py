"""APGD / APGD-T `early_stop`: off is the reference behaviour; on, a fooled image stops costing passes,
stays adversarial, and the images that held follow the same trajectory as without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defendr_cli.core.attacks import apgd, apgd_t
from defendr_cli.core.attacks.counting import count_passes
from tests.attacks.attack_helpers import trained_tiny_model

EPS = 0.025


@pytest.fixture(scope="module")
def tiny():
    model, x, y = trained_tiny_model()
    return model, x[:24], y[:24]


def _run(attack, model, x, y, **kwargs):
    with count_passes(model, np.arange(len(y))) as counted:
        result = attack(counted, x, y, eps=EPS, steps=30, generator=torch.Generator().manual_seed(3), **kwargs)
    return result, counted.counts()


@pytest.mark.parametrize("attack", [apgd, apgd_t])
def test_early_stop_off_is_bit_identical_to_the_default(tiny, attack):
    model, x, y = tiny
    default, default_counts = _run(attack, model, x, y)
    off, off_counts = _run(attack, model, x, y, early_stop=False)
    assert torch.equal(default.adv, off.adv)
    assert (default_counts.backward == off_counts.backward).all()


@pytest.mark.parametrize("attack", [apgd, apgd_t])
def test_early_stop_saves_passes_and_keeps_every_break(tiny, attack):
    model, x, y = tiny
    full, full_counts = _run(attack, model, x, y)
    early, early_counts = _run(attack, model, x, y, early_stop=True)
    broken = full.success.numpy()
    assert broken.any() and (~broken).any(), "the test needs both broken and robust images"
    assert early.success.numpy()[broken].all()  # every image the full run broke is broken
    assert (early.adv - x).abs().max() <= EPS + 1e-6 and early.adv.min() >= 0 and early.adv.max() <= 1
    assert (early_counts.backward <= full_counts.backward).all()
    assert early_counts.backward[broken].sum() < full_counts.backward[broken].sum()
    held = ~early.success.numpy()
    # images that held were iterated exactly as without early stop
    assert (early_counts.backward[held] == full_counts.backward[held]).all()
    assert torch.allclose(early.adv[held], full.adv[held], atol=1e-6)
