"""Counted cost: forward/backward passes per image, counted at the model, against each attack's budget
arithmetic; subsets attributed to their own images; results bit-identical with the counter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defendr_cli.core.attacks import apgd, apgd_t, bim, fgsm, mifgsm, pgd, square
from defendr_cli.core.attacks.counting import CountingModel, count_passes, on_rows
from defendr_cli.core.attacks.fab import fab_t
from defendr_cli.core.errors import MismatchError
from tests.attacks.attack_helpers import trained_tiny_model

IDS = np.arange(100, 116)  # image ids of the 16 rows (e.g. rows of the split)


@pytest.fixture(scope="module")
def tiny():
    model, x, y = trained_tiny_model()
    return model, x[:16], y[:16]


def _counted(attack, model, x, y, **kwargs):
    with count_passes(model, IDS) as counted:
        result = attack(counted, x, y, **kwargs)
    return result, counted.counts()


def _correct(model, x, y) -> np.ndarray:
    with torch.no_grad():
        return (model(x).argmax(1) == y).numpy()


def test_fgsm_is_one_backward_and_one_forward_plus_the_success_check(tiny):
    model, x, y = tiny
    _, counts = _counted(fgsm, model, x, y, eps=0.03)
    assert counts.image_ids.tolist() == IDS.tolist()
    assert (counts.forward == 2).all() and (counts.backward == 1).all()  # gradient pass + success check
    _, counts = _counted(fgsm, model, x, y, eps=0.03, check_success=False)
    assert (counts.forward == 1).all() and (counts.backward == 1).all()


def test_apgd_ce_100_steps_is_101_backward_passes_per_standing_image(tiny):
    """apgd: 1 forward on all (who is already wrong), then on the standing images the start's
    gradient + 100 steps' gradients (101 forward + 101 backward), then 1 forward on all (success)."""
    model, x, y = tiny
    x = x.clone()
    x[:3] = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # some start misclassified
    correct = _correct(model, x, y)
    assert (~correct).any() and correct.any()
    _, counts = _counted(apgd, model, x, y, eps=8 / 255, steps=100, generator=torch.Generator().manual_seed(0))
    assert (counts.backward[correct] == 101).all() and (counts.forward[correct] == 103).all()
    assert (counts.backward[~correct] == 0).all() and (counts.forward[~correct] == 2).all()
    assert counts.total_backward == 101 * int(correct.sum())


def test_apgd_restarts_count_only_the_images_still_standing(tiny):
    model, x, y = tiny
    result, counts = _counted(apgd, model, x, y, eps=6 / 255, steps=10, restarts=3,
                              generator=torch.Generator().manual_seed(0))
    correct = _correct(model, x, y)
    runs = counts.backward // 11  # each run: start + 10 steps
    assert (counts.backward % 11 == 0).all() and (counts.forward == 2 + counts.backward).all()
    assert (runs[~correct] == 0).all() and (runs[correct] >= 1).all() and (runs <= 3).all()
    assert (runs[correct & ~result.success.numpy()] == 3).all()  # never fooled: all three restarts ran
    assert len(set(runs[correct].tolist())) > 1  # some fell early, so attribution is per image


def test_square_is_n_queries_plus_the_start_per_standing_image_and_no_backward(tiny):
    """square: 1 forward on all (margin), on each standing image 1 (stripes start) + one per query while
    it stands, then 1 forward on all (success). An image never fooled: n + 3 forward passes."""
    model, x, y = tiny
    n = 50
    result, counts = _counted(square, model, x, y, eps=4 / 255, n_queries=n, generator=torch.Generator().manual_seed(0))
    correct, fooled = _correct(model, x, y), result.success.numpy()
    assert (counts.backward == 0).all()
    assert (counts.forward[correct & ~fooled] == n + 3).all() and (correct & ~fooled).any()
    assert (counts.forward[~correct] == 2).all()
    assert (counts.forward[correct & fooled] < n + 3).all()


def test_fab_t_is_two_forward_and_one_backward_per_step_and_target(tiny):
    """fab_t: 1 forward on all (clean logits: targets, who stands); per target and standing image
    steps x (linearisation forward + backward, prediction forward) + 1 forward (final check); then
    1 forward on all (success)."""
    model, x, y = tiny
    steps, targets = 7, 2
    result, counts = _counted(fab_t, model, x, y, eps=1 / 255, steps=steps, n_target_classes=targets)
    correct, fooled = _correct(model, x, y), result.success.numpy()
    standing = correct & ~fooled
    assert standing.any()
    assert (counts.backward[standing] == targets * steps).all()
    assert (counts.forward[standing] == 2 + targets * (2 * steps + 1)).all()
    assert (counts.backward[~correct] == 0).all() and (counts.forward[~correct] == 2).all()


@pytest.mark.parametrize("attack", [pgd, bim, mifgsm])
def test_pgd_family_is_one_forward_and_backward_per_step(tiny, attack):
    """steps x (1 forward + 1 backward) on every image, then 1 forward (success check)."""
    model, x, y = tiny
    extra = {"generator": torch.Generator().manual_seed(0)} if attack is pgd else {}
    _, counts = _counted(attack, model, x, y, eps=4 / 255, steps=6, **extra)
    assert (counts.forward == 7).all() and (counts.backward == 6).all()


def test_pgd_restarts_are_steps_plus_one_forward_each(tiny):
    """restarts > 1: per restart `steps` gradients and 1 forward (loss and success of that restart)."""
    model, x, y = tiny
    _, counts = _counted(pgd, model, x, y, eps=4 / 255, steps=4, restarts=3, generator=torch.Generator().manual_seed(0))
    assert (counts.forward == 3 * 5).all() and (counts.backward == 3 * 4).all()


@pytest.mark.parametrize("name", ["apgd", "apgd_t", "square", "fab_t", "pgd"])
def test_results_are_bit_identical_with_the_counter(tiny, name):
    model, x, y = tiny
    attack = {"apgd": apgd, "apgd_t": apgd_t, "square": square, "fab_t": fab_t, "pgd": pgd}[name]
    options = {"apgd": {"steps": 10}, "apgd_t": {"steps": 5, "n_target_classes": 2}, "square": {"n_queries": 30},
               "fab_t": {"steps": 5, "n_target_classes": 2}, "pgd": {"steps": 3}}[name]
    stochastic = name != "fab_t"

    def run(m):
        extra = {"generator": torch.Generator().manual_seed(0)} if stochastic else {}
        return attack(m, x, y, eps=8 / 255, **options, **extra).adv

    plain = run(model)
    with count_passes(model, IDS) as counted:
        assert torch.equal(run(counted), plain)


def test_an_undeclared_subset_is_refused_not_misattributed(tiny):
    model, x, _ = tiny
    counted = CountingModel(model, IDS)
    with pytest.raises(MismatchError):
        counted(x[:5])
    with on_rows(counted, torch.tensor([2, 7])):
        counted(x[[2, 7]])
        with on_rows(counted, torch.tensor([1])):
            counted(x[[7]])
    counts = counted.counts()
    assert counts.forward.tolist() == [0, 0, 1, 0, 0, 0, 0, 2] + [0] * 8


def test_backward_counted_once_per_gradient_and_not_without_graph(tiny):
    model, x, y = tiny
    counted = CountingModel(model, IDS)
    with torch.no_grad():
        counted(x)
    x_grad = x.clone().requires_grad_(True)
    logits = counted(x_grad)
    torch.autograd.grad(logits.sum(), x_grad, retain_graph=True)
    logits.sum().backward()
    counts = counted.counts()
    assert (counts.forward == 2).all() and (counts.backward == 2).all()


def test_a_counter_inside_a_wrapper_is_narrowed_too(tiny):
    model, x, y = tiny
    counted = CountingModel(model, IDS)
    wrapped = torch.nn.Sequential(torch.nn.Identity(), counted)
    result = apgd(wrapped, x, y, eps=6 / 255, steps=5, restarts=2, generator=torch.Generator().manual_seed(0))
    counts = counted.counts()
    correct = _correct(model, x, y)
    assert (counts.backward[correct] >= 6).all() and (counts.backward[~correct] == 0).all()
    assert (counts.backward[correct & ~result.success.numpy()] == 12).all()
