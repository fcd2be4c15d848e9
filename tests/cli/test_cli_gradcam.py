"""`defendr gradcam` end to end on a tiny workspace."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.workspace import Workspace
from tests.evaluation import eval_builders as B

runner = CliRunner()


def test_gradcam_writes_grids_and_resolves_prefixes(tmp_path):
    ws = Workspace(tmp_path / "ws")
    cache = B.write_cache(ws, test=4)
    baseline = B.train_classifier(cache, steps=40)
    B.save_classifier(ws, "baseline", baseline, cache)
    B.write_adv_set(ws, baseline, cache, attack="pgd", eps=32 / 255, eps_label="32/255", steps=5)
    args = ["--workdir", str(ws.root), "gradcam", "--model", "baseline", "--attack", "pgd-eps32_255",
            "--count", "3", "--device", "cpu"]
    result = runner.invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert payload["count"] == 3
    assert (tmp_path / "ws" / "reports" / payload["folder"].split("/")[-1] / payload["figures"][0]).exists()
    missing = runner.invoke(app, ["--workdir", str(ws.root), "gradcam", "--model", "baseline", "--attack", "fgsm"])
    assert missing.exit_code == 1 and "error (missing)" in missing.output
