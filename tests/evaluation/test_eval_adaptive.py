"""Adaptive protocol: white-box PGD through a denoiser and through randomization (EOT) beats transfer;
sanity checks on the results."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from defendr_cli.core.evaluation import checks
from defendr_cli.core.evaluation.adaptive.eps import AdaptiveEps
from defendr_cli.core.evaluation.adaptive.subset import subset_rows
from defendr_cli.core.evaluation.predictions import is_stochastic
from defendr_cli.core.evaluation.adaptive.plan import SuitePlan
from defendr_cli.core.evaluation.adaptive.run import AdaptiveConfig, run_adaptive_suite
from defendr_cli.core.evaluation.adaptive.seeds import SeedPlan
from defendr_cli.core.evaluation.report.adaptive_tables import comparison_rows
from defendr_cli.core.evaluation.adaptive.results import GridPoint
from defendr_cli.core.evaluation.subjects import EvalModel, load_eval_model
from defendr_cli.core.evaluation.transfer.run import run_transfer
from defendr_cli.core.models.denoised import DenoisedClassifier
from defendr_cli.core.models.dunet import DUNet, DUNetConfig
from defendr_cli.core.models.randomization import RandomResizePad
from defendr_cli.core.runtime import Runtime

CPU = Runtime()


def _near_identity_denoiser() -> DUNet:
    """A small DUNET whose predicted noise is tiny, so the defended model keeps its clean accuracy."""
    denoiser = DUNet(DUNetConfig(width_mult=0.0625))
    nn.init.normal_(denoiser.noise_head.weight, std=1e-3)
    nn.init.zeros_(denoiser.noise_head.bias)
    return denoiser.eval()


def test_adaptive_attack_through_denoiser_and_randomization_beats_transfer(eval_ws):
    # the defended classifier is 'advfgsm' (another seed); the transfer set was made on 'baseline'
    classifier = load_eval_model(eval_ws, "advfgsm", device=torch.device("cpu")).module
    models = [EvalModel("dunet", DenoisedClassifier(_near_identity_denoiser(), classifier).eval(), "d1", kind="denoised"),
              EvalModel("rand", RandomResizePad(classifier, 16).eval(), "r1", kind="randomized")]
    data = eval_ws.path_for("data", "synth")
    pgd_set = eval_ws.path_for("adv", "pgd-eps32_255-s5-baseline-test")
    transfer = run_transfer(models, data, [pgd_set], runtime=CPU, cache_dir=eval_ws.reports_dir / "_p", batch_size=40)
    config = AdaptiveConfig(eps_values=[AdaptiveEps("32/255", 32 / 255)],
                            plan=SuitePlan(suite="custom", attacks=("pgd",), steps=(5,), restarts=(1,), eot=4),
                            subset=None, batch_size=40, transfer_sets=[pgd_set])
    adaptive = run_adaptive_suite(models, data, config, runtime=CPU)
    rand, dunet = adaptive.model("rand"), adaptive.model("dunet")
    assert rand.stochastic and rand.eot == 4
    assert not dunet.stochastic and dunet.eot == 1
    for row in comparison_rows(adaptive, transfer):
        assert row.adaptive < row.transfer, row
        if row.model == "dunet":  # deterministic, subset=None: the same 40 images
            assert row.transfer == row.transfer_all
    for m in adaptive.models:
        assert m.clean >= 0.9
        checks = {c.name: c for c in m.checks}
        assert checks["eps0-equals-clean"].passed  # exact equality, randomized model included
        assert m.eps0_accuracy == m.clean
    assert set(adaptive.to_dict()["models"][0]["attacks"]) == {"pgd"}  # only the columns of what ran: the PGD sweep


def test_subset_is_seeded_and_sorted():
    a, b = subset_rows(100, 10, seed=1), subset_rows(100, 10, seed=1)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 10 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, subset_rows(100, 10, seed=2))
    assert np.array_equal(subset_rows(5, None, 0), np.arange(5))


def test_is_stochastic_tells_randomization_apart():
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.rand(2, 3, 16, 16)
    assert not is_stochastic(conv, x)
    assert is_stochastic(RandomResizePad(conv, 16), x)


def _g(eps, steps, acc, restarts=1):
    return GridPoint(eps_label=str(eps), eps=eps, steps=steps, restarts=restarts, accuracy=acc)


def test_grid_and_eps_checks_pass_and_fail_as_they_should():
    good = [_g(0.01, 10, 0.5), _g(0.01, 100, 0.4), _g(0.03, 10, 0.2), _g(0.03, 100, 0.1)]
    assert checks.check_grid_monotone("steps", good, tolerance=0.01).passed
    assert checks.check_grid_monotone("restarts", good, tolerance=0.01).passed
    assert checks.check_monotone("eps", [(0.0, 0.8), (0.01, 0.5), (0.03, 0.2)], tolerance=0.01).passed
    assert checks.check_monotone("eps", [(0.0, 0.8), (0.01, 0.2), (0.03, 0.5)], tolerance=0.01).status == "fail"
    rising_steps = checks.check_grid_monotone("steps", [_g(0.01, 10, 0.2), _g(0.01, 100, 0.6)], tolerance=0.01)
    assert rising_steps.status == "fail" and rising_steps.detail == "steps=10 20.0% -> steps=100 60.0%"
    assert checks.check_eps_zero(0.8, 0.79, count=100).status == "fail"
    masked = checks.check_large_eps(0.3, near_zero=0.1)
    assert masked.status == "warn" and "gradient masking" in masked.detail


def test_one_tolerance_formula():
    assert checks.monotone_tolerance(False, 0.8, 100) == 0.01
    assert checks.monotone_tolerance(True, 0.5, 100) > 0.01
    assert checks.monotone_tolerance(True, 0.5, 0) == 0.0


def test_seed_streams_are_the_offsets_results_depend_on():
    # changing any of these integers changes reported accuracies: pinned here
    seeds = SeedPlan(7)
    assert (seeds.subset, seeds.clean, seeds.eps0, seeds.large_eps) == (7, 8, 8, 7)
    assert [seeds.sweep(i) for i in range(3)] == [7, 1007, 2007]
    assert [seeds.suite(i) for i in range(3)] == [7, 107, 207]
