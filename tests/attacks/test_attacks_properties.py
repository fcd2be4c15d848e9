"""Properties every registered attack must have (parametrized over the registry): eps-ball and
[0, 1], eps=0 identity, restored model state; then monotone success in eps, PGD >= FGSM,
targeted attacks beating chance, multi-eps FGSM."""

from __future__ import annotations

import pytest
import torch

from defendr_cli.core.attacks import (
    attack_names,
    build_attack,
    fgsm,
    fgsm_multi,
    get_attack,
    normalized_eps_to_pixel,
    pgd,
)
from defendr_cli.core.errors import InputError
from defendr_cli.core.runtime import Runtime
from tests.attacks.attack_helpers import small_model_batch

ATTACKS = attack_names()  # every registered attack


def _run(name, model, x, y, eps):
    """The attack with its defaults; a seeded generator for the attacks that draw random numbers."""
    extra = {"generator": torch.Generator().manual_seed(0)} if get_attack(name).stochastic else {}
    return build_attack(name, eps=eps)(model, x, y, **extra)




@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("eps", [0.05, normalized_eps_to_pixel(0.2)])
def test_outputs_stay_in_ball_and_unit_range(name, eps):
    model, x, y = small_model_batch()
    result = _run(name, model, x, y, eps)
    bound = eps if isinstance(eps, float) else eps.view(1, 3, 1, 1)
    assert result.adv.shape == x.shape and result.adv.dtype == torch.float32
    assert ((result.adv - x).abs() <= bound + 1e-6).all()
    assert result.adv.min() >= 0 and result.adv.max() <= 1
    assert result.success.dtype == torch.bool and result.success.shape == (8,)


@pytest.mark.parametrize("name", ATTACKS)
def test_eps_zero_is_identity(name):
    model, x, y = small_model_batch()
    model.eval()
    result = _run(name, model, x, y, 0.0)
    assert torch.equal(result.adv, x)
    assert torch.equal(model(result.adv).argmax(1), model(x).argmax(1))
    assert not result.success[model(x).argmax(1) == y].any()


@pytest.mark.parametrize("name", ATTACKS)
def test_model_mode_and_requires_grad_restored(name):
    model, x, y = small_model_batch()
    model.train()
    model[1].eval()  # mixed modes must come back exactly
    model[0].weight.requires_grad_(False)
    before_modes = [m.training for m in model.modules()]
    before_flags = [p.requires_grad for p in model.parameters()]
    _run(name, model, x, y, 0.1)
    assert [m.training for m in model.modules()] == before_modes
    assert [p.requires_grad for p in model.parameters()] == before_flags
    assert all(p.grad is None for p in model.parameters())


def test_attack_runs_model_in_eval_mode_by_default():
    model, x, y = small_model_batch()
    model.train()
    stats = model[1].running_mean.clone()
    a = fgsm(model, x, y, 0.1).adv
    b = fgsm(model, x, y, 0.1).adv
    assert torch.equal(a, b)  # dropout off
    assert torch.equal(model[1].running_mean, stats)  # BN statistics untouched


def test_success_grows_with_eps_and_pgd_beats_fgsm(tiny_trained):
    model, x, y = tiny_trained
    eps_values = [0.0, 0.01, 0.02, 0.03, 0.05]
    fgsm_rates = [r.success.float().mean().item() for r in fgsm_multi(model, x, y, eps_values)]
    pgd_rates = [pgd(model, x, y, e, steps=10, generator=torch.Generator().manual_seed(0)).success.float().mean().item()
                 for e in eps_values]
    assert fgsm_rates == sorted(fgsm_rates) and pgd_rates == sorted(pgd_rates)
    assert fgsm_rates[0] == 0.0 and pgd_rates[-1] > 0.9
    assert all(p >= f for p, f in zip(pgd_rates, fgsm_rates))
    assert pgd_rates[2] > fgsm_rates[2]  # strictly stronger somewhere in the middle


def test_multi_eps_fgsm_equals_separate_runs(tiny_trained):
    model, x, y = tiny_trained
    together = fgsm_multi(model, x, y, [0.01, 0.03])
    for eps, result in zip([0.01, 0.03], together):
        alone = fgsm(model, x, y, eps)
        assert torch.equal(result.adv, alone.adv) and torch.equal(result.success, alone.success)


@pytest.mark.parametrize("mode", ["random", "least-likely"])
def test_targeted_attacks_hit_target_more_than_chance(tiny_trained, mode):
    model, x, y = tiny_trained
    result = pgd(model, x, y, 0.06, steps=10, targeted=mode, generator=torch.Generator().manual_seed(1))
    hit = (model(result.adv).argmax(1) == result.targets).float().mean().item()
    assert torch.equal(result.success, model(result.adv).argmax(1) == result.targets)
    assert (result.targets != y).float().mean() > 0.9
    assert hit > 0.5  # chance for a wrong class among 4 is 1/3 at best


def test_restarts_keep_the_strongest_per_example(tiny_trained):
    model, x, y = tiny_trained
    single = pgd(model, x, y, 0.02, steps=3, generator=torch.Generator().manual_seed(0))
    several = pgd(model, x, y, 0.02, steps=3, restarts=4, generator=torch.Generator().manual_seed(0))
    assert (several.success | ~single.success).all()  # never loses an example the first start won
    assert several.success.float().mean() >= single.success.float().mean()
    assert ((several.adv - x).abs() <= 0.02 + 1e-6).all()


def test_random_start_follows_generator_and_eot_averages(tiny_trained):
    model, x, y = tiny_trained
    a = pgd(model, x, y, 0.02, steps=2, generator=torch.Generator().manual_seed(5)).adv
    b = pgd(model, x, y, 0.02, steps=2, generator=torch.Generator().manual_seed(5)).adv
    c = pgd(model, x, y, 0.02, steps=2, generator=torch.Generator().manual_seed(6)).adv
    assert torch.equal(a, b) and not torch.equal(a, c)
    # a deterministic model: EOT over 3 passes gives the same sign steps as one pass
    d = pgd(model, x, y, 0.02, steps=2, random_start=False, eot=3).adv
    e = pgd(model, x, y, 0.02, steps=2, random_start=False).adv
    assert (d - e).abs().max() < 1e-6


def test_predicted_labels_and_margin_loss(tiny_trained):
    model, x, y = tiny_trained
    wrong = (y + 1) % 4
    with_true = fgsm(model, x, wrong, 0.03)
    with_pred = fgsm(model, x, wrong, 0.03, label_mode="predicted")
    assert torch.equal(with_pred.adv, fgsm(model, x, model(x).argmax(1), 0.03).adv)
    assert not torch.equal(with_true.adv, with_pred.adv)
    margin = pgd(model, x, y, 0.05, steps=10, loss="margin", random_start=False)
    assert margin.success.float().mean() > 0.9


def test_bf16_runtime_keeps_fp32_images(tiny_trained):
    model, x, y = tiny_trained
    result = pgd(model, x, y, 0.03, steps=3, random_start=False, runtime=Runtime(precision="bf16"))
    assert result.adv.dtype == torch.float32 and ((result.adv - x).abs() <= 0.03 + 1e-6).all()


def test_build_attack_rejects_bad_parameters():
    with pytest.raises(InputError, match="unknown attack"):
        build_attack("deepfool", eps=0.1)
    with pytest.raises(InputError, match="does not take"):
        build_attack("fgsm", eps=0.1, steps=3)
    with pytest.raises(InputError, match="needs eps"):
        build_attack("pgd")
    model, x, y = small_model_batch()
    with pytest.raises(InputError):
        pgd(model, x, y, 0.1, steps=0)
    with pytest.raises(InputError):
        fgsm(model, x, y, 0.1, targeted="sideways")
    assert build_attack("i-fgsm", eps=0.1).name == "bim"


def test_check_success_false_skips_only_the_check(tiny_trained):
    model, x, y = tiny_trained
    checked = pgd(model, x, y, 0.02, steps=2, random_start=False)
    unchecked = pgd(model, x, y, 0.02, steps=2, random_start=False, check_success=False)
    assert unchecked.success is None and torch.equal(unchecked.adv, checked.adv)
    with pytest.raises(InputError):
        pgd(model, x, y, 0.02, steps=2, restarts=2, check_success=False)
