"""`defendr info` and `defendr ls` on a synthetic workspace, including unreadable artefacts."""

from __future__ import annotations

import json

import h5py
import torch
from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.adversarial import AdvSetWriter
from defendr_cli.core.io.reader import read_cache_info


def _run(ws, *args):
    return CliRunner().invoke(app, ["--workdir", str(ws.root), *args])


def test_info_shows_splits_and_classes_and_verifies(synthetic_workspace):
    result = _run(synthetic_workspace, "info", "--verify")
    assert result.exit_code == 0, result.output
    assert "400 images" in result.output and "syn0009" in result.output and "verified" in result.output
    data = json.loads(_run(synthetic_workspace, "info", "synthetic-c10-n60-32px", "--json").output)
    assert data["split_counts"] == {"train": 400, "val": 80, "test": 120} and data["num_classes"] == 10


def test_info_verify_fails_on_changed_content(synthetic_workspace):
    path = synthetic_workspace.path_for("data", "synthetic-c10-n60-32px")
    with h5py.File(path, "r+") as f:
        f["test/images"][5, 1, 2, 3] ^= 0xFF
    result = _run(synthetic_workspace, "info", str(path), "--verify")
    assert result.exit_code == 1
    assert "does not match its fingerprint" in result.output
    assert _run(synthetic_workspace, "info", str(path)).exit_code == 0  # without --verify it still reads


def test_info_errors_are_one_line(tmp_path, synthetic_workspace):
    missing = _run(synthetic_workspace, "info", "nope")
    assert missing.exit_code == 1 and "defendr prepare" in missing.output
    bogus = tmp_path / "bogus.h5"
    bogus.write_text("hello")
    corrupt = _run(synthetic_workspace, "info", str(bogus))
    assert corrupt.exit_code == 1 and "error (corrupt)" in corrupt.output
    assert "Traceback" not in corrupt.output


def test_ls_lists_every_kind_with_summaries_and_survives_bad_files(synthetic_workspace):
    ws = synthetic_workspace
    torch.save({"format": "defendr-checkpoint", "summary": "classifier tinycnn, clean acc 91.0%"},
               ws.path_for("model", "baseline"))
    ws.path_for("model", "broken").write_bytes(b"\x00garbage")
    with h5py.File(ws.path_for("adv", "fgsm-eps0.1-baseline-test"), "w") as f:
        f.attrs["summary"] = "fgsm eps 0.1 on baseline, test split, success 80%"
    (ws.path_for("data", "foreign")).write_bytes(b"not hdf5")
    report = ws.dir_for("report", create=True) / "quick"
    report.mkdir()
    (report / "report.md").write_text("# Defendr quick report\n\nbody\n")
    (ws.data_dir / ".x.h5.partial-123").write_bytes(b"half")
    (ws.adv_dir / ".pgd-eps8_255-s10-baseline-test.h5.partial").write_bytes(b"half")  # an interrupted attack

    result = _run(ws, "ls")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    for text in ("synthetic-c10-n60-32px", "clean cache: synthetic, 10 classes", "baseline",
                 "clean acc 91.0%", "broken", "unreadable", "fgsm-eps0.1-baseline-test", "success 80%",
                 "foreign", "Defendr quick report", "partial"):
        assert text in out, text

    data = json.loads(_run(ws, "ls", "--json").output)
    by_name = {a["name"]: a for a in data["artefacts"]}
    assert by_name["broken"]["readable"] is False and by_name["baseline"]["readable"] is True
    assert by_name["quick"]["kind"] == "report"
    assert ".pgd-eps8_255-s10-baseline-test.h5.partial" in by_name
    only_models = json.loads(_run(ws, "ls", "models", "--json").output)
    assert {a["kind"] for a in only_models["artefacts"]} == {"model"}


def test_ls_empty_workspace_and_bad_kind(tmp_path):
    result = CliRunner().invoke(app, ["--workdir", str(tmp_path / "empty"), "ls"])
    assert result.exit_code == 0 and "no artefacts" in result.output
    bad = CliRunner().invoke(app, ["--workdir", str(tmp_path), "ls", "weights"])
    assert bad.exit_code == 1 and "unknown kind" in bad.output


def test_info_verify_rehashes_the_adversarial_sets_of_the_cache(synthetic_workspace):
    cache = read_cache_info(synthetic_workspace.path_for("data", "synthetic-c10-n60-32px"))
    params = {"name": "fgsm-x", "attack": "fgsm", "eps": 0.1, "eps_label": "0.1", "eps_space": "pixel",
              "split": "test", "source_model": "m", "source_model_fingerprint": "f" * 16,
              "clean_fingerprint": cache.fingerprint, "seed": 0}
    path = synthetic_workspace.path_for("adv", "fgsm-x")
    rows = torch.arange(4)
    with AdvSetWriter(path, count=4, image_shape=(3, 32, 32), dtype="float16", params=params) as writer:
        writer.write(0, torch.rand(4, 3, 32, 32), labels=rows, clean_indices=rows, success=rows > 1,
                     clean_pred=rows, adv_pred=rows, targets=None)
        writer.finish({"success_rate": 0.5, "summary": "s"})
    data = json.loads(_run(synthetic_workspace, "info", "--verify", "--json").output)
    assert [(r["name"], r["ok"]) for r in data["verify_adv_sets"]] == [("fgsm-x", True)]
    with h5py.File(path, "r+") as f:
        f["images"][3, 0, 0, 0] += 0.5
    result = _run(synthetic_workspace, "info", "--verify")
    assert result.exit_code == 1 and "fgsm-x" in result.output
