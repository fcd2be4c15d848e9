"""FAB-T and FAB: the reference's projection, the reference's algorithm (robust accuracy within a point
of torchattacks' FAB, which is auto-attack's FABAttack_PT), clean images where FAB fails, options."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torchattacks.attacks.fab import projection_linf as reference_projection_linf

from defendr_cli.core.attacks.fab import fab, fab_t, projection_linf
from defendr_cli.core.attacks.registry import get_attack
from defendr_cli.core.errors import InputError
from tests.attacks.reference_model import EPS, NUM_CLASSES, accuracy, comparison_model


def test_projection_linf_equals_the_reference():
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(16, 48, generator=gen)
    w = torch.randn(16, 48, generator=gen)
    w[3, :10] = 0.0  # zero coordinates are left alone
    b = torch.randn(16, generator=gen)
    assert torch.equal(projection_linf(points, w, b), reference_projection_linf(points, w, b))


def test_projection_reaches_the_hyperplane_inside_the_box():
    gen = torch.Generator().manual_seed(1)
    points, w = torch.rand(8, 30, generator=gen), torch.randn(8, 30, generator=gen)
    b = (w * torch.rand(8, 30, generator=gen)).sum(1)  # a hyperplane through a point of the box
    moved = points + projection_linf(points, w, b)
    assert torch.allclose((w * moved).sum(1), b, atol=1e-4)
    assert moved.min() >= -1e-6 and moved.max() <= 1 + 1e-6


@pytest.fixture(scope="module")
def ten_classes():
    """The comparison model's recipe with 10 classes (so FAB-T runs its default 9 targets), 200 images."""
    return comparison_model(num_classes=10)


def test_fab_t_robust_accuracy_within_a_point_of_torchattacks(ten_classes):
    """AutoAttack's standard FAB-T (9 targets, 100 steps, 1 restart) against torchattacks' multi-targeted FAB."""
    model, x, y = ten_classes
    ours = fab_t(model, x, y, EPS)
    theirs = torchattacks.FAB(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, multi_targeted=True,
                              n_classes=10)(x, y)
    ours_acc, theirs_acc = accuracy(model, ours.adv, y), accuracy(model, theirs, y)
    print(f"FAB-T robust accuracy at 8/255 on 200 images: ours {ours_acc:.1f}%, torchattacks {theirs_acc:.1f}%")
    assert accuracy(model, x, y) == 100.0 and ours_acc < 50.0  # the attack does something on this model
    assert abs(ours_acc - theirs_acc) <= 1.0


def test_fab_untargeted_within_a_point_of_torchattacks(comparison):
    model, x, y = comparison
    x, y = x[:60], y[:60]
    ours = fab(model, x, y, EPS, steps=20)
    theirs = torchattacks.FAB(model, norm="Linf", eps=EPS, steps=20, n_restarts=1, n_classes=NUM_CLASSES)(x, y)
    assert abs(accuracy(model, ours.adv, y) - accuracy(model, theirs, y)) <= 100 / 60 + 1e-9


def test_unbroken_images_come_back_clean_and_broken_ones_inside_the_ball(comparison):
    model, x, y = comparison
    x, y = x[:40], y[:40]
    result = fab_t(model, x, y, EPS, steps=30, n_target_classes=2)
    assert (~result.success).any() and result.success.any()
    assert torch.equal(result.adv[~result.success], x[~result.success])
    assert ((result.adv - x).abs() <= EPS).all()
    assert torch.equal(result.success, model(result.adv).argmax(1) != y)


def test_small_eps_breaks_less(comparison):
    model, x, y = comparison
    x, y = x[:40], y[:40]
    wide = fab_t(model, x, y, EPS, steps=30, n_target_classes=2).success
    narrow = fab_t(model, x, y, EPS / 4, steps=30, n_target_classes=2).success
    assert (narrow <= wide).all() and narrow.sum() < wide.sum()


def test_restarts_draw_from_the_generator(comparison):
    model, x, y = comparison
    x, y = x[:30], y[:30]
    run = [fab_t(model, x, y, EPS, steps=10, restarts=2, n_target_classes=1,
                 generator=torch.Generator().manual_seed(s)).adv for s in (0, 0, 1)]
    assert torch.equal(run[0], run[1])


def test_registered_with_the_reference_defaults():
    spec = get_attack("FAB-T")
    assert spec.name == "fab-t" and not spec.accepts("targeted") and not spec.accepts("loss")
    assert {k: spec.defaults[k] for k in ("steps", "restarts", "n_target_classes", "alpha_max", "eta", "beta")} == {
        "steps": 100, "restarts": 1, "n_target_classes": 9, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}
    assert get_attack("fab").defaults["steps"] == 100


@pytest.mark.parametrize("option", [{"alpha_max": 1.5}, {"eta": 0.5}, {"beta": 0.0}, {"steps": 0},
                                    {"n_target_classes": 0}])
def test_bad_options_rejected(option, comparison):
    model, x, y = comparison
    with pytest.raises(InputError):
        fab_t(model, x[:2], y[:2], EPS, **option)


def test_per_channel_eps_is_respected_per_channel(comparison):
    model, x, y = comparison
    x, y = x[:40], y[:40]
    eps = torch.tensor([EPS, EPS, EPS / 8])
    result = fab_t(model, x, y, eps, steps=30, n_target_classes=2)
    assert result.success.any()
    assert ((result.adv - x).abs() <= eps.view(1, 3, 1, 1)).all()
    assert result.adv.min() >= 0 and result.adv.max() <= 1


def test_equal_per_channel_eps_equals_the_scalar_eps(comparison):
    model, x, y = comparison
    x, y = x[:30], y[:30]
    scalar = fab_t(model, x, y, EPS, steps=15, n_target_classes=2).adv
    assert torch.equal(fab_t(model, x, y, torch.full((3,), EPS), steps=15, n_target_classes=2).adv, scalar)
