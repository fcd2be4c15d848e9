"""`defendr ensemble`: writes a manifest, prints members, refuses bad input with one line."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint
from defendr_cli.core.io.checkpoint_record import Checkpoint
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.models.ensemble import Ensemble
from defendr_cli.core.models.registry import build_classifier
from defendr_cli.core.workspace import Workspace


def _classifier(ws: Workspace, name: str, classes: int = 3, seed: int = 0) -> None:
    torch.manual_seed(seed)
    model = build_classifier("tinycnn", classes)
    save_checkpoint(ws.path_for("model", name), Checkpoint.from_payload({
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": "classifier", "name": name,
        "summary": name, "method": "baseline", "config": {"arch": "tinycnn", "num_classes": classes, "image_size": 16},
        "state_dict": model.state_dict(),
        "data": {"class_ids": [str(i) for i in range(classes)], "image_size": 16},
        "provenance": {"parents": []},
    }))


def test_ensemble_command_writes_a_loadable_manifest(tmp_path):
    ws = Workspace(tmp_path)
    _classifier(ws, "a")
    _classifier(ws, "b", seed=1)
    runner = CliRunner()
    result = runner.invoke(app, ["--workdir", str(tmp_path), "ensemble", "best", "--members", "a,b",
                                 "--weights", "3,1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [m["name"] for m in out["members"]] == ["a", "b"]
    assert [m["weight"] for m in out["members"]] == [0.75, 0.25]
    loaded = load_model(ws, "best")
    assert isinstance(loaded.module, Ensemble) and loaded.module.combine == "probs"

    again = runner.invoke(app, ["--workdir", str(tmp_path), "ensemble", "best", "--members", "a,b"])
    assert again.exit_code == 1 and "exists" in again.output and "--force" in again.output
    forced = runner.invoke(app, ["--workdir", str(tmp_path), "ensemble", "best", "--members", "a,b",
                                 "--combine", "logits", "--force"])
    assert forced.exit_code == 0 and "wrote" in forced.stdout
    assert load_model(ws, "best").module.combine == "logits"


def test_ensemble_command_errors_are_one_line(tmp_path):
    ws = Workspace(tmp_path)
    _classifier(ws, "a")
    _classifier(ws, "four", classes=4)
    runner = CliRunner()
    cases = [
        (["--members", "a,missing"], "missing"),
        (["--members", "a,four"], "mismatch"),
        (["--members", "a,four", "--weights", "1,x"], "invalid input"),
        (["--members", "a,four", "--combine", "vote"], "invalid input"),
    ]
    for extra, word in cases:
        result = runner.invoke(app, ["--workdir", str(tmp_path), "ensemble", "e", *extra])
        assert result.exit_code == 1, (extra, result.output)
        assert result.output.strip().startswith(f"error ({word})") and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "models" / "e.pt").exists()
