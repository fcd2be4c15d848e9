"""run_evaluate with the attack suite: per-attack columns, robust worst case, draws, ensemble route, checks."""

from __future__ import annotations

import pytest

from defendr_cli.core.errors import InputError
from defendr_cli.core.evaluation.report.folder import read_results
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.evaluate import EvaluateConfig, run_evaluate

CPU = Runtime()
FGSM = "fgsm-eps8_255-baseline-test"
CHECKS = {"randomized", "logits-output", "zero-gradients", "black-box-beats-white-box", "monotone-in-eps",
          "eps0-equals-clean", "large-eps-near-zero"}


def _config(name, **kw):
    base = dict(adv=FGSM, name=name, batch_size=16, adaptive=True, eps_from_sets=[FGSM], subset=8,
                square_queries=10, draws=3, eot=2)
    return EvaluateConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def quick(stage_ws):
    return run_evaluate(stage_ws, _config("suite-quick", models=["baseline"], suite="quick", attacks=["pgd"],
                                          steps=[2, 3], restarts=[1]), CPU)


def test_quick_suite_has_one_monotone_column_per_attack_and_robust_below_each(quick):
    [row] = quick.adaptive.models
    assert row.suite == "quick" and row.attack_labels() == ["pgd", "apgd-ce", "apgd-t", "square"]
    point = row.point("8/255")
    cascade = [point.attacks[a] for a in ("apgd-ce", "apgd-t", "square")]
    assert cascade == sorted(cascade, reverse=True) and cascade[0] <= row.clean
    assert all(point.robust <= accuracy for accuracy in point.attacks.values())
    assert [g.steps for g in row.grid] == [2, 3]  # the PGD sweep still runs when asked for
    assert {c.name for c in row.checks} >= CHECKS | {"monotone-in-steps"}
    assert all(c.status in ("pass", "warn", "fail") and c.detail for c in row.checks)
    assert next(c for c in row.checks if c.name == "eps0-equals-clean").status == "pass"


def test_the_report_has_the_suite_table_with_transfer_and_checks(quick):
    table = next(t for t in quick.tables if t.key == "adaptive-suite")
    assert table.columns[:5] == ["Model", "Suite", "eps", "Clean", "Transfer"]
    assert {"PGD", "APGD-CE", "APGD-T", "Square", "Robust", "Checks"} <= set(table.columns)
    [cells] = table.rows
    assert cells[table.columns.index("Transfer")] is not None  # the cached fgsm set, same images
    saved = read_results(quick.report_dir)
    assert saved["adaptive"]["models"][0]["attacks"]["square"]["8/255"] == cells[table.columns.index("Square")]
    assert (quick.report_dir / "tables" / "adaptive-suite.csv").exists()
    assert "sanity-checks" in {t.key for t in quick.tables}


def test_custom_suite_runs_only_the_attacks_asked_for(stage_ws):
    result = run_evaluate(stage_ws, _config("suite-custom", models=["baseline"], suite="custom",
                                            attacks=["fgsm", "square"]), CPU)
    [row] = result.adaptive.models
    assert row.attack_labels() == ["fgsm", "square"] and row.grid == [] and row.suite == "custom"
    assert row.point("8/255").robust == row.point("8/255").attacks["square"]


def test_randomized_model_gets_draws_and_the_rand_suite(stage_ws):
    result = run_evaluate(stage_ws, _config("suite-rand", models=["baseline+random-resize-pad"],
                                            square_queries=None), CPU)
    [row] = result.adaptive.models
    assert row.stochastic and row.suite == "rand" and row.eot == 2
    point = row.point("8/255")
    assert row.attack_labels() == ["apgd-ce", "apgd-dlr"]
    assert len(point.draws) == 3 and point.all_draws <= point.robust + 1e-9
    randomized = next(c for c in row.checks if c.name == "randomized")
    assert randomized.status == "pass" and "rand suite" in randomized.detail


def test_ensemble_is_also_attacked_through_its_members_losses(stage_ws):
    result = run_evaluate(stage_ws, _config("suite-ens", ensembles=[["baseline", "advfgsm"]], suite="quick"), CPU)
    [row] = [m for m in result.adaptive.models if m.kind == "ensemble"]
    route = row.point("8/255").route
    assert route.winner in ("combined", "member-loss", "tie")
    assert row.point("8/255").robust <= min(route.combined, route.member_loss) + 1e-9
    assert next(c for c in row.checks if c.name == "logits-output").status == "warn"  # averaged softmax
    table = next(t for t in result.tables if t.key == "adaptive-suite")
    cells = next(r for r in table.rows if r[0] == row.name)
    assert cells[table.columns.index("Ensemble route")].startswith(route.winner)


def test_bad_suite_options_are_input_errors_before_any_work(stage_ws):
    with pytest.raises(InputError, match="unknown suite"):
        run_evaluate(stage_ws, _config("bad", models=["baseline"], suite="strongest"), CPU)
    with pytest.raises(InputError, match="needs --attacks"):
        run_evaluate(stage_ws, _config("bad", models=["baseline"], suite="custom"), CPU)
    with pytest.raises(InputError, match="--draws"):
        run_evaluate(stage_ws, _config("bad", models=["baseline"], draws=0), CPU)


def test_a_fast_run_is_compared_with_another_suite_on_the_same_images_only(quick, stage_ws):
    fast = run_evaluate(stage_ws, _config("suite-fast", models=["baseline"], suite="fast"), CPU)
    table = next(t for t in fast.tables if t.key == "suite-comparison")
    rows = {(r[2], r[3]): r for r in table.rows if r[0] == "baseline" and r[1] == "8/255"}
    pairs = ((fast.adaptive.models[0], ("fast", "this report")), (quick.adaptive.models[0], ("quick", "suite-quick")))
    for row, key in pairs:
        total = row.point("8/255").passes["total"]
        assert rows[key][4] == row.point("8/255").robust
        assert rows[key][5] == f"{(total['forward'] + total['backward']) / 1e6:.4f}"
    saved = read_results(fast.report_dir)
    assert "suite-comparison" in {t["key"] for t in saved["tables"]}
    assert "Suites compared on the same images" in (fast.report_dir / "report.md").read_text()
    assert 'id="suite-comparison"' in fast.html.read_text()
    other = run_evaluate(stage_ws, _config("suite-fast-6", models=["baseline"], suite="fast", subset=6), CPU)
    compared = next((t for t in other.tables if t.key == "suite-comparison"), None)
    assert compared is None or not any(r[3] in ("suite-quick", "suite-fast") for r in compared.rows)  # 6 other images
