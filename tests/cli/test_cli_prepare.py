"""`defendr prepare` from the CLI: synthetic source, --force, bad options, ImageNet folder."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from defendr_cli.cli.app import app
from defendr_cli.core.io.reader import read_cache_info


def _run(root, *args):
    return CliRunner().invoke(app, ["--workdir", str(root), *args])


def test_prepare_synthetic_then_refuse_then_force(tmp_path):
    args = ["prepare", "--source", "synthetic", "--classes", "4", "--per-class", "10", "--image-size", "16"]
    first = _run(tmp_path, *args)
    assert first.exit_code == 0, first.output
    assert "synthetic-c4-n10-16px" in first.output and "train 32 / val 4 / test 4" in first.output
    path = tmp_path / "data" / "synthetic-c4-n10-16px.h5"
    fingerprint = read_cache_info(path).fingerprint
    again = _run(tmp_path, *args)
    assert again.exit_code == 1 and "--force" in again.output
    forced = _run(tmp_path, *args, "--force", "--json")
    assert forced.exit_code == 0
    assert json.loads(forced.output)["fingerprint"] == fingerprint  # deterministic per seed


def test_prepare_synthetic_options_and_errors(tmp_path):
    ok = _run(tmp_path, "prepare", "--classes", "3", "--per-class", "70", "--split", "54,6,10",
              "--image-size", "8", "--seed", "2", "--name", "tiny", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["split_counts"] == {"train": 162, "val": 18, "test": 30}
    assert read_cache_info(tmp_path / "data" / "tiny.h5").seed == 2
    bad_split = _run(tmp_path, "prepare", "--per-class", "10", "--split", "54,6,10")
    assert bad_split.exit_code == 1 and "adds up" in bad_split.output
    bad_size = _run(tmp_path, "prepare", "--image-size", "4")
    assert bad_size.exit_code == 1 and "--image-size" in bad_size.output
    missing = _run(tmp_path, "prepare", "--source", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and "error (source)" in missing.output


def test_prepare_from_an_imagenet_folder(tmp_path):
    from tests.data.folder_helpers import make_imagenet_folder

    train = make_imagenet_folder(tmp_path / "src")
    ws = tmp_path / "ws"
    result = _run(ws, "prepare", "--source", str(train), "--classes", "3", "--per-class", "11", "--split",
                  "9,1,1", "--image-size", "16", "--workers", "2", "--allow-short")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "imagenet-c3-n11-16px" in out and "n00000002/truncated.JPEG: truncated image" in out
    assert "n00000002/notes.JPEG: not an image" in out and "short classes" in out
    strict = _run(ws, "prepare", "--source", str(train), "--classes", "4", "--per-class", "3", "--image-size", "8")
    assert strict.exit_code == 1 and "n00000004 (0)" in strict.output and "--allow-short" in strict.output
