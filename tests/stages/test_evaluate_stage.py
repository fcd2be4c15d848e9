"""core.stages.evaluate.run_evaluate: selection, transfer, adaptive sweep and the report, called directly."""

from __future__ import annotations

import json

import pytest

from defendr_cli.core.attacks.eps import parse_eps_list
from defendr_cli.core.distributed import DistContext
from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.report.folder import read_results
from defendr_cli.core.progress import NullReporter
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.evaluate import EvaluateConfig, run_evaluate

CPU = Runtime()
PGD = "pgd-eps32_255-s5-baseline-test"


def test_transfer_only_writes_a_report_with_the_results(stage_ws):
    config = EvaluateConfig(models=["baseline", "advfgsm"], name="t-only", batch_size=16)
    result = run_evaluate(stage_ws, config, CPU)
    assert [m.name for m in result.transfer.models] == ["baseline", "advfgsm"]
    assert {s.name for s in result.transfer.adv_sets} == {"fgsm-eps8_255-baseline-test", PGD}
    assert result.adaptive is None
    assert result.report_dir == stage_ws.reports_dir / "t-only" and result.files.results.exists()
    saved = read_results(result.report_dir)
    assert saved["transfer"] == json.loads(json.dumps(result.transfer.to_dict()))
    assert saved["settings"]["models"] == ["baseline", "advfgsm"] and "eot" not in saved["settings"]
    assert {t.key for t in result.tables} >= {"table2-attacks", "table4-cross-attack"}


def test_adaptive_sweep_takes_eps_from_the_named_sets_then_the_extra_ones(stage_ws):
    config = EvaluateConfig(models=["baseline", "advfgsm"], adv=PGD, name="adaptive", batch_size=16,
                            adaptive=True, adaptive_models=["baseline"], eps_from_sets=[PGD],
                            extra_eps=parse_eps_list("4/255"), attacks=["pgd"], steps=[2], restarts=[1], eot=1, subset=6,
                            report_settings={"profile": "custom"})
    result = run_evaluate(stage_ws, config, CPU)
    assert [m.name for m in result.adaptive.models] == ["baseline"]
    assert result.adaptive.settings.eps == ["4/255", "32/255"]  # sorted by value
    assert len(result.adaptive.subset) == 6
    assert read_results(result.report_dir)["settings"] == {"profile": "custom"}


def test_no_cached_set_falls_back_to_eps_8_255_with_a_note(stage_ws):
    notes = []

    class Notes(NullReporter):
        def note(self, text):
            notes.append(text)

    config = EvaluateConfig(models=["baseline"], adv="none", name="fallback", adaptive=True, attacks=["pgd"], steps=[1],
                            restarts=[1], eot=1, subset=4)
    result = run_evaluate(stage_ws, config, CPU, reporter=Notes())
    assert result.adaptive.settings.eps == ["8/255"]
    assert any("8/255" in n for n in notes)


def test_only_rank_zero_writes_the_report(stage_ws):
    config = EvaluateConfig(models=["baseline"], name="rank1", batch_size=16)
    result = run_evaluate(stage_ws, config, CPU, dist=DistContext(rank=1))
    assert result.files is None and not result.report_dir.exists()
    assert result.transfer.models[0].name == "baseline"


def test_nothing_to_evaluate_is_an_input_error(stage_ws):
    with pytest.raises(InputError, match="nothing to evaluate"):
        run_evaluate(stage_ws, EvaluateConfig(), CPU)
