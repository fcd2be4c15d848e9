"""The HTML renderer as a pure function of results.json, and its writer on report folders."""

from __future__ import annotations

import html
import json

import pytest

from defendr_cli.core.evaluation.adaptive.plan import FAST_NOTE
from defendr_cli.core.evaluation.html.render import ReportAssets, render_html_report
from defendr_cli.core.evaluation.html.summary import ModelSummary, headline, model_summaries
from defendr_cli.core.evaluation.html.writer import write_html_report
from tests.evaluation.html_probe import read_tables

PNG_1x1 = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d49444154789c6360f8cfc0f01f0005000201a5b1e2d40000000049454e44ae426082")


def _summary(**kw) -> ModelSummary:
    base = dict(name="m", kind="classifier", clean=0.9, transfer=0.8, robust=0.5, images=100, eps_label="8/255",
                transfer_label="worst cached set at 8/255")
    return ModelSummary(**{**base, **kw})


@pytest.mark.parametrize("kw, start", [
    (dict(clean=0.12), "Near chance"),
    (dict(robust=None, eps_label=None), "Transfer only"),
    (dict(transfer=0.9, robust=0.02), "Robust only to transferred attacks"),
    (dict(transfer=0.03, robust=0.02), "Broken"),
    (dict(transfer=0.8, robust=0.3), "Overstated by transfer"),
    (dict(transfer=0.35, robust=0.3), "Weakly robust: 30.0%"),
    (dict(transfer=0.5, robust=0.46), "Holds 46.0% at 8/255 under the adaptive suite (clean 90.0%)."),
    (dict(transfer=0.76, robust=0.47), "Holds 47.0% at 8/255 under the adaptive suite (clean 90.0%); transfer (76.0%) "
                                       "overstates it."),
])
def test_the_headline_says_what_the_figures_support(kw, start):
    assert headline(_summary(**kw), num_classes=10).startswith(start)  # clean 90%, 10 classes


def test_a_failed_check_overrides_a_good_number_and_warnings_are_named():
    failed = _summary(transfer=0.5, robust=0.46, counts={"pass": 7, "warn": 0, "fail": 1},
                      problems=[("fail", "black-box-beats-white-box", "Square broke 3 images")])
    assert headline(failed, 10) == "Do not quote its robust accuracy (46.0% at 8/255): black-box-beats-white-box failed."
    warned = _summary(transfer=0.5, robust=0.46, counts={"pass": 8, "warn": 1, "fail": 0},
                      problems=[("warn", "logits-output", "log-probabilities")])
    assert headline(warned, 10).endswith("1 warning: logits-output.") and warned.status == "warn"


HOSTILE = '<script>alert("x")</script>'


def _results() -> dict:
    checks = [{"name": "zero-gradients", "status": "pass", "detail": "0 of 4", "passed": True},
              {"name": "logits-output", "status": "warn", "detail": f"odd {HOSTILE}", "passed": False}]
    model = {"name": HOSTILE, "kind": "classifier", "clean": 0.75, "robust": {"8/255": 0.25}, "transfer": {},
             "attacks": {"apgd-ce": {"8/255": 0.5}}, "checks": checks, "grid": []}
    suite = {"key": "adaptive-suite", "title": "Adaptive", "columns": ["Model", "Suite", "eps", "Clean", "Transfer",
             "APGD-CE", "Robust", "Checks"], "rows": [[HOSTILE, "quick", "8/255", 0.75, None, 0.5, 0.25, "1 pass"]],
             "caption": "", "percent_columns": [3, 4, 5, 6]}
    return {"name": "r&d", "settings": {"seed": 3, "note": HOSTILE}, "tables": [suite],
            "adaptive": {"seed": 3, "subset": [0, 1, 2, 3], "models": [model]}, "figures": ["plot.png"]}


def test_every_string_from_the_data_is_escaped():
    page = render_html_report(_results(), ReportAssets(images={"plot.png": PNG_1x1}))
    assert HOSTILE not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # only the sort script
    assert "<title>Defendr report: r&amp;d</title>" in page


def test_cells_carry_the_exact_value_and_show_percent():
    [row] = read_tables(render_html_report(_results())).tables["adaptive-suite"]["rows"]
    assert row[3] == ("75.00", "0.75") and row[4] == ("-", "") and row[6] == ("25.00", "0.25")
    assert "WARN logits-output" in row[7][0]


def test_summary_cards_take_the_suite_row_of_each_model():
    [summary] = model_summaries(_results())
    assert (summary.clean, summary.robust, summary.eps_label, summary.images) == (0.75, 0.25, "8/255", 4)
    assert summary.counts == {"pass": 1, "warn": 1, "fail": 0} and summary.status == "warn"


def test_a_gradcam_folder_gets_a_page_and_only_its_own_pngs_are_inlined(tmp_path):
    (tmp_path / "gradcam-m.png").write_bytes(PNG_1x1)
    (tmp_path / "fake.png").write_text("not a png")
    (tmp_path.parent / "outside.png").write_bytes(PNG_1x1)
    targets = [{"label": "m", "figure": "gradcam-m.png", "mean_abs_difference": 0.25},
               {"label": "fake", "figure": "fake.png", "mean_abs_difference": 0.0},
               {"label": "outside", "figure": "../outside.png", "mean_abs_difference": 0.0}]
    (tmp_path / "gradcam.json").write_text(json.dumps({"model": "m", "adv_set": "fgsm-x", "count": 2,
                                                       "fooled_available": 1, "select": "fooled", "targets": targets}))
    page = write_html_report(tmp_path, command="defendr gradcam --model m").read_text()
    assert "<title>Defendr Grad-CAM: m on fgsm-x</title>" in page
    assert len(read_tables(page).images) == 1
    assert "missing image fake.png" in page and "missing image outside.png" in page
    assert "defendr gradcam --model m" in page


def test_the_card_shows_the_primary_sets_eps_and_lists_the_others():
    results = _results()
    model = results["adaptive"]["models"][0]
    model["robust"] = {"4/255": 0.5, "8/255": 0.25}
    results["transfer"] = {"primary_set": "fgsm-8", "adv_sets": [{"name": "fgsm-4", "eps_label": "4/255"},
                                                                 {"name": "fgsm-8", "eps_label": "8/255"}],
                           "models": [{"name": HOSTILE, "kind": "classifier", "clean": 0.8, "sets": {}}]}
    [summary] = model_summaries(results)
    assert (summary.eps_label, summary.robust, summary.other_eps) == ("8/255", 0.25, {"4/255": 0.5})
    assert "adaptive at other eps: 4/255 50.0%" in render_html_report(results)


def test_a_fast_run_shows_its_note_budgets_passes_and_links_its_files():
    results = _results()
    model = results["adaptive"]["models"][0]
    model.update(suite="fast", budgets={"apgd-ce": {"attack": "apgd", "early_stop": True, "steps": 100}},
                 passes={"8/255": {"apgd-ce": {"forward": 3000, "backward": 1000, "images": 3},
                                   "total": {"forward": 3000, "backward": 1000}}},
                 records={"8/255": "per_image-x+y-8_255.h5"})
    results["robustbench"] = [{"name": "x+y"}]
    page = render_html_report(results)
    assert "adaptive fast at 8/255: 0.0040 M passes (0.0030 M forward + 0.0010 M backward), 1000.0 per image" in page
    assert html.escape(FAST_NOTE) in page and "apgd: early_stop=True, steps=100" in page
    links = [link for link in read_tables(page).links if not link.startswith("#")]
    assert links == ["per_image-x%2By-8_255.h5", "per_image-x%2By-8_255.csv", "robustbench-x%2By.json"]
    model["suite"] = "standard"
    assert html.escape(FAST_NOTE) not in render_html_report(results)
