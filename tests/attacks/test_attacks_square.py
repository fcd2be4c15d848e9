"""Square Attack: the p schedule, forward passes only on images not yet fooled, the usual attack
properties, and robust accuracy no more than 1 point above torchattacks' Square on the same model."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from defendr_cli.core.attacks.square import square, square_fraction, square_masks, square_side
from tests.attacks.reference_model import EPS, NUM_CLASSES, accuracy
from tests.attacks.attack_helpers import small_model_batch, seeded_generator






class QueryCounter(nn.Module):
    """Wraps a model: counts the images of every forward pass and fails if a graph is built."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled()
        self.rows.append(x.shape[0])
        return self.model(x)


def test_p_schedule_is_the_published_one_rescaled():
    assert square_fraction(0, 10000) == 0.8 and square_fraction(10, 10000) == 0.8
    assert square_fraction(11, 10000) == 0.4 and square_fraction(8001, 10000) == 0.8 / 512
    assert square_fraction(1, 5000) == 0.8 and square_fraction(6, 5000) == 0.4  # 6 -> 12 of 10k
    assert square_fraction(2500, 5000) == 0.8 / 128  # 5000 of 10k: (4000, 6000]
    assert square_side(0, 5000, 32, 32) == 29 and square_side(4999, 5000, 32, 32) == 1


def test_square_masks_are_squares_inside_the_image():
    masks = square_masks(50, 9, 7, 3, seeded_generator(), torch.device("cpu"))
    assert masks.shape == (50, 1, 9, 7) and (masks.sum(dim=(1, 2, 3)) == 9).all()
    rows, cols = masks.any(dim=3).squeeze(1), masks.any(dim=2).squeeze(1)
    assert (rows.sum(1) == 3).all() and (cols.sum(1) == 3).all()


@pytest.mark.parametrize("eps", [0.05, torch.tensor([0.02, 0.05, 0.08])])
def test_outputs_stay_in_ball_and_unit_range(eps):
    model, x, y = small_model_batch()
    result = square(model, x, y, eps, n_queries=30, generator=seeded_generator())
    bound = eps if isinstance(eps, float) else eps.view(1, 3, 1, 1)
    assert result.adv.shape == x.shape and result.adv.dtype == torch.float32
    assert ((result.adv - x).abs() <= bound + 1e-6).all()
    assert result.adv.min() >= 0 and result.adv.max() <= 1
    assert result.success.dtype == torch.bool and result.success.shape == (8,)


def test_eps_zero_is_identity():
    model, x, y = small_model_batch()
    model.eval()
    result = square(model, x, y, 0.0, n_queries=5, generator=seeded_generator())
    assert torch.equal(result.adv, x)
    assert torch.equal(result.success, model(x).argmax(1) != y)


def test_model_mode_and_requires_grad_restored():
    model, x, y = small_model_batch()
    model.train()
    model[0].weight.requires_grad_(False)
    square(model, x, y, 0.05, n_queries=5, generator=seeded_generator())
    assert all(module.training for module in model.modules())
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad


def test_same_seed_same_result_and_seeds_differ():
    model, x, y = small_model_batch()
    first = square(model, x, y, 0.05, n_queries=20, generator=seeded_generator(7))
    again = square(model, x, y, 0.05, n_queries=20, generator=seeded_generator(7))
    other = square(model, x, y, 0.05, n_queries=20, generator=seeded_generator(8))
    assert torch.equal(first.adv, again.adv) and torch.equal(first.success, again.success)
    assert not torch.equal(first.adv, other.adv)


def test_queries_only_images_not_yet_fooled(comparison):
    model, x, y = comparison
    counter = QueryCounter(model)
    result = square(counter, x[:50], y[:50], EPS, n_queries=200, generator=seeded_generator())
    # clean pass, start, then one pass per iteration over the images still not fooled
    assert counter.rows[0] == 50 and counter.rows[1] == 50 and counter.rows[-1] == 50  # final success check
    per_iteration = counter.rows[2:-1]
    assert per_iteration == sorted(per_iteration, reverse=True)
    assert per_iteration[-1] <= 50 - int(result.success.sum())
    assert sum(per_iteration) < 50 * 200


def test_targeted_square_reaches_targets_on_an_easy_model(comparison):
    model, x, y = comparison
    targets = (y[:40] + 1) % NUM_CLASSES
    result = square(model, x[:40], y[:40], 0.1, n_queries=300, targeted=True, targets=targets, generator=seeded_generator())
    assert result.success.float().mean() >= 0.9
    assert torch.equal(result.success, model(result.adv).argmax(1) == targets)


def test_robust_accuracy_within_a_point_of_torchattacks_square(comparison):
    """At 1000 queries for both (5000 would take several times longer for the same comparison)."""
    model, x, y = comparison
    ours = square(model, x, y, EPS, n_queries=1000, generator=seeded_generator())
    theirs = torchattacks.Square(model, eps=EPS, n_queries=1000, seed=0)(x, y)
    ours_acc, theirs_acc = 100.0 - ours.success.float().mean().item() * 100.0, accuracy(model, theirs, y)
    print(f"Square (1000 queries) robust accuracy at 8/255: ours {ours_acc:.1f}%, torchattacks {theirs_acc:.1f}%")
    assert ours_acc <= theirs_acc + 1.0
