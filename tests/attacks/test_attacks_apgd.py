"""APGD (CE, DLR) and APGD-T: the DLR losses, the step-size schedule, the usual attack properties,
and robust accuracy no more than 1 point above torchattacks' APGD / APGDT on the same model."""

from __future__ import annotations

import functools

import pytest
import torch
import torchattacks

from defendr_cli.core.attacks.apgd import apgd, checkpoint_schedule
from defendr_cli.core.attacks.apgd_t import apgd_t
from defendr_cli.core.attacks.losses import dlr, dlr_targeted, get_loss
from defendr_cli.core.errors import InputError
from tests.attacks.reference_model import EPS, NUM_CLASSES, accuracy
from tests.attacks.attack_helpers import small_model_batch, seeded_generator

ATTACKS = {
    "apgd-ce": functools.partial(apgd, steps=10),
    "apgd-dlr": functools.partial(apgd, steps=10, loss="dlr"),
    "apgd-t": functools.partial(apgd_t, steps=10),
}






def test_dlr_matches_the_reference_formula():
    logits = torch.randn(6, 5, generator=seeded_generator(1))
    labels, targets = torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([1, 2, 3, 4, 0, 2])
    ordered, index = logits.sort(dim=1)
    top_is_label = (index[:, -1] == labels).float()
    rows = torch.arange(6)
    expected = -(logits[rows, labels] - ordered[:, -2] * top_is_label - ordered[:, -1] * (1 - top_is_label)) / (
        ordered[:, -1] - ordered[:, -3] + 1e-12)
    assert torch.allclose(dlr(logits, labels, False), expected)
    assert get_loss("dlr") is dlr
    expected_t = -(logits[rows, labels] - logits[rows, targets]) / (
        ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12)
    assert torch.allclose(dlr_targeted(logits, labels, targets), expected_t)
    assert torch.allclose(dlr(logits * 3 + 1, labels, False), dlr(logits, labels, False), atol=1e-5)


def test_checkpoint_schedule_is_the_published_one():
    assert checkpoint_schedule(100) == (22, 6, 3)
    assert checkpoint_schedule(10) == (2, 1, 1)


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("eps", [0.05, torch.tensor([0.02, 0.05, 0.08])])
def test_outputs_stay_in_ball_and_unit_range(name, eps):
    model, x, y = small_model_batch()
    result = ATTACKS[name](model, x, y, eps, generator=seeded_generator())
    bound = eps if isinstance(eps, float) else eps.view(1, 3, 1, 1)
    assert result.adv.shape == x.shape and result.adv.dtype == torch.float32
    assert ((result.adv - x).abs() <= bound + 1e-6).all()
    assert result.adv.min() >= 0 and result.adv.max() <= 1
    assert result.success.dtype == torch.bool and result.success.shape == (8,)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_eps_zero_is_identity(name):
    model, x, y = small_model_batch()
    model.eval()
    result = ATTACKS[name](model, x, y, 0.0, generator=seeded_generator())
    assert torch.equal(result.adv, x)
    assert torch.equal(result.success, model(x).argmax(1) != y)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_model_mode_and_requires_grad_restored(name):
    model, x, y = small_model_batch()
    model.train()
    model[0].weight.requires_grad_(False)
    ATTACKS[name](model, x, y, 0.05, generator=seeded_generator())
    assert all(module.training for module in model.modules())
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_same_seed_same_result(name):
    model, x, y = small_model_batch()
    first = ATTACKS[name](model, x, y, 0.05, generator=seeded_generator(7))
    again = ATTACKS[name](model, x, y, 0.05, generator=seeded_generator(7))
    assert torch.equal(first.adv, again.adv) and torch.equal(first.success, again.success)


def test_apgd_t_reports_misclassification_and_no_targets(comparison):
    model, x, y = comparison
    result = apgd_t(model, x[:40], y[:40], EPS, steps=20, n_target_classes=2, generator=seeded_generator())
    assert result.targets is None
    assert torch.equal(result.success, model(result.adv).argmax(1) != y[:40])
    with pytest.raises(InputError):
        apgd_t(model, x, y, EPS, n_target_classes=0)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_targeted_apgd_reaches_targets_on_an_easy_model(comparison, loss):
    model, x, y = comparison
    targets = (y[:40] + 1) % NUM_CLASSES
    result = apgd(model, x[:40], y[:40], 0.1, steps=20, loss=loss, targeted=True, targets=targets, generator=seeded_generator())
    assert result.success.float().mean() >= 0.9
    assert torch.equal(result.success, model(result.adv).argmax(1) == targets)
    assert torch.equal(result.targets, targets)


def test_more_restarts_never_weaker(comparison):
    model, x, y = comparison
    one = apgd(model, x[:60], y[:60], EPS, steps=10, generator=seeded_generator())
    three = apgd(model, x[:60], y[:60], EPS, steps=10, restarts=3, generator=seeded_generator())
    assert three.success.sum() >= one.success.sum()


def test_unknown_loss_rejected():
    model, x, y = small_model_batch()
    with pytest.raises(InputError):
        apgd(model, x, y, 0.05, loss="margin")


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_robust_accuracy_within_a_point_of_torchattacks_apgd(comparison, loss):
    model, x, y = comparison
    ours = apgd(model, x, y, EPS, steps=100, loss=loss, generator=seeded_generator())
    theirs = torchattacks.APGD(model, eps=EPS, steps=100, loss=loss, seed=0)(x, y)
    ours_acc, theirs_acc = 100.0 - ours.success.float().mean().item() * 100.0, accuracy(model, theirs, y)
    print(f"APGD-{loss} robust accuracy at 8/255: ours {ours_acc:.1f}%, torchattacks {theirs_acc:.1f}%")
    assert accuracy(model, x, y) >= 90.0 and ours_acc <= theirs_acc + 1.0


def test_robust_accuracy_within_a_point_of_torchattacks_apgdt(comparison):
    model, x, y = comparison
    ours = apgd_t(model, x, y, EPS, steps=100, generator=seeded_generator())
    theirs = torchattacks.APGDT(model, eps=EPS, steps=100, n_classes=NUM_CLASSES, seed=0)(x, y)
    ours_acc, theirs_acc = 100.0 - ours.success.float().mean().item() * 100.0, accuracy(model, theirs, y)
    print(f"APGD-T robust accuracy at 8/255: ours {ours_acc:.1f}%, torchattacks {theirs_acc:.1f}%")
    assert ours_acc <= theirs_acc + 1.0
