"""The attack cascade (core.evaluation.adaptive.cascade, .plan) and the ensemble member-loss route."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defendr_cli.core.attacks.registry import build_attack
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.adaptive.ensemble_route import MemberLogProbSum, run_ensemble_suite
from defendr_cli.core.evaluation.adaptive.cascade import SuiteAttack, run_suite
from defendr_cli.core.evaluation.adaptive.plan import SUITES, choose_suite, resolve_suite, suite_entries
from defendr_cli.core.models.ensemble import Ensemble
from tests.evaluation.suite_fakes import NoisyModel, PixelModel, make_images, recording


def _labels(classes: list[int]) -> torch.Tensor:
    return torch.tensor(classes, dtype=torch.long)


def test_cascade_attacks_only_images_still_correct():
    classes = [0, 1, 2, 3, 4, 5, 6, 7]
    labels = _labels(classes)
    labels[7] = 0  # image 7 is misclassified before any attack
    first, first_log = recording("first", {1, 2})
    second, second_log = recording("second", {2, 3, 4, 7})
    third, third_log = recording("third", {5})
    result = run_suite(PixelModel(), make_images(classes), labels, [first, second, third], batch_size=3)
    assert sorted(first_log.seen) == [0, 1, 2, 3, 4, 5, 6]
    assert sorted(second_log.seen) == [0, 3, 4, 5, 6]
    assert sorted(third_log.seen) == [0, 5, 6]
    assert result.broken_by == [None, "first", "first", "second", "second", "third", None, "clean"]
    assert result.robust_mask.tolist() == [True, False, False, False, False, False, True, False]
    assert result.attacked == {"first": 7, "second": 5, "third": 3}
    assert result.broken == {"first": 2, "second": 2, "third": 1}
    assert result.clean_accuracy == pytest.approx(7 / 8)
    assert list(result.accuracy_after.values()) == pytest.approx([5 / 8, 3 / 8, 2 / 8])
    assert result.robust_accuracy == pytest.approx(2 / 8) == result.all_draws_accuracy
    # the breaking attack's image is kept
    assert PixelModel()(result.adv).argmax(1).tolist()[1:6] == [2, 3, 4, 5, 6]
    assert list(result.columns()) == ["clean", "first", "second", "third", "robust"]


def _linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 4))


def test_registry_suite_is_the_per_image_worst_case_and_monotone():
    model = _linear_model()
    images = torch.rand(40, 3, 4, 4)
    labels = model(images).argmax(1)
    labels[:5] = (labels[:5] + 1) % 4
    eps = 0.08
    entries = suite_entries("custom", attacks=["pgd", "fgsm"], overrides={"pgd": {"steps": 3, "random_start": False}})
    result = run_suite(model, images, labels, resolve_suite(entries, eps), batch_size=16)
    alone = {name: model(build_attack(name, eps=eps, **params)(model, images, labels).adv).argmax(1) == labels
             for name, params in (("pgd", {"steps": 3, "random_start": False}), ("fgsm", {}))}
    clean = model(images).argmax(1) == labels
    assert torch.equal(result.robust_mask, clean & alone["pgd"] & alone["fgsm"])
    columns = list(result.columns().values())
    assert all(b <= a for a, b in zip(columns, columns[1:]))
    assert 0 < result.robust_accuracy < result.clean_accuracy


def test_draws_measure_mean_and_all_draws_rate_on_a_randomized_model():
    classes = [i % 10 for i in range(100)]
    model = NoisyModel(stable=50)  # ids 0-49 always right, 50-99 right half the time
    identity = SuiteAttack("identity", lambda m, x, y, g: recording("x", set())[1](m, x, y, g))
    result = run_suite(model, make_images(classes), _labels(classes), [identity], stochastic=True, draws=20)
    assert len(result.draw_accuracies) == 20
    assert result.robust_accuracy == pytest.approx(0.75, abs=0.05)
    assert result.all_draws_accuracy == pytest.approx(0.5)
    assert result.robust_mask[:50].all() and not result.robust_mask[50:].any()
    again = run_suite(model, make_images(classes), _labels(classes), [identity], stochastic=True, draws=20)
    assert again.draw_accuracies == result.draw_accuracies
    single = run_suite(model, make_images(classes), _labels(classes), [identity], stochastic=False, draws=20)
    assert len(single.draw_accuracies) == 1


def test_suites_are_data_and_choose_suite_picks_by_randomness():
    # AutoAttack's standard version: APGD-CE -> APGD-T (9 targets) -> FAB-T (9 targets) -> Square (5000 queries)
    assert [e.label for e in SUITES["standard"]] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert [e.attack for e in SUITES["standard"]] == ["apgd", "apgd-t", "fab-t", "square"]
    assert [e.params.get("steps") for e in SUITES["standard"][:3]] == [100, 100, 100]
    assert SUITES["standard"][1].params["n_target_classes"] == SUITES["standard"][2].params["n_target_classes"] == 9
    assert SUITES["standard"][3].params["n_queries"] == 5000
    assert all(e.params["eot"] == 20 for e in SUITES["rand"])
    assert [e.params.get("loss") for e in SUITES["rand"]] == ["ce", "dlr"]
    assert choose_suite("auto", stochastic=True) == "rand"
    assert choose_suite("auto", stochastic=False) == "standard"
    assert choose_suite("quick", stochastic=True) == "quick"
    with pytest.raises(InputError):
        choose_suite("strong", stochastic=False)
    quick = suite_entries("quick", overrides={"square": {"n_queries": 50}, "*": {"restarts": 1}})
    assert quick[2].params == {"n_queries": 50, "restarts": 1}
    with pytest.raises(InputError):
        suite_entries("custom")
    with pytest.raises(InputError):
        suite_entries("standard", attacks=["pgd"])
    with pytest.raises(InputError):
        suite_entries("quick", overrides={"pgd": {"steps": 3}})
    with pytest.raises(InputError):
        resolve_suite(suite_entries("custom", attacks=["pgd"], overrides={"pgd": {"queries": 3}}), 0.1)
    with pytest.raises(InputError):
        resolve_suite(suite_entries("custom", attacks=["nosuchattack"]), 0.1)


def test_member_log_prob_sum_is_the_members_ce_sum_up_to_agreement():
    members = [_linear_model(0), _linear_model(1), _linear_model(2)]
    ensemble = Ensemble(members)
    x, y = torch.rand(6, 3, 4, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    surrogate = MemberLogProbSum(ensemble)
    ce = F.cross_entropy(surrogate(x), y, reduction="none")
    member_ce = sum(F.cross_entropy(m(x), y, reduction="none") for m in members)
    agreement = torch.log(torch.stack([F.softmax(m(x), 1) for m in members]).prod(0).sum(1))
    assert torch.allclose(ce, member_ce + agreement, atol=1e-5)


def test_ensemble_keeps_the_worst_case_and_says_which_route_won():
    classes = [0, 1, 2, 3, 4, 5]
    ensemble = Ensemble([PixelModel(), PixelModel()])
    combined, _ = recording("combined", {1, 2})
    member, member_log = recording("member-loss", {2, 3, 4})
    result = run_ensemble_suite(ensemble, make_images(classes), _labels(classes), [combined], member)
    assert sorted(member_log.seen) == classes
    assert result.robust_mask.tolist() == [True, False, False, False, False, True]
    assert result.wins == {"combined": 1, "member-loss": 2, "both": 1, "neither": 2}
    assert result.winner == "member-loss"
    assert result.robust_accuracy == pytest.approx(2 / 6)
    assert (ensemble(result.adv).argmax(1) != _labels(classes)).tolist() == [False, True, True, True, True, False]


def test_seeded_random_starts_make_the_suite_reproducible():
    model = _linear_model()
    images = torch.rand(12, 3, 4, 4)
    labels = model(images).argmax(1)
    attacks = resolve_suite(suite_entries("custom", attacks=["pgd"], overrides={"pgd": {"steps": 1, "step_size": 0.001}}), 0.03)
    first = run_suite(model, images, labels, attacks, seed=3, batch_size=5)
    second = run_suite(model, images, labels, attacks, seed=3, batch_size=5)
    other = run_suite(model, images, labels, attacks, seed=4, batch_size=5)
    assert torch.equal(first.adv, second.adv)
    assert not torch.equal(first.adv, other.adv)


def test_common_parameters_reach_only_the_attacks_that_take_them():
    entries = suite_entries("custom", attacks=["pgd", "fgsm"])
    attacks = resolve_suite(entries, 0.03, common={"eot": 3, "steps": 2})
    seen = []
    model = _linear_model()

    def counting(x):
        seen.append(len(x))
        return model(x)

    counter = nn.Module()
    counter.forward = counting
    images = torch.rand(2, 3, 4, 4)
    labels = model(images).argmax(1)
    attacks[0].run(counter, images, labels, torch.Generator().manual_seed(0))
    assert len(seen) == 2 * 3 + 1  # 2 steps x 3 EOT gradients + the success check
    seen.clear()
    attacks[1].run(counter, images, labels, torch.Generator().manual_seed(0))
    assert len(seen) == 2  # one gradient + the success check: fgsm took neither eot nor steps


def test_member_route_recognises_ensembles_by_type():
    class LooksLikeAnEnsemble(nn.Module):
        def __init__(self):
            super().__init__()
            self.members = nn.ModuleList([PixelModel(), PixelModel()])
            self.weights = torch.tensor([0.5, 0.5])

    with pytest.raises(InputError, match="needs an ensemble"):
        MemberLogProbSum(LooksLikeAnEnsemble())
    assert len(MemberLogProbSum(Ensemble([PixelModel(), PixelModel()])).members) == 2
