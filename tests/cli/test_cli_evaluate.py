"""`defendr evaluate` end to end on a tiny workspace."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.workspace import Workspace
from tests.evaluation import eval_builders as B

runner = CliRunner()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("cli_eval") / "ws")
    cache = B.write_cache(ws)
    baseline = B.train_classifier(cache, seed=0)
    B.save_classifier(ws, "baseline", baseline, cache)
    B.save_classifier(ws, "alp", B.train_classifier(cache, seed=1), cache, method="alp",
                      hparams={"adv": ["pgd-eps32_255-s5"]})
    B.write_adv_set(ws, baseline, cache, attack="fgsm", eps=16 / 255, eps_label="16/255")
    B.write_adv_set(ws, baseline, cache, attack="pgd", eps=32 / 255, eps_label="32/255", steps=5)
    return ws


def _run(ws, *args):
    return runner.invoke(app, ["--workdir", str(ws.root), "evaluate", *args, "--device", "cpu"])


def test_evaluate_models_and_ensemble_prints_tables_and_writes_report(ws):
    result = _run(ws, "--models", "baseline,alp,alp+random-resize-pad", "--ensemble", "baseline,alp",
                  "--name", "quick")
    assert result.exit_code == 0, result.output
    assert "alp+random-resize-pad" in result.output
    assert "Table 1." in result.output and "Table 3." in result.output and "Table 4." in result.output
    folder = ws.reports_dir / "quick"
    assert (folder / "report.md").exists() and (folder / "confusion.png").exists()
    again = _run(ws, "--models", "baseline,alp,alp+random-resize-pad", "--ensemble", "baseline,alp",
                 "--name", "quick")
    assert "0 computed" in again.output  # every prediction came from the cache


def test_evaluate_adaptive_json(ws):
    result = _run(ws, "--model", "baseline", "--adv", "pgd", "--adaptive", "--attacks", "pgd", "--steps", "3", "--restarts", "1",
                  "--subset", "8", "--eps", "4/255", "--json", "--name", "adaptive")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    models = payload["adaptive"]["models"]
    assert payload["adaptive"]["settings"]["eps"] == ["4/255", "32/255"]
    assert {c["name"] for c in models[0]["checks"]} >= {"eps0-equals-clean", "large-eps-near-zero"}
    assert models[0]["checks"][0]["passed"]
    # the RobustBench-style entry: printed with --json (results.json's 'robustbench') and written beside the report
    saved = json.loads((ws.reports_dir / "adaptive" / "robustbench-baseline.json").read_text())
    assert payload["robustbench"] == [saved] and saved["robust_accuracy"] == models[0]["robust"]["4/255"]
    assert saved["eps_label"] == "4/255" and saved["n_examples"] == 8 and saved["norm"] == "Linf"


def test_evaluate_errors_are_one_line(ws):
    result = _run(ws, "--model", "nope")
    assert result.exit_code == 1 and "error (missing)" in result.output
    assert _run(ws).exit_code == 1
    assert "error (invalid input)" in _run(ws, "--model", "baseline", "--steps", "x").output


def test_evaluate_wraps_models_with_a_defense_and_runs_without_adv_sets(ws):
    result = _run(ws, "--model", "baseline", "--adv", "none", "--defense", "random-resize-pad", "--json",
                  "--name", "wrapped")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    [row] = payload["transfer"]["models"]
    assert row["name"] == "baseline+random-resize-pad" and row["defense"]["name"] == "random-resize-pad"
    assert [t["key"] for t in payload["tables"]] == ["table1-clean"]


def test_evaluate_custom_suite_prints_the_suite_table_and_checks(ws):
    result = _run(ws, "--model", "baseline", "--adv", "fgsm", "--adaptive", "--suite", "custom",
                  "--attacks", "apgd-ce,square", "--square-queries", "10", "--subset", "6", "--name", "suite-cli")
    assert result.exit_code == 0, result.output
    assert "Adaptive evaluation" in result.output and "Sanity checks" in result.output  # printed tables
    text = (ws.reports_dir / "suite-cli" / "report.md").read_text()
    assert "| APGD-CE | Square | Robust |" in text and "black-box-beats-white-box" in text
    saved = json.loads((ws.reports_dir / "suite-cli" / "results.json").read_text())
    row = saved["adaptive"]["models"][0]
    assert list(row["attacks"]) == ["apgd-ce", "square"] and row["suite"] == "custom"
    assert saved["adaptive"]["settings"]["suite"]["square_queries"] == 10


def test_evaluate_unknown_suite_is_one_line_error(ws):
    result = _run(ws, "--model", "baseline", "--adaptive", "--suite", "strongest")
    assert result.exit_code == 1 and "unknown suite 'strongest'" in result.output
