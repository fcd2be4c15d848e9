"""Report folder: results.json, one CSV per table, PNGs, report.md embedding them."""

from __future__ import annotations

import csv
import json

import torch
from PIL import Image

from defendr_cli.core.evaluation.adaptive.eps import AdaptiveEps
from defendr_cli.core.evaluation.adaptive.plan import SuitePlan
from defendr_cli.core.evaluation.adaptive.run import AdaptiveConfig, run_adaptive_suite
from defendr_cli.core.evaluation.report.folder import read_results, write_report
from defendr_cli.core.evaluation.subjects import ensemble_of, load_eval_model
from defendr_cli.core.evaluation.transfer.run import run_transfer
from defendr_cli.core.runtime import Runtime


def test_report_files_exist_and_parse(eval_ws, tmp_path):
    cpu = torch.device("cpu")
    singles = [load_eval_model(eval_ws, n, device=cpu) for n in ("baseline", "advfgsm")]
    models = singles + [ensemble_of(singles)]
    data = eval_ws.path_for("data", "synth")
    adv = [eval_ws.path_for("adv", n) for n in eval_ws.names("adv")]
    transfer = run_transfer(models, data, adv, runtime=Runtime(), cache_dir=tmp_path / "p", batch_size=40)
    config = AdaptiveConfig(eps_values=[AdaptiveEps("8/255", 8 / 255)],
                            plan=SuitePlan(suite="custom", attacks=("pgd",), steps=(2, 4), restarts=(1,), eot=2),
                            subset=12, batch_size=12)
    adaptive = run_adaptive_suite(models[:1], data, config, runtime=Runtime())
    files = write_report(tmp_path / "rep", name="rep", transfer=transfer, adaptive=adaptive, settings={"seed": 0})

    results = read_results(files.folder)
    assert results["transfer"]["models"][2]["members"] == ["baseline", "advfgsm"]
    keys = {t["key"] for t in results["tables"]}
    assert {"table2-attacks", "table3-ensembles", "table4-cross-attack", "table5-best-classes",
            "adaptive-sweep", "sanity-checks", "adaptive-vs-transfer"} <= keys
    for path in files.csvs:
        rows = list(csv.reader(path.open()))
        assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows)
    markdown = files.markdown.read_text()
    assert "Table 1." in markdown and "Table 3." in markdown and "| No Adv. Ex. |" in markdown
    for figure in ("confusion.png", "accuracy-vs-eps.png", "adaptive-accuracy-vs-eps.png", "adaptive-vs-transfer.png"):
        assert f"]({figure})" in markdown
        assert Image.open(files.folder / figure).size[0] > 100
    json.dumps(results)  # stays serializable
