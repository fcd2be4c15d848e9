"""`defendr import` end to end: the imported models run through evaluate, gradcam and ls."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.reader import read_cache_info
from defendr_cli.core.models.loading import load_model
from defendr_cli.core.workspace import Workspace
from tests.evaluation import eval_builders as B
from tests.models import import_helpers as H

runner = CliRunner()


def _cli(ws, *args):
    return runner.invoke(app, ["--workdir", str(ws.root), *args])


def test_import_then_evaluate_gradcam_and_ls(tmp_path):
    ws = Workspace(tmp_path / "ws")
    cache = B.write_cache(ws)
    class_ids = read_cache_info(cache).class_ids
    torch.save(H.resnet18(num_classes=7).state_dict(), tmp_path / "r18.pth")
    (tmp_path / "map.json").write_text(json.dumps({cid: 6 - i for i, cid in enumerate(class_ids)}))
    imported = _cli(ws, "import", "tv", "--arch", "torchvision:resnet18", "--weights", str(tmp_path / "r18.pth"),
                    "--normalize", "imagenet", "--class-map", str(tmp_path / "map.json"), "--json")
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.output)
    assert report["class_map"]["indices"] == [6, 5, 4, 3] and report["data"] == cache.stem
    program = H.export_program(H.resnet18(num_classes=len(class_ids)), tmp_path / "m.pt2", size=B.SIZE)
    exported = _cli(ws, "import", "mine", "--exported", str(program))
    assert exported.exit_code == 0, exported.output
    assert "Grad-CAM layer: layer4" in exported.output
    again = _cli(ws, "import", "mine", "--exported", str(program))
    assert again.exit_code == 1 and "error (exists)" in again.output

    model = load_model(ws, "tv").module
    B.write_adv_set(ws, model, cache, attack="fgsm", eps=16 / 255, eps_label="16/255", source="tv")
    evaluated = _cli(ws, "evaluate", "--models", "tv,mine", "--name", "imp", "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    assert "mine" in evaluated.output and (ws.reports_dir / "imp" / "report.md").exists()
    cam = _cli(ws, "gradcam", "--model", "mine", "--attack", "fgsm-eps16_255", "--count", "2",
               "--device", "cpu", "--json")
    assert cam.exit_code == 0, cam.output
    assert json.loads(cam.output[cam.output.index("{"):])["count"] == 2
    listing = _cli(ws, "ls", "models", "--json")
    summaries = {e["name"]: e["summary"] for e in json.loads(listing.output)["artefacts"]}
    assert summaries["tv"].startswith("imported torchvision:resnet18: 7 outputs -> 4 classes (file)")
    shown = _cli(ws, "info", "--model", "tv", "--json")
    assert shown.exit_code == 0, shown.output
    described = json.loads(shown.output)
    assert described["kind"] == "imported" and described["outputs"] == 7
    assert described["class_map"]["indices"] == [6, 5, 4, 3] and described["class_map"]["how"] == "file"
    table = _cli(ws, "info", "--model", "tv")
    assert "class map (file)" in table.output and class_ids[0] in table.output


def test_import_errors_are_one_line(tmp_path):
    ws = Workspace(tmp_path / "ws")
    result = _cli(ws, "import", "x", "--arch", "torchvision:resnet18")
    assert result.exit_code == 1 and "needs --weights" in result.output
