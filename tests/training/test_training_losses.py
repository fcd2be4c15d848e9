"""Each recipe's loss on tiny hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from defendr_cli.core.training.recipes.alp import adversarial_logit_pairing_loss
from defendr_cli.core.training.recipes.baseline import classification_loss
from defendr_cli.core.training.recipes.clp import clean_logit_pairing_loss
from defendr_cli.core.training.recipes.lsq import logit_squeezing_loss

LOG2 = math.log(2.0)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_cross_entropy_of_equal_logits_is_log_k():
    logits = torch.zeros(2, 2)
    assert classification_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(LOG2)


def test_logit_squeezing_adds_mean_squared_norm():
    logits = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    labels = torch.tensor([1, 0])
    ce = (softplus(-1.0) + LOG2) / 2  # row 0: -log softmax(1,2)[1] = log(1 + e^-1)
    squeeze = (1 + 4 + 0) / 2  # mean over images of ||logits||^2
    assert logit_squeezing_loss(logits, labels, 0.1).item() == pytest.approx(ce + 0.1 * squeeze, rel=1e-6)
    assert logit_squeezing_loss(logits, labels, 0.0).item() == pytest.approx(ce, rel=1e-6)


def test_clean_logit_pairing_pairs_first_half_with_second_half():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])  # odd row: CE only
    labels = torch.tensor([0, 1, 0])
    ce = (softplus(-1.0) + softplus(-1.0) + LOG2) / 3
    mse = ((1 - 0) ** 2 + (0 - 1) ** 2) / 2  # row 0 vs row 1, mean over classes
    assert clean_logit_pairing_loss(logits, labels, 0.5).item() == pytest.approx(ce + 0.5 * mse, rel=1e-6)


def test_clean_logit_pairing_of_single_image_is_plain_ce():
    logits = torch.tensor([[2.0, 0.0]])
    assert clean_logit_pairing_loss(logits, torch.tensor([0]), 1.0).item() == pytest.approx(softplus(-2.0), rel=1e-6)


def test_adversarial_logit_pairing_sums_both_ce_and_weighted_mse():
    clean = torch.tensor([[1.0, 0.0]])
    adv = torch.tensor([[0.0, 1.0]])
    labels = torch.tensor([0])
    expected = softplus(-1.0) + softplus(1.0) + 0.25 * 1.0
    assert adversarial_logit_pairing_loss(clean, adv, labels, 0.25).item() == pytest.approx(expected, rel=1e-6)


def test_losses_have_gradients_for_bf16_logits():
    logits = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0])
    loss = clean_logit_pairing_loss(logits.bfloat16(), labels, 0.5) + logit_squeezing_loss(logits.bfloat16(), labels, 0.1)
    assert loss.dtype == torch.float32
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
