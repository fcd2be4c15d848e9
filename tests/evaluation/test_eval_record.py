"""The suite's per-image record, counted passes, chunked resume and the RobustBench-style JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from defendr_cli.core.attacks.eps import parse_eps_list

from defendr_cli.core.evaluation.adaptive import chunked, eps_run
from defendr_cli.core.evaluation.adaptive.cascade import run_suite
from defendr_cli.core.evaluation.adaptive.plan import SuiteEntry, resolve_suite
from defendr_cli.core.io.per_image_record import (load_per_image_record, partial_record_path,
                                                  robust_accuracy_from_record)
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.evaluate import EvaluateConfig, run_evaluate
from tests.evaluation import eval_builders as B

CPU = Runtime()
FGSM = "fgsm-eps8_255-baseline-test"
EPS = "8/255"


def _config(name, **kw):
    base = dict(adv=FGSM, name=name, batch_size=16, adaptive=True, eps_from_sets=[FGSM], subset=12,
                square_queries=10, draws=3, eot=2, models=["baseline"], suite="quick")
    return EvaluateConfig(**{**base, **kw})


def test_counts_follow_the_budget_arithmetic_per_attack(eval_ws):
    """Per image the cascade attacks: APGD-CE (s steps) s + 1 backward / s + 3 forward; APGD-T
    (k targets) k (s + 1) backward and k (s + 1) + 2 forward on an image that held it; FAB-T
    k s backward and 2 + k (2 s + 1) forward on an image that held it; Square n + 3 forward, no
    backward, on an image that held it; images an attack did not see: 0."""
    cache = eval_ws.path_for("data", "synth", create_dir=False)
    model = B.train_classifier(cache, seed=0).eval()
    torch.manual_seed(0)
    images, labels = torch.rand(10, 3, 16, 16), torch.randint(0, 3, (10,))
    entries = [SuiteEntry("apgd-ce", "apgd", {"loss": "ce", "steps": 5}),
               SuiteEntry("apgd-t", "apgd-t", {"steps": 4, "n_target_classes": 2}),
               SuiteEntry("fab-t", "fab-t", {"steps": 3, "n_target_classes": 2}),
               SuiteEntry("square", "square", {"n_queries": 7})]
    eps = 0.5 / 255  # small: some images hold every attack
    result = run_suite(model, images, labels, resolve_suite(entries, eps), seed=3, batch_size=4)
    d = {name: result.details[name] for name in result.names}
    k = min(2, int(model(images[:1]).shape[1]) - 1)
    held = result.robust_mask
    assert held.any()
    expected = {"apgd-ce": (6, 8), "apgd-t": (k * 5, k * 5 + 2), "fab-t": (k * 3, 2 + k * 7), "square": (0, 10)}
    for name, (backward, forward) in expected.items():
        assert (d[name].backward[held] == backward).all() and (d[name].forward[held] == forward).all(), name
    attacked_ce = result.clean_mask
    assert (d["apgd-ce"].backward[attacked_ce] == 6).all() and (d["apgd-ce"].forward[attacked_ce] == 8).all()
    for index, name in enumerate(result.names):
        seen = torch.tensor([b is None or b in result.names[index:] for b in result.broken_by]) & result.clean_mask
        assert (d[name].forward[~seen] == 0).all() and (d[name].backward[~seen] == 0).all(), name
        broke = torch.tensor([b == name for b in result.broken_by])
        assert (d[name].restart[broke] >= 0).all() and (d[name].restart[~broke] == -1).all()
        assert (d[name].iteration[~broke] == -1).all()


@pytest.fixture(scope="module")
def quick(eval_ws):
    return run_evaluate(eval_ws, _config("rec-quick", attacks=["pgd"], steps=[2], restarts=[1]), CPU)


def test_the_report_robust_accuracy_is_recomputed_from_the_record(quick):
    [row] = quick.adaptive.models
    record = load_per_image_record(quick.report_dir / row.point(EPS).record)
    assert robust_accuracy_from_record(record) == pytest.approx(row.point(EPS).robust, abs=1e-9)
    assert set(record.columns["attack"]) == {"apgd-ce", "apgd-t", "square", "pgd"}
    assert len(record) == 12 * 4 and record.header.suite == "quick"
    assert record.header.budgets["apgd-t"] == {"attack": "apgd-t", "early_stop": False, "eot": 1, "n_target_classes": 3, "restarts": 1,
                                               "rho": 0.75, "steps": 20}
    broken = record.columns["broken"]
    assert (record.columns["restart"][broken & (record.columns["attack"] != "pgd")] >= 0).all()
    assert (record.columns["linf"] <= 8 / 255 + 1e-6).all()
    assert (quick.report_dir / row.point(EPS).record).with_suffix(".csv").read_text().count("\n") == len(record) + 1


def test_counted_passes_are_in_results_and_match_the_record(quick):
    [row] = quick.adaptive.models
    record = load_per_image_record(quick.report_dir / row.point(EPS).record)
    saved = json.loads((quick.report_dir / "results.json").read_text())["adaptive"]["models"][0]
    passes = row.point(EPS).passes
    assert saved["passes"] == {EPS: passes} and saved["budgets"]["square"]["n_queries"] == 10
    for attack in ("apgd-ce", "apgd-t", "square"):
        mine = record.columns["attack"] == attack
        assert passes[attack]["forward"] == int(record.columns["forward_passes"][mine].sum())
        assert passes[attack]["backward"] == int(record.columns["backward_passes"][mine].sum())
    assert passes["square"]["backward"] == 0
    assert passes["total"]["forward"] == sum(passes[a]["forward"] for a in ("apgd-ce", "apgd-t", "square"))
    cost = next(t for t in quick.tables if t.key == "adaptive-cost")
    assert [r[3] for r in cost.rows] == ["APGD-CE", "APGD-T", "Square", "Total"]
    assert "n_target_classes=3" in cost.rows[1][4]


def test_robustbench_json_next_to_the_report_and_in_results(quick):
    [row] = quick.adaptive.models
    entry = json.loads((quick.report_dir / "robustbench-baseline.json").read_text())
    assert entry["clean_accuracy"] == row.clean and entry["robust_accuracy"] == row.point(EPS).robust
    assert entry["norm"] == entry["threat_model"] == "Linf" and entry["eps"] == pytest.approx(8 / 255)
    assert entry["n_examples"] == 12 and entry["suite"]["name"] == "quick" and entry["seed"] == 0
    assert entry["number_forward_passes"] == row.point(EPS).passes["total"]["forward"]
    assert set(entry["versions"]) == {"defendr", "torch", "python"}
    saved = json.loads((quick.report_dir / "results.json").read_text())
    assert saved["robustbench"] == [entry]


def test_a_randomized_model_records_every_draw_and_its_all_draws_accuracy(eval_ws):
    result = run_evaluate(eval_ws, _config("rec-rand", models=["baseline+random-resize-pad"]), CPU)
    [row] = result.adaptive.models
    record = load_per_image_record(result.report_dir / row.point(EPS).record)
    assert sorted(set(record.columns["draw"].tolist())) == [0, 1, 2, 3]  # the cascade's pass, then 3 draws
    assert robust_accuracy_from_record(record) == pytest.approx(row.point(EPS).all_draws, abs=1e-9)


def test_a_randomized_model_gives_the_same_numbers_whatever_the_global_random_state(eval_ws):
    """The suite seeds global randomness per chunk (the first too), so a randomized defense's draws
    inside the attacks do not depend on what ran before (model builds, a prediction-cache hit)."""
    rows = []
    for name, state in (("rand-a", 1), ("rand-b", 12345)):
        torch.manual_seed(state)
        torch.rand(7)
        config = _config(name, models=["baseline+random-resize-pad"], subset=24, chunk_size=24, eps_from_sets=[],
                         extra_eps=parse_eps_list("24/255"))
        [row] = run_evaluate(eval_ws, config, CPU).adaptive.models
        rows.append((row.point("24/255").robust, row.point("24/255").all_draws, row.to_dict()))
    assert 0 < rows[0][0] < 1, rows[0][:2]  # some images fall, some hold: the draws matter
    assert rows[0] == rows[1]


class _Cut(Exception):
    pass


def _stop_after(monkeypatch, units):
    seen = []

    def hook():
        seen.append(1)
        if len(seen) == units:
            raise _Cut()
    monkeypatch.setattr(chunked, "saved_for_test", hook)


def test_resume_from_the_record_attacks_only_unfinished_chunks_and_ends_equal(eval_ws, monkeypatch):
    whole = run_evaluate(eval_ws, _config("rec-whole", chunk_size=4), CPU)
    _stop_after(monkeypatch, 1)
    with pytest.raises(_Cut):
        run_evaluate(eval_ws, _config("rec-cut", chunk_size=4), CPU)
    folder = eval_ws.reports_dir / "rec-cut"
    [name] = [p.record for p in whole.adaptive.models[0].points]
    partial = load_per_image_record(partial_record_path(folder / name), allow_incomplete=True)
    assert sorted(set(partial.columns["image"].tolist())) == whole.adaptive.subset[:4]
    monkeypatch.setattr(chunked, "saved_for_test", lambda: None)
    calls = []
    real = eps_run.run_suite
    monkeypatch.setattr(eps_run, "run_suite", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    resumed = run_evaluate(eval_ws, _config("rec-cut", chunk_size=4, resume=True), CPU)
    assert calls == [4, 4]  # chunk 0 came from the record
    assert resumed.adaptive.to_dict()["models"][0] | {"records": None} == \
        whole.adaptive.to_dict()["models"][0] | {"records": None}
    a, b = load_per_image_record(folder / name), load_per_image_record(eval_ws.reports_dir / "rec-whole" / name)
    for column in a.columns:
        assert np.array_equal(a.columns[column], b.columns[column]), column


def test_standard_suite_is_autoattack_standard_with_every_budget_counted(eval_ws):
    """APGD-CE (100 steps) -> APGD-T (9 targets, capped at K - 1 = 3) -> FAB-T -> Square, each on the
    images still standing; the budgets and passes are in results.json and the cost table."""
    result = run_evaluate(eval_ws, _config("rec-standard", suite="standard", subset=6), CPU)
    [row] = result.adaptive.models
    assert row.suite == "standard" and row.attack_labels() == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert row.budgets["fab-t"] == {"attack": "fab-t", "alpha_max": 0.1, "beta": 0.9, "eta": 1.05,
                                    "n_target_classes": 9, "restarts": 1, "steps": 100}
    assert row.budgets["apgd-ce"]["steps"] == 100 and row.budgets["square"]["n_queries"] == 10
    passes = row.point(EPS).passes
    clean_correct = round(row.clean * 6)
    assert passes["apgd-ce"]["images"] == clean_correct and passes["apgd-ce"]["backward"] == 101 * clean_correct
    cost = next(t for t in result.tables if t.key == "adaptive-cost")
    assert [r[3] for r in cost.rows] == ["APGD-CE", "APGD-T", "FAB-T", "Square", "Total"]
    record = load_per_image_record(result.report_dir / row.point(EPS).record)
    assert robust_accuracy_from_record(record) == pytest.approx(row.point(EPS).robust, abs=1e-9)
