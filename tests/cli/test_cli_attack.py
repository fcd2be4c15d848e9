"""`defendr attack` through the Typer app: table, --json, errors as one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.adversarial import read_adv_info
from defendr_cli.core.workspace import Workspace
from tests.attacks.attack_helpers import make_cache, make_checkpoint

runner = CliRunner()


def test_cli_attack_writes_sets_and_reports(tmp_path):
    ws = Workspace(tmp_path)
    make_cache(ws)
    make_checkpoint(ws)
    args = ["--workdir", str(tmp_path), "attack", "pgd", "--eps", "8/255,0.06", "--steps", "2",
            "--batch-size", "16", "--device", "cpu", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["pgd-eps8_255-s2-baseline-test", "pgd-eps0.06-s2-baseline-test"]
    info = read_adv_info(ws.path_for("adv", rows[0]["name"]))
    assert info.steps == 2 and info.random_start is True and abs(info.step_size - 2.5 * (8 / 255) / 2) < 1e-9

    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "error (exists)" in again.output and "--force" in again.output

    table = runner.invoke(app, ["--workdir", str(tmp_path), "attack", "fgsm", "--eps", "0.12",
                                "--eps-space", "normalized", "--labels", "predicted", "--device", "cpu"])
    assert table.exit_code == 0, table.output
    assert "success" in table.output and "fgsm on baseline" in table.output
    assert ws.path_for("adv", "fgsm-eps0.12n-pred-baseline-test").exists()
    assert ws.path_for("adv", "fgsm-eps0.12n-pred-baseline-test", create_dir=False).with_suffix(".png").exists()


def test_cli_attack_missing_model_and_bad_input(tmp_path):
    ws = Workspace(tmp_path)
    make_cache(ws)
    missing = runner.invoke(app, ["--workdir", str(tmp_path), "attack", "fgsm", "--eps", "0.1", "--device", "cpu"])
    assert missing.exit_code == 1
    assert missing.output.strip().count("\n") == 0 and "defendr train baseline" in missing.output
    bad = runner.invoke(app, ["--workdir", str(tmp_path), "attack", "fgsm", "--eps", "abc"])
    assert bad.exit_code == 1 and "cannot read --eps 'abc'" in bad.output
    unknown = runner.invoke(app, ["--workdir", str(tmp_path), "attack", "deepfool", "--eps", "0.1"])
    assert unknown.exit_code == 1 and "unknown attack 'deepfool'" in unknown.output


def test_cli_attack_apgd_dlr_is_a_cached_set(tmp_path):
    ws = Workspace(tmp_path)
    make_cache(ws)
    make_checkpoint(ws)
    result = runner.invoke(app, ["--workdir", str(tmp_path), "attack", "apgd", "--eps", "8/255", "--steps", "3",
                                 "--loss", "dlr", "--batch-size", "16", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    info = read_adv_info(ws.path_for("adv", row["name"]))
    assert info.attack == "apgd" and info.loss == "dlr" and info.steps == 3
