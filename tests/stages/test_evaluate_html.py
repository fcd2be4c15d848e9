"""report.html written by run_evaluate: numbers equal results.json, images inline, opens cleanly in Chromium."""

from __future__ import annotations

import re
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from defendr_cli.core.evaluation.report.folder import read_results
from defendr_cli.core.runtime import Runtime
from defendr_cli.core.stages.evaluate import EvaluateConfig, run_evaluate
from tests.evaluation.html_probe import find_browser, probe_page, read_tables, run_browser

CPU = Runtime()
FGSM = "fgsm-eps8_255-baseline-test"


@pytest.fixture(scope="module")
def report(stage_ws):
    config = EvaluateConfig(models=["baseline", "advfgsm"], ensembles=[["baseline", "advfgsm"]], name="html",
                            batch_size=16, adaptive=True, suite="quick", subset=8, square_queries=10,
                            eps_from_sets=[FGSM], attacks=["pgd"], steps=[2], restarts=[1])
    result = run_evaluate(stage_ws, config, CPU)
    return result, read_results(result.report_dir), result.html.read_text(encoding="utf-8")


def _min_transfer(results: dict, model: dict, eps_label: str) -> float | None:
    names = [s["name"] for s in results["transfer"]["adv_sets"] if s["eps_label"] == eps_label]
    values = [model["transfer"][n] for n in names if n in model["transfer"]]
    return min(values) if values else None


def _same(cell: tuple[str, str | None], value: float | None) -> bool:
    """The cell shows value in % with two decimals and carries it exactly in data-v ('-' and '' for None)."""
    text, exact = cell
    if value is None:
        return text == "-" and not exact
    return float(exact) == value and text == f"{100 * value:.2f}"


def test_every_number_of_the_adaptive_table_equals_results_json(report):
    result, results, page = report
    assert result.html == result.report_dir / "report.html"
    table = read_tables(page).tables["adaptive-suite"]
    columns = table["columns"]
    models = {m["name"]: m for m in results["adaptive"]["models"]}
    assert len(table["rows"]) == sum(len(m["robust"]) for m in models.values()) == 3
    attack_columns = [c for c in columns[5:] if c.lower() in next(iter(models.values()))["attacks"]]
    assert attack_columns == ["PGD", "APGD-CE", "APGD-T", "Square"]
    for row in table["rows"]:
        cells = dict(zip(columns, row))
        model, eps = models[cells["Model"][0]], cells["eps"][0]
        assert _same(cells["Clean"], model["clean"])
        assert _same(cells["Transfer"], _min_transfer(results, model, eps))
        for column in attack_columns:
            assert _same(cells[column], model["attacks"][column.lower()][eps])
        assert _same(cells["Robust"], model["robust"][eps])
        assert _same(cells["All draws"], model.get("all_draws", {}).get(eps))
        route = model.get("route", {}).get(eps)
        assert (route["winner"] in cells["Ensemble route"][0]) if route else cells["Ensemble route"][0] == "-"
        statuses = [c["status"] for c in model["checks"]]
        assert cells["Checks"][0].startswith(f"{statuses.count('pass')} pass")
        for check in model["checks"]:
            if check["status"] != "pass":  # a warning or failure is named in the row and explained below
                assert f"{check['status'].upper()} {check['name']}" in cells["Checks"][0]
                assert check["detail"] in page


def test_the_page_is_self_contained_with_the_gallery_and_provenance(report):
    result, results, page = report
    probe = read_tables(page)
    assert probe.images and all(src.startswith("data:image/png;base64,") for src in probe.images)
    files = [unquote(link) for link in probe.links if not link.startswith("#")]  # no script, stylesheet or page fetched
    assert files and all("/" not in f and ":" not in f and (result.report_dir / f).is_file() for f in files)
    records = [name for m in results["adaptive"]["models"] for name in m["records"].values()]
    assert sorted(files) == sorted(records + [r.replace(".h5", ".csv") for r in records]
                                   + [f"robustbench-{e['name']}.json" for e in results["robustbench"]])
    assert "http://" not in page and "https://" not in page
    gallery = (result.report_dir / "gallery" / "gallery.json")
    assert gallery.exists() and 'id="gallery"' in page
    assert len(probe.images) == len(results["figures"]) + 3 * 4  # figures + 4 gallery images x 3 panels
    assert "defendr --workdir" in page and "evaluate --models baseline,advfgsm --ensemble baseline,advfgsm" in page
    for model in results["transfer"]["models"]:
        assert model["fingerprint"] in page


def test_chromium_loads_the_page_without_errors_and_draws_it(report, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium); "
                    "the browser check of report.html did not run")
    result, results, page = report
    outcome = probe_page(browser, result.html, tmp_path)
    assert outcome["errors"] == []
    assert outcome["images"] == len(read_tables(page).images) and outcome["broken"] == 0
    names = [m["name"] for m in results["adaptive"]["models"]]
    assert outcome["arrow"] == "desc" and outcome["sorted"] == sorted(names, key=str.lower, reverse=True)
    shot = tmp_path / "shot.png"
    run_browser(browser, "--window-size=1280,2000", f"--screenshot={shot}", result.html.resolve().as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280) and pixels.std() > 10  # not blank: text, cards and tables drawn


PASSES = re.compile(r"adaptive (\S+) at (\S+): (\d+\.\d{4}) M passes \((\d+\.\d{4}) M forward \+ "
                    r"(\d+\.\d{4}) M backward\), (\d+\.\d) per image")


def test_every_passes_number_shown_equals_results_json(report):
    result, results, page = report
    images = len(results["adaptive"]["subset"])
    expected, rows = [], []
    for m in results["adaptive"]["models"]:
        for eps, passes in m["passes"].items():
            f, b = passes["total"]["forward"], passes["total"]["backward"]
            assert f > 0 and b > 0
            expected.append((m["suite"], eps, f"{(f + b) / 1e6:.4f}", f"{f / 1e6:.4f}", f"{b / 1e6:.4f}",
                             f"{(f + b) / images:.1f}"))
            rows += [(m["name"], eps, a, f"{c['forward'] / 1e6:.4f}", f"{c['backward'] / 1e6:.4f}",
                      f"{c['forward'] / images:.1f}", f"{c['backward'] / images:.1f}") for a, c in passes.items()]
    assert sorted(PASSES.findall(page)) == sorted(expected) and len(expected) == 3  # the cards, nothing else
    table = read_tables(page).tables["adaptive-cost"]
    shown = [dict(zip(table["columns"], (cell[0] for cell in row))) for row in table["rows"]]
    assert len(shown) == len(rows)
    for cells, (_, eps, _, fwd, bwd, fwd_image, bwd_image) in zip(shown, rows):
        assert (cells["eps"], cells["Forward (M)"], cells["Backward (M)"]) == (eps, fwd, bwd)
        assert (cells["Forward / image"], cells["Backward / image"]) == (fwd_image, bwd_image)
    for m in results["adaptive"]["models"]:  # the suite's version: every attack with every budget
        for budget in m["budgets"].values():
            assert all(f"{k}={v}" in page for k, v in budget.items() if k != "attack")
