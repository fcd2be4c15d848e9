"""`--suite fast` (issue 21): resolves, runs on a tiny model, and spends fewer passes than 'standard'."""

from __future__ import annotations

import numpy as np
import torch

from defendr_cli.core.attacks.counting import count_passes
from defendr_cli.core.evaluation.adaptive.cascade import SuiteAttack, run_suite
from defendr_cli.core.evaluation.adaptive.plan import FAST_NOTE, SuitePlan, resolve_suite, suite_entries
from defendr_cli.core.evaluation.adaptive.results import AdaptiveResult, AdaptiveRow, AdaptiveSettings, EpsPoint
from defendr_cli.core.evaluation.report.adaptive_tables import suite_table
from tests.attacks.attack_helpers import trained_tiny_model

EPS = 0.025


def _counted(attacks: list[SuiteAttack], total: list[int]) -> list[SuiteAttack]:
    """Each attack through count_passes (on the rows it is given); forward + backward added to total[0]."""
    def wrap(attack: SuiteAttack) -> SuiteAttack:
        def run(model, images, labels, generator):
            with count_passes(model, np.arange(len(labels))) as counted:
                result = attack.run(counted, images, labels, generator)
            counts = counted.counts()
            total[0] += counts.total_forward + counts.total_backward
            return result
        return SuiteAttack(attack.name, run, attack.gradient_free)
    return [wrap(a) for a in attacks]


def test_fast_suite_resolves_with_early_stop_and_fewer_targets():
    name, entries = SuitePlan(suite="fast").entries(stochastic=False)
    assert name == "fast"
    assert [e.label for e in entries] == ["apgd-ce", "apgd-t", "square"]
    assert all(e.params.get("early_stop") for e in entries[:2])
    assert entries[1].params["n_target_classes"] < 9 and entries[2].params["n_queries"] < 5000
    assert "screening" in FAST_NOTE and "standard" in FAST_NOTE
    assert len(resolve_suite(entries, EPS)) == 3


def test_fast_suite_runs_and_costs_less_than_standard_on_a_tiny_model():
    model, x, y = trained_tiny_model()
    x, y = x[:24], y[:24]
    small = {"apgd-ce": {"steps": 20}, "apgd-t": {"steps": 20}, "square": {"n_queries": 50}}
    results, passes = {}, {}
    for suite in ("fast", "standard"):
        overrides = {k: v for k, v in small.items()}
        total = [0]
        attacks = _counted(resolve_suite(suite_entries(suite, overrides=overrides), EPS), total)
        results[suite] = run_suite(model, x, y, attacks, seed=0, batch_size=24)
        passes[suite] = total[0]
    fast, standard = results["fast"], results["standard"]
    assert 0 < standard.robust_accuracy < standard.clean_accuracy  # some broken, some held
    assert abs(fast.robust_accuracy - standard.robust_accuracy) <= 2 / 24
    assert passes["fast"] < passes["standard"]


def _adaptive(suite: str) -> AdaptiveResult:
    row = AdaptiveRow("m", "classifier", False, 1, 0.9, [], [EpsPoint("8/255", 0.4, attacks={"apgd-ce": 0.5})], {},
                      0.0, 0.0, suite=suite)
    settings = AdaptiveSettings(["8/255"], [10], [1], 1, 20, 64 / 255, 0.05)
    return AdaptiveResult(0, list(range(20)), settings, [row])


def test_report_says_what_fast_is_only_where_fast_ran():
    assert FAST_NOTE in suite_table(_adaptive("fast")).caption
    assert "screening" not in suite_table(_adaptive("standard")).caption
    assert "for a claim in a paper, run" in suite_table(_adaptive("fast")).to_markdown()

