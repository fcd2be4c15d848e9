"""The large-eps check stops each image of a deterministic model at its first adversarial iterate:
the same accuracy for a fraction of the passes; a randomized model still runs every step."""

from __future__ import annotations

import torch
from torch import nn

from defendr_cli.core.attacks.counting import count_passes
from defendr_cli.core.evaluation.adaptive.cascade import run_suite
from defendr_cli.core.evaluation.adaptive.eps import LARGE_EPS
from defendr_cli.core.evaluation.adaptive.eps_run import SuiteTarget
from defendr_cli.core.evaluation.adaptive.plan import SUITES, early_stop_entry, first_entry, resolve_suite
from defendr_cli.core.evaluation.adaptive.run import _budget_accuracy
from defendr_cli.core.evaluation.adaptive.subset import Subset
from defendr_cli.core.evaluation.subjects import EvalModel
from defendr_cli.core.runtime import Runtime

CPU = Runtime()


def _model_and_subset(seed: int = 0) -> tuple[nn.Module, Subset]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(32, 5)).eval()
    images = torch.rand(12, 3, 8, 8)
    with torch.no_grad():
        labels = model(images).argmax(1)  # every image correct before the attack
    return model, Subset(rows=torch.arange(12).numpy(), images=images, labels=labels)


def _target(module: nn.Module, stochastic: bool) -> SuiteTarget:
    entries = list(SUITES["quick"])
    return SuiteTarget(EvalModel("m", module, "k"), module, stochastic, "quick", entries, 1, {})


def test_early_stop_entry_applies_to_attacks_that_take_it_only():
    apgd, square = SUITES["quick"][0], SUITES["quick"][2]
    assert early_stop_entry(apgd).params == {**apgd.params, "early_stop": True}
    assert early_stop_entry(square) == square


def test_large_eps_check_of_a_deterministic_model_same_accuracy_fewer_passes():
    model, subset = _model_and_subset()
    with count_passes(model, subset.rows) as counted:
        early = _budget_accuracy(_target(counted, False), subset, LARGE_EPS, runtime=CPU, seed=3, batch_size=12)
    early_passes = counted.counts().total_forward
    full_attack = resolve_suite([first_entry(SUITES["quick"])], LARGE_EPS, runtime=CPU)
    with count_passes(model, subset.rows) as counted:
        full = run_suite(counted, subset.images, subset.labels, full_attack, runtime=CPU, seed=3,
                         batch_size=12).robust_accuracy
    full_passes = counted.counts().total_forward
    assert early == full
    assert early_passes < full_passes, (early_passes, full_passes)


def test_large_eps_check_of_a_randomized_model_runs_every_step():
    model, subset = _model_and_subset()
    with count_passes(model, subset.rows) as counted:
        _budget_accuracy(_target(counted, True), subset, LARGE_EPS, runtime=CPU, seed=3, batch_size=12)
    steps = SUITES["quick"][0].params["steps"]
    assert counted.counts().total_forward >= len(subset) * steps
