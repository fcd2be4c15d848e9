"""Attacks report which run and at which iteration they broke each image (AttackResult.restart and
broken_at_iteration), without changing their images."""

from __future__ import annotations

import pytest
import torch

from defendr_cli.core.attacks import apgd, apgd_t, square
from defendr_cli.core.attacks.apgd import apgd_run
from defendr_cli.core.attacks.base import attack_context
from defendr_cli.core.attacks.fab import fab, fab_t
from defendr_cli.core.attacks.geometry import as_channel_tensor
from defendr_cli.core.attacks.losses import cross_entropy
from tests.attacks.attack_helpers import trained_tiny_model

EPS = 16 / 255


@pytest.fixture(scope="module")
def tiny():
    model, x, y = trained_tiny_model()
    return model, x[:16], y[:16]


def _wrong(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1) != y


@pytest.mark.parametrize("attack, kwargs, runs", [
    (apgd, {"steps": 6, "restarts": 2}, 2), (apgd_t, {"steps": 5, "n_target_classes": 2, "restarts": 1}, 2),
    (square, {"n_queries": 100, "restarts": 2}, 2), (fab_t, {"steps": 5, "n_target_classes": 2}, 2),
    (fab, {"steps": 5, "restarts": 2}, 2)])
@pytest.mark.parametrize("eps", [4 / 255, 16 / 255])
def test_broken_images_carry_their_run_and_iteration_the_others_minus_one(tiny, attack, kwargs, runs, eps):
    model, x, y = tiny
    result = attack(model, x, y, eps, generator=torch.Generator().manual_seed(1), **kwargs)
    broke = result.success & ~_wrong(model, x, y)
    steps = kwargs.get("steps", kwargs.get("n_queries"))
    assert ((result.restart[broke] >= 0) & (result.restart[broke] < runs)).all()
    assert ((result.broken_at_iteration[broke] >= 0) & (result.broken_at_iteration[broke] <= steps)).all()
    assert (result.restart[~broke] == -1).all() and (result.broken_at_iteration[~broke] == -1).all()
    if eps > 8 / 255:
        assert broke.any()


def test_apgd_fooled_at_is_the_first_misclassified_iterate(tiny):
    """A run of 0 steps can only be fooled at its start (iteration 0); more steps never report later
    than the step count, and an image fooled at the start stays at 0."""
    model, x, y = tiny
    with attack_context(model, None) as ctx:
        clean = ctx.prepare(x)
        eps = as_channel_tensor(EPS, clean)
        def run(steps):
            return apgd_run(ctx, clean, lambda logits: cross_entropy(logits, y, False), lambda p: p != y, eps, steps,
                            generator=torch.Generator().manual_seed(0))
        start, longer = run(0), run(8)
    assert (start.fooled_at[start.fooled] == 0).all() and (start.fooled_at[~start.fooled] == -1).all()
    assert (longer.fooled_at[start.fooled] == 0).all()
    assert ((longer.fooled_at[longer.fooled] >= 0) & (longer.fooled_at[longer.fooled] <= 8)).all()
